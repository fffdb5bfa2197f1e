import { inflateSync } from 'node:zlib';
import { crc32, encodePng } from './png.js';

interface Chunk {
  type: string;
  data: Buffer;
  crc: number;
}

function chunksOf(png: Buffer): Chunk[] {
  const chunks: Chunk[] = [];
  let offset = 8;
  while (offset < png.length) {
    const length = png.readUInt32BE(offset);
    const type = png.subarray(offset + 4, offset + 8).toString('latin1');
    const data = png.subarray(offset + 8, offset + 8 + length);
    chunks.push({ type, data, crc: png.readUInt32BE(offset + 8 + length) });
    offset += 12 + length;
  }
  return chunks;
}

describe('crc32', () => {
  it('matches the standard check value and a known PNG chunk CRC', () => {
    expect(crc32(Buffer.from('123456789'))).toBe(0xcbf43926);
    expect(crc32(Buffer.from('IEND'))).toBe(0xae426082);
  });

  it('treats several parts as one concatenated input', () => {
    expect(crc32(Buffer.from('1234'), Buffer.from('56789'))).toBe(0xcbf43926);
  });
});

describe('encodePng', () => {
  const width = 3;
  const height = 2;
  const rgb = Uint8Array.from({ length: width * height * 3 }, (_, i) => (i * 37) % 256);

  it('writes the signature, IHDR, IDAT and IEND with valid CRCs', () => {
    const png = encodePng({ width, height, channels: 3, pixels: rgb });
    expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    const chunks = chunksOf(png);
    expect(chunks.map((c) => c.type)).toEqual(['IHDR', 'IDAT', 'IEND']);
    for (const chunk of chunks) {
      expect(chunk.crc).toBe(crc32(Buffer.from(chunk.type, 'latin1'), chunk.data));
    }
    const ihdr = chunks[0].data;
    expect(ihdr.readUInt32BE(0)).toBe(width);
    expect(ihdr.readUInt32BE(4)).toBe(height);
    expect([...ihdr.subarray(8)]).toEqual([8, 2, 0, 0, 0]);
  });

  it('stores each row behind a filter-0 byte', () => {
    const png = encodePng({ width, height, channels: 3, pixels: rgb });
    const raw = inflateSync(chunksOf(png)[1].data);
    const stride = width * 3;
    expect(raw.length).toBe((stride + 1) * height);
    for (let y = 0; y < height; y++) {
      expect(raw[y * (stride + 1)]).toBe(0);
      expect([...raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1))]).toEqual([
        ...rgb.subarray(y * stride, (y + 1) * stride),
      ]);
    }
  });

  it('uses colour type 6 for RGBA', () => {
    const png = encodePng({ width: 1, height: 1, channels: 4, pixels: Uint8Array.of(1, 2, 3, 4) });
    expect(chunksOf(png)[0].data[9]).toBe(6);
  });

  it('rejects bad dimensions and a pixel buffer of the wrong size', () => {
    expect(() =>
      encodePng({ width: 0, height: 1, channels: 3, pixels: new Uint8Array(0) }),
    ).toThrow(RangeError);
    expect(() =>
      encodePng({ width: 2, height: 2, channels: 3, pixels: new Uint8Array(11) }),
    ).toThrow(RangeError);
  });
});
