import type { ImageRequest } from '../../src/provider/image-provider.js';
import type { ChatChunk } from '../../src/provider/llm-provider.js';

/** Helpers for the provider specs: reading a provider's chat stream, building image requests. */

export function iterate<T>(iterable: AsyncIterable<T>): AsyncIterator<T> {
  return iterable[Symbol.asyncIterator]();
}

export async function collect<T>(iterable: AsyncIterable<T>): Promise<T[]> {
  const items: T[] = [];
  for await (const item of iterable) items.push(item);
  return items;
}

/** Consumes a stream, keeping what arrived before it failed. */
export async function collectUntilError<T>(
  iterable: AsyncIterable<T>,
): Promise<{ chunks: T[]; error: unknown }> {
  const chunks: T[] = [];
  try {
    for await (const chunk of iterable) chunks.push(chunk);
  } catch (error) {
    return { chunks, error };
  }
  return { chunks, error: null };
}

/** The reply text of a chat stream's chunks. */
export function textOf(chunks: readonly ChatChunk[]): string {
  return chunks.map((chunk) => (chunk.type === 'delta' ? chunk.content : '')).join('');
}

/** One image attempt's request, with a live signal. */
export function imageRequest(model: string, overrides: Partial<ImageRequest> = {}): ImageRequest {
  return {
    model,
    prompt: 'a red fox in the snow',
    aspectRatio: null,
    referenceImageUrl: null,
    partialImages: 0,
    signal: new AbortController().signal,
    ...overrides,
  };
}
