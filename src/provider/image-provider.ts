/** The seam between Easel and an image model vendor, separate from chat (own URL, key and API). */

import type { AspectRatio } from '../contract/index.js';

export { ASPECT_RATIOS, type AspectRatio, MAX_PARTIAL_IMAGES } from '../contract/index.js';

export interface ImageRequest {
  readonly model: string;
  readonly prompt: string;
  readonly aspectRatio: AspectRatio | null;
  readonly referenceImageUrl: string | null;
  /** 0..{@link MAX_PARTIAL_IMAGES}: previews wanted before the result (0 = none). */
  readonly partialImages: number;
  /** Aborting it must close the upstream HTTP call (and any streamed body) at once. */
  readonly signal: AbortSignal;
}

export type ImageEvent =
  /** A preview of the picture being drawn; only when `partialImages > 0`, `partialIndex` rising from 0. */
  | { readonly type: 'partial'; readonly partialIndex: number; readonly dataUrl: string }
  /** Exactly one, last. Image URLs as the upstream sent them (normally `data:` URLs), not decoded. */
  | {
      readonly type: 'result';
      readonly images: readonly string[];
      readonly generationId: string | null;
    };

export interface ImageProvider {
  /**
   * One image attempt: zero or more `partial` events, then exactly one `result` (zero images is
   * a valid answer, not an error). Throws {@link ProviderError} instead of the result on failure,
   * possibly after some previews.
   */
  generateImage(request: ImageRequest): AsyncIterable<ImageEvent>;
}

/** Injection token of the configured {@link ImageProvider}. */
export const IMAGE_PROVIDER = Symbol('IMAGE_PROVIDER');
