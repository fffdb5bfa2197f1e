/** The one seam between Easel and a model vendor. Two implementations: openai-compatible and demo. */

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

export interface Usage {
  readonly prompt_tokens: number;
  readonly completion_tokens: number;
  readonly total_tokens: number;
}

export interface ChatRequest {
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  /** Aborting it must close the upstream HTTP call at once. */
  readonly signal: AbortSignal;
}

export type ChatChunk =
  | { readonly type: 'delta'; readonly content: string }
  /** Last chunk of a stream that ended normally. */
  | {
      readonly type: 'end';
      readonly usage: Usage | null;
      readonly generationId: string | null;
      readonly finishReason: string | null;
    };

export type AspectRatio = '1:1' | '3:4' | '4:3' | '9:16' | '16:9';

export interface ImageRequest {
  readonly model: string;
  readonly prompt: string;
  readonly aspectRatio: AspectRatio | null;
  readonly referenceImageUrl: string | null;
  readonly signal: AbortSignal;
}

export interface ImageResponse {
  /** Image URLs exactly as the upstream returned them (normally `data:` URLs); not decoded here. */
  readonly images: readonly string[];
  readonly generationId: string | null;
}

export type ProviderErrorKind =
  /** Connection refused, reset, cut mid-body. */
  | 'transport'
  /** Non-2xx answer. */
  | 'status'
  /** An `{"error":…}` chunk inside a 2xx stream. */
  | 'stream'
  /** The caller's signal aborted the call. */
  | 'aborted';

export class ProviderError extends Error {
  constructor(
    readonly kind: ProviderErrorKind,
    message: string,
    readonly status: number | null = null,
    /** The upstream's own error code, when it sent one. */
    readonly code: string | null = null,
  ) {
    super(message);
    this.name = 'ProviderError';
  }
}

export interface LlmProvider {
  readonly name: 'openai-compatible' | 'demo';
  /** Streams one completion; throws {@link ProviderError}. Ends with exactly one `end` chunk. */
  streamChat(request: ChatRequest): AsyncIterable<ChatChunk>;
  /** One non-streamed completion (used by the image prompt composer); throws {@link ProviderError}. */
  complete(request: ChatRequest): Promise<string>;
  /** One image attempt; throws {@link ProviderError}. Zero images is a valid answer, not an error. */
  generateImage(request: ImageRequest): Promise<ImageResponse>;
}

/** Injection token of the configured {@link LlmProvider}. */
export const LLM_PROVIDER = Symbol('LLM_PROVIDER');
