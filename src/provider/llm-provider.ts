/** The seam between Easel and a chat model vendor. Implementations: openai-compatible and demo. */
import type { Usage } from '../contract/index.js';

export type { Usage };

export { ProviderError, type ProviderErrorKind } from './provider-error.js';
export type { AspectRatio } from './image-provider.js';

export interface ChatMessage {
  readonly role: 'system' | 'user' | 'assistant';
  readonly content: string;
}

export interface ChatRequest {
  readonly model: string;
  readonly messages: readonly ChatMessage[];
  /** Aborting it must close the upstream HTTP call at once. */
  readonly signal: AbortSignal;
}

export type ChatChunk =
  | { readonly type: 'delta'; readonly content: string }
  /** Last chunk of a stream that ended normally (`[DONE]` or a finish reason seen). */
  | { readonly type: 'end'; readonly usage: Usage | null; readonly generationId: string | null };

export interface LlmProvider {
  /** Streams one completion; throws {@link ProviderError}. Ends with exactly one `end` chunk. */
  streamChat(request: ChatRequest): AsyncIterable<ChatChunk>;
  /** One non-streamed completion (used by the image prompt composer); throws {@link ProviderError}. */
  complete(request: ChatRequest): Promise<string>;
}

/** Injection token of the configured {@link LlmProvider}. */
export const LLM_PROVIDER = Symbol('LLM_PROVIDER');
