import { ASPECT_RATIOS } from './image-provider.js';
import { IMAGES_API_SIZES, closestImageSize } from './image-size.js';

describe('closestImageSize', () => {
  it.each([
    ['1:1', '1024x1024'],
    ['4:3', '1536x1024'],
    ['16:9', '1536x1024'],
    ['3:4', '1024x1536'],
    ['9:16', '1024x1536'],
  ] as const)('maps %s to %s', (ratio, size) => {
    expect(closestImageSize(ratio)).toBe(size);
  });

  it('sends no size when no aspect ratio was asked', () => {
    expect(closestImageSize(null)).toBeNull();
  });

  it('keeps the orientation of every ratio', () => {
    for (const ratio of ASPECT_RATIOS) {
      const [w, h] = ratio.split(':').map(Number);
      const size = closestImageSize(ratio);
      expect(IMAGES_API_SIZES).toContain(size);
      const [sw, sh] = (size ?? '').split('x').map(Number);
      expect(Math.sign(sw - sh)).toBe(Math.sign(w - h));
    }
  });
});
