import { type AspectRatio } from '../image-provider.js';
import { digest } from './demo-text.js';
import { encodePng, type RasterImage } from './png.js';

/** Pixel size of a demo picture per aspect ratio; the long side is always 512. */
export const DEMO_IMAGE_SIZES: Readonly<Record<AspectRatio, { width: number; height: number }>> = {
  '1:1': { width: 512, height: 512 },
  '3:4': { width: 384, height: 512 },
  '4:3': { width: 512, height: 384 },
  '9:16': { width: 288, height: 512 },
  '16:9': { width: 512, height: 288 },
};

type Rgb = readonly [number, number, number];

function hsl(hue: number, saturation: number, lightness: number): Rgb {
  const a = saturation * Math.min(lightness, 1 - lightness);
  const channel = (n: number): number => {
    const k = (n + hue / 30) % 12;
    return Math.round(255 * (lightness - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return [channel(0), channel(8), channel(4)];
}

/**
 * Paints a small landscape (sky gradient, glowing sun, three ranges of hills) whose colours and
 * shapes all come from a hash of the prompt. Every shape is placed in fractions of the size, so a
 * smaller render is the same scene at a coarser resolution.
 */
function paintScene(prompt: string, width: number, height: number): RasterImage {
  const h = digest(prompt);
  const unit = (i: number): number => h[i] / 255;
  const skyHue = unit(0) * 360;
  const skyTop = hsl(skyHue, 0.55, 0.35);
  const skyHorizon = hsl((skyHue + 40 + unit(1) * 60) % 360, 0.7, 0.75);
  const sunColour = hsl((skyHue + 180) % 360, 0.9, 0.7);
  const sunX = width * (0.2 + 0.6 * unit(2));
  const sunY = height * (0.18 + 0.2 * unit(3));
  const sunRadius = Math.min(width, height) * (0.08 + 0.06 * unit(4));
  const hillHue = (skyHue + 90 + unit(5) * 120) % 360;
  const hills = [0, 1, 2].map((layer) => ({
    base: height * (0.55 + 0.13 * layer),
    amplitude: height * (0.07 - 0.015 * layer),
    frequency1: 1 + Math.floor(unit(6 + layer) * 3),
    frequency2: 3 + Math.floor(unit(9 + layer) * 4),
    phase1: unit(12 + layer) * Math.PI * 2,
    phase2: unit(15 + layer) * Math.PI * 2,
    colour: hsl((hillHue + layer * 15) % 360, 0.45, 0.42 - layer * 0.1),
  }));

  // Plain numeric loops with no per-pixel allocation: a 512×512 picture takes a few ms.
  const pixels = new Uint8Array(width * height * 3);
  const ridges = new Float64Array(hills.length);
  const glowRadius = sunRadius * 2.5;
  for (let x = 0; x < width; x++) {
    const angle = (x / width) * Math.PI * 2;
    for (let layer = 0; layer < hills.length; layer++) {
      const hill = hills[layer];
      ridges[layer] =
        hill.base +
        hill.amplitude *
          (Math.sin(angle * hill.frequency1 + hill.phase1) +
            0.4 * Math.sin(angle * hill.frequency2 + hill.phase2));
    }
    for (let y = 0; y < height; y++) {
      const offset = (y * width + x) * 3;
      let front = -1;
      for (let layer = 0; layer < hills.length; layer++) if (y >= ridges[layer]) front = layer;
      if (front >= 0) {
        const colour = hills[front].colour;
        pixels[offset] = colour[0];
        pixels[offset + 1] = colour[1];
        pixels[offset + 2] = colour[2];
        continue;
      }
      const t = y / height;
      let r = skyTop[0] + (skyHorizon[0] - skyTop[0]) * t;
      let g = skyTop[1] + (skyHorizon[1] - skyTop[1]) * t;
      let b = skyTop[2] + (skyHorizon[2] - skyTop[2]) * t;
      const distance = Math.sqrt((x - sunX) ** 2 + (y - sunY) ** 2);
      if (distance < glowRadius) {
        const glow =
          distance <= sunRadius ? 1 : 0.5 * (1 - (distance - sunRadius) / (glowRadius - sunRadius));
        r += (sunColour[0] - r) * glow;
        g += (sunColour[1] - g) * glow;
        b += (sunColour[2] - b) * glow;
      }
      pixels[offset] = Math.round(r);
      pixels[offset + 1] = Math.round(g);
      pixels[offset + 2] = Math.round(b);
    }
  }
  return { width, height, channels: 3, pixels };
}

/** The demo picture for `prompt` as PNG bytes. */
export function drawDemoImage(prompt: string, width: number, height: number): Buffer {
  return encodePng(paintScene(prompt, width, height));
}

/** Nearest-neighbour enlargement of an RGB raster to `width`×`height` (blocky on purpose). */
function enlarge(small: RasterImage, width: number, height: number): RasterImage {
  const pixels = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const sy = Math.min(small.height - 1, Math.floor((y * small.height) / height));
    for (let x = 0; x < width; x++) {
      const sx = Math.min(small.width - 1, Math.floor((x * small.width) / width));
      const from = (sy * small.width + sx) * 3;
      pixels.set(small.pixels.subarray(from, from + 3), (y * width + x) * 3);
    }
  }
  return { width, height, channels: 3, pixels };
}

/**
 * A preview of {@link drawDemoImage}'s picture: the same scene painted at 1/`divisor` of the
 * size, then enlarged back to `width`×`height`, as PNG bytes.
 */
export function drawDemoPreview(
  prompt: string,
  width: number,
  height: number,
  divisor: number,
): Buffer {
  const small = paintScene(
    prompt,
    Math.max(1, Math.round(width / divisor)),
    Math.max(1, Math.round(height / divisor)),
  );
  return encodePng(enlarge(small, width, height));
}
