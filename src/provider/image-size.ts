import type { AspectRatio } from './image-provider.js';

/** The sizes every GPT image model accepts on `/images/generations`. */
export const IMAGES_API_SIZES = ['1024x1024', '1536x1024', '1024x1536'] as const;
export type ImagesApiSize = (typeof IMAGES_API_SIZES)[number];

function ratioOf(text: string, separator: string): number {
  const [width, height] = text.split(separator).map(Number);
  return width / height;
}

/**
 * The supported size whose shape is closest to `aspectRatio` (distance of the log ratios, so
 * 2:1 and 1:2 are equally far from square); null → no `size` (the model picks).
 */
export function closestImageSize(aspectRatio: AspectRatio | null): ImagesApiSize | null {
  if (aspectRatio === null) return null;
  const wanted = Math.log(ratioOf(aspectRatio, ':'));
  let best: ImagesApiSize = IMAGES_API_SIZES[0];
  for (const size of IMAGES_API_SIZES) {
    const distance = Math.abs(Math.log(ratioOf(size, 'x')) - wanted);
    if (distance < Math.abs(Math.log(ratioOf(best, 'x')) - wanted)) best = size;
  }
  return best;
}
