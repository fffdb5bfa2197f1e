import fc from 'fast-check';
import { makeJpeg, makePng } from '../../test/harness/fake-upstream.js';
import { decodeImageDataUrl, ImageDecodeError, sniffImage } from './image-decoder.js';

function riff(chunk: string, payload: readonly number[]): Buffer {
  const body = Buffer.concat([
    Buffer.from(chunk, 'latin1'),
    u32le(payload.length),
    Buffer.from(payload),
  ]);
  return Buffer.concat([Buffer.from('RIFF'), u32le(body.length + 4), Buffer.from('WEBP'), body]);
}

function u32le(value: number): Buffer {
  const buffer = Buffer.alloc(4);
  buffer.writeUInt32LE(value);
  return buffer;
}

/** Lossy: frame tag, start code, 14-bit width and height (top 2 bits are scaling). */
function webpVp8(width: number, height: number): Buffer {
  return riff('VP8 ', [
    0x30,
    0x01,
    0x00,
    0x9d,
    0x01,
    0x2a,
    width & 0xff,
    (width >> 8) | 0x40,
    height & 0xff,
    (height >> 8) | 0x80,
    ...new Array<number>(8).fill(0),
  ]);
}

/** Lossless: signature 0x2F, then width-1 and height-1 in 14 bits each. */
function webpVp8l(width: number, height: number): Buffer {
  const bits = ((width - 1) | ((height - 1) << 14)) >>> 0;
  return riff('VP8L', [
    0x2f,
    bits & 0xff,
    (bits >> 8) & 0xff,
    (bits >> 16) & 0xff,
    bits >>> 24,
    0,
    0,
  ]);
}

/** Extended: flags, 3 reserved bytes, canvas width-1 and height-1 in 24 bits each. */
function webpVp8x(width: number, height: number): Buffer {
  const w = width - 1;
  const h = height - 1;
  return riff('VP8X', [
    0x10,
    0,
    0,
    0,
    w & 0xff,
    (w >> 8) & 0xff,
    w >> 16,
    h & 0xff,
    (h >> 8) & 0xff,
    h >> 16,
  ]);
}

/** A 2-colour GIF89a with a graphic control extension and one image block. */
function gif(width: number, height: number): Buffer {
  return Buffer.from([
    ...Buffer.from('GIF89a', 'latin1'),
    width & 0xff,
    width >> 8,
    height & 0xff,
    height >> 8,
    0x80,
    0,
    0,
    0,
    0,
    0,
    255,
    255,
    255,
    0x21,
    0xf9,
    0x04,
    0,
    0,
    0,
    0,
    0x00,
    0x2c,
    0,
    0,
    0,
    0,
    width & 0xff,
    width >> 8,
    height & 0xff,
    height >> 8,
    0,
    0x02,
    0x02,
    0x4c,
    0x01,
    0x00,
    0x3b,
  ]);
}

const dataUrl = (mime: string, bytes: Buffer): string =>
  `data:${mime};base64,${bytes.toString('base64')}`;

const samples: [string, Buffer, string, number, number][] = [
  ['PNG', makePng(7, 3), 'image/png', 7, 3],
  ['JPEG', makeJpeg(40, 30), 'image/jpeg', 40, 30],
  ['WebP VP8', webpVp8(640, 480), 'image/webp', 640, 480],
  ['WebP VP8L', webpVp8l(1024, 16383), 'image/webp', 1024, 16383],
  ['WebP VP8X', webpVp8x(5000, 70000), 'image/webp', 5000, 70000],
  ['GIF', gif(300, 2), 'image/gif', 300, 2],
];

describe('sniffImage', () => {
  it.each(samples)('reads %s type and dimensions', (_name, bytes, mime, width, height) => {
    expect(sniffImage(bytes)).toEqual({ mime, width, height });
  });

  it.each(samples)('rejects every truncation of a %s', (_name, bytes) => {
    for (let length = 0; length < bytes.length; length++) {
      expect(() => sniffImage(bytes.subarray(0, length))).toThrow(ImageDecodeError);
    }
  });

  it('accepts trailing bytes after a complete image', () => {
    expect(sniffImage(Buffer.concat([makeJpeg(8, 8), Buffer.from([0, 0, 0])]))).toEqual({
      mime: 'image/jpeg',
      width: 8,
      height: 8,
    });
  });

  it.each([
    ['text', Buffer.from('this is not an image at all')],
    ['a BMP', Buffer.from('BM\x3e\x00\x00\x00\x00\x00\x00\x00\x3e\x00\x00\x00', 'latin1')],
    [
      'a damaged PNG signature',
      Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x46]), makePng(2, 2).subarray(4)]),
    ],
    [
      'RIFF that is not WebP',
      Buffer.concat([Buffer.from('RIFF\x10\x00\x00\x00WAVE'), Buffer.alloc(24)]),
    ],
    ['GIF90a', Buffer.concat([Buffer.from('GIF90a'), gif(1, 1).subarray(6)])],
  ])('rejects %s', (_name, bytes) => {
    expect(() => sniffImage(bytes)).toThrow(ImageDecodeError);
  });

  it('rejects zero dimensions', () => {
    expect(() => sniffImage(gif(0, 5))).toThrow(/empty dimensions/);
    const jpeg = makeJpeg(8, 8);
    const sof = jpeg.indexOf(Buffer.from([0xff, 0xc0]));
    expect(() => sniffImage(jpeg.fill(0, sof + 5, sof + 7))).toThrow(/empty dimensions/);
  });

  it('rejects a PNG whose first chunk is not IHDR', () => {
    const png = Buffer.from(makePng(2, 2));
    png.write('IHDX', 12, 'latin1');
    expect(() => sniffImage(png)).toThrow(ImageDecodeError);
  });

  it('never throws anything but ImageDecodeError, whatever the bytes', () => {
    const prefixes = [
      Buffer.alloc(0),
      makePng(1, 1).subarray(0, 16),
      Buffer.from([0xff, 0xd8, 0xff]),
    ];
    const prefixed = fc
      .tuple(
        fc.constantFrom(
          ...prefixes,
          Buffer.from('RIFF\x00\x00\x00\x00WEBPVP8X'),
          Buffer.from('GIF89a'),
        ),
        fc.uint8Array({ maxLength: 300 }),
      )
      .map(([head, tail]) => Buffer.concat([head, tail]));
    fc.assert(
      fc.property(prefixed, (bytes) => {
        try {
          const info = sniffImage(bytes);
          expect(info.width).toBeGreaterThan(0);
          expect(info.height).toBeGreaterThan(0);
        } catch (error) {
          expect(error).toBeInstanceOf(ImageDecodeError);
        }
      }),
      { numRuns: 2000 },
    );
  });
});

describe('decodeImageDataUrl', () => {
  it('decodes a base64 data URL into bytes, type and size', () => {
    const png = makePng(5, 4);
    expect(decodeImageDataUrl(dataUrl('image/png', png))).toEqual({
      bytes: png,
      mime: 'image/png',
      width: 5,
      height: 4,
    });
  });

  it('trusts the bytes, not the claimed type', () => {
    expect(decodeImageDataUrl(dataUrl('image/png', makeJpeg(16, 8))).mime).toBe('image/jpeg');
  });

  it('accepts parameters, upper case and line-wrapped base64', () => {
    const base64 = makePng(3, 3).toString('base64');
    const wrapped = base64.replace(/(.{20})/g, '$1\n');
    expect(decodeImageDataUrl(`DATA:image/png;name=x.png;BASE64,${wrapped}`).width).toBe(3);
  });

  it.each([
    ['an https URL', 'https://cdn.example.com/image.png'],
    ['a data URL without base64', `data:image/png,${makePng(1, 1).toString('latin1')}`],
    ['invalid base64', 'data:image/png;base64,iVBOR$$$w0KGgo='],
    ['base64 of the wrong length', 'data:image/png;base64,iVBORw0KGgo'],
    ['an empty payload', 'data:image/png;base64,'],
    ['base64 of text', dataUrl('image/png', Buffer.from('this is not an image at all'))],
  ])('rejects %s', (_name, url) => {
    expect(() => decodeImageDataUrl(url)).toThrow(ImageDecodeError);
  });
});
