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
  /** Previews wanted per attempt, 0..3 (docs/api-reference.md §13). */
  readonly partialImages: number;
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

/** A checked preview of the running attempt's picture. */
export interface ImagePreview {
  /** The attempt's index. */
  readonly index: number;
  /** 0-based, rising within the attempt. */
  readonly partialIndex: number;
  readonly mime: string;
  readonly dataUrl: string;
}

export type ImageGenEvent =
  | ({ readonly type: 'attempt' } & AttemptStart)
  | ({ readonly type: 'partial' } & ImagePreview)
  | { readonly type: 'done'; readonly result: ImageGenResult };
