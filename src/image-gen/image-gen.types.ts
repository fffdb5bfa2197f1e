import type { AspectRatio, Attempt, ImageFailureReason, ImageVariant } from '../contract/index.js';
import type { ChatMessage } from '../provider/llm-provider.js';

export interface ImageGenRequest {
  /** What to draw: the client's `image_prompt`, else the user's message. */
  readonly subject: string;
  /** Recent conversation, oldest first, for the prompt composer. */
  readonly context: readonly ChatMessage[];
  /** Tried first, then the configured chain, without repeats. */
  readonly model: string | null;
  readonly aspectRatio: AspectRatio | null;
  readonly referenceImageUrl: string | null;
}

export interface AttemptStart {
  readonly model: string;
  readonly variant: ImageVariant;
  /** 1-based. */
  readonly index: number;
  readonly total: number;
}

export interface GeneratedImage {
  readonly bytes: Buffer;
  readonly mime: string;
  readonly width: number;
  readonly height: number;
  readonly model: string;
  /** The prompt the winning attempt sent. */
  readonly prompt: string;
  readonly generationId: string | null;
}

export type ImageGenResult =
  | { readonly ok: true; readonly image: GeneratedImage; readonly attempts: Attempt[] }
  | {
      readonly ok: false;
      readonly reason: ImageFailureReason;
      readonly message: string;
      readonly attempts: Attempt[];
    };

export type ImageGenEvent =
  | ({ readonly type: 'attempt' } & AttemptStart)
  | { readonly type: 'done'; readonly result: ImageGenResult };
