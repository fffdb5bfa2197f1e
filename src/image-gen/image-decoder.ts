export type ImageMime = 'image/png' | 'image/jpeg' | 'image/webp' | 'image/gif';

export interface ImageInfo {
  /** The type the bytes really are (sniffed), not the one the data URL claimed. */
  readonly mime: ImageMime;
  readonly width: number;
  readonly height: number;
}

export interface DecodedImage extends ImageInfo {
  readonly bytes: Buffer;
}

/** Why an upstream image was not accepted; the chain records it as a `decode` attempt. */
export class ImageDecodeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ImageDecodeError';
  }
}

const DATA_URL = /^data:([^,]*?);base64,(.*)$/is;
const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

/**
 * Decodes a `data:<mime>;base64,…` URL into checked image bytes. Anything else — including
 * `http(s):` URLs, which we would have to fetch from an upstream-chosen host — is rejected, and so
 * is an image over `maxBytes`, told from the base64 length before anything is decoded.
 */
export function decodeImageDataUrl(url: string, maxBytes = Infinity): DecodedImage {
  if (Math.floor((url.length * 3) / 4) > maxBytes + 1024) {
    throw new ImageDecodeError(`the image is larger than the ${maxBytes}-byte limit`);
  }
  const match = DATA_URL.exec(url.trim());
  if (!match) throw new ImageDecodeError('not a base64 data: URL');
  const payload = match[2].replace(/\s+/g, '');
  if (
    (payload.length / 4) * 3 - (payload.endsWith('==') ? 2 : payload.endsWith('=') ? 1 : 0) >
    maxBytes
  ) {
    throw new ImageDecodeError(`the image is larger than the ${maxBytes}-byte limit`);
  }
  if (payload.length % 4 !== 0 || !BASE64.test(payload)) {
    throw new ImageDecodeError('data URL payload is not valid base64');
  }
  const bytes = Buffer.from(payload, 'base64');
  return { bytes, ...sniffImage(bytes) };
}

/** Identifies PNG, JPEG, WebP and GIF by magic bytes and reads their dimensions; throws otherwise. */
export function sniffImage(bytes: Buffer): ImageInfo {
  const info = isPng(bytes)
    ? readPng(bytes)
    : isJpeg(bytes)
      ? readJpeg(bytes)
      : isWebp(bytes)
        ? readWebp(bytes)
        : isGif(bytes)
          ? readGif(bytes)
          : null;
  if (!info) throw new ImageDecodeError('not a PNG, JPEG, WebP or GIF image');
  if (info.width < 1 || info.height < 1) {
    throw new ImageDecodeError(`${info.mime} has empty dimensions ${info.width}×${info.height}`);
  }
  return info;
}

function truncated(mime: ImageMime): ImageDecodeError {
  return new ImageDecodeError(`${mime} data is truncated or malformed`);
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

function isPng(bytes: Buffer): boolean {
  return bytes.length >= 8 && bytes.subarray(0, 8).equals(PNG_SIGNATURE);
}

/** IHDR must come first; walking the chunks to IEND catches a cut-off body. */
function readPng(bytes: Buffer): ImageInfo {
  const mime = 'image/png';
  if (
    bytes.length < 33 ||
    bytes.toString('latin1', 12, 16) !== 'IHDR' ||
    bytes.readUInt32BE(8) !== 13
  ) {
    throw truncated(mime);
  }
  const width = bytes.readUInt32BE(16);
  const height = bytes.readUInt32BE(20);
  let offset = 8;
  for (;;) {
    if (offset + 12 > bytes.length) throw truncated(mime);
    const length = bytes.readUInt32BE(offset);
    const type = bytes.toString('latin1', offset + 4, offset + 8);
    offset += 12 + length;
    if (offset > bytes.length) throw truncated(mime);
    if (type === 'IEND') return { mime, width, height };
  }
}

function isJpeg(bytes: Buffer): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/** SOFn markers carrying the frame size: C0–CF except DHT (C4), JPG (C8) and DAC (CC). */
function isStartOfFrame(marker: number): boolean {
  return marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc;
}

/**
 * Walks the marker segments up to SOS, reading the frame size from SOFn, then requires an EOI
 * after the scan header (entropy-coded data byte-stuffs 0xFF, so FF D9 there is the real end).
 */
function readJpeg(bytes: Buffer): ImageInfo {
  const mime = 'image/jpeg';
  let offset = 2;
  let size: { width: number; height: number } | null = null;
  for (;;) {
    if (offset + 4 > bytes.length || bytes[offset] !== 0xff) throw truncated(mime);
    let marker = bytes[offset + 1];
    // Any number of 0xFF fill bytes may precede a marker.
    while (marker === 0xff) {
      offset += 1;
      if (offset + 4 > bytes.length) throw truncated(mime);
      marker = bytes[offset + 1];
    }
    // Standalone markers (TEM, RSTn) have no length field.
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd7)) {
      offset += 2;
      continue;
    }
    if (marker === 0xd8 || marker === 0xd9) throw truncated(mime);
    const length = bytes.readUInt16BE(offset + 2);
    const end = offset + 2 + length;
    if (length < 2 || end > bytes.length) throw truncated(mime);
    if (isStartOfFrame(marker)) {
      if (length < 7) throw truncated(mime);
      size = { height: bytes.readUInt16BE(offset + 5), width: bytes.readUInt16BE(offset + 7) };
    }
    if (marker === 0xda) {
      if (!size || bytes.indexOf(JPEG_EOI, end) === -1) throw truncated(mime);
      return { mime, ...size };
    }
    offset = end;
  }
}

const JPEG_EOI = Buffer.from([0xff, 0xd9]);

function isWebp(bytes: Buffer): boolean {
  return (
    bytes.length >= 12 &&
    bytes.toString('latin1', 0, 4) === 'RIFF' &&
    bytes.toString('latin1', 8, 12) === 'WEBP'
  );
}

/** The RIFF size covers the whole file, so a shorter buffer was cut off. */
function readWebp(bytes: Buffer): ImageInfo {
  const mime = 'image/webp';
  if (bytes.length < 20 || bytes.readUInt32LE(4) + 8 > bytes.length) throw truncated(mime);
  const chunk = bytes.toString('latin1', 12, 16);
  // Frame tag (3 bytes), the key-frame start code, then 14-bit sizes (top 2 bits: scaling).
  if (chunk === 'VP8 ' && bytes.length >= 30 && bytes.readUIntBE(23, 3) === 0x9d012a) {
    return {
      mime,
      width: bytes.readUInt16LE(26) & 0x3fff,
      height: bytes.readUInt16LE(28) & 0x3fff,
    };
  }
  // Signature byte, then width-1 and height-1 in 14 bits each.
  if (chunk === 'VP8L' && bytes.length >= 25 && bytes[20] === 0x2f) {
    const bits = bytes.readUInt32LE(21);
    return { mime, width: (bits & 0x3fff) + 1, height: ((bits >>> 14) & 0x3fff) + 1 };
  }
  // Flags and 3 reserved bytes, then canvas width-1 and height-1 in 24 bits each.
  if (chunk === 'VP8X' && bytes.length >= 30) {
    return { mime, width: bytes.readUIntLE(24, 3) + 1, height: bytes.readUIntLE(27, 3) + 1 };
  }
  throw truncated(mime);
}

function isGif(bytes: Buffer): boolean {
  const magic = bytes.toString('latin1', 0, 6);
  return magic === 'GIF87a' || magic === 'GIF89a';
}

/** Walks the blocks to the 0x3B trailer, so a cut-off GIF is caught. */
function readGif(bytes: Buffer): ImageInfo {
  const mime = 'image/gif';
  if (bytes.length < 13) throw truncated(mime);
  const width = bytes.readUInt16LE(6);
  const height = bytes.readUInt16LE(8);
  let offset = 13 + colorTableSize(bytes[10]);
  const skipSubBlocks = (): void => {
    for (;;) {
      if (offset >= bytes.length) throw truncated(mime);
      const size = bytes[offset];
      offset += 1 + size;
      if (size === 0) return;
    }
  };
  for (;;) {
    if (offset >= bytes.length) throw truncated(mime);
    const block = bytes[offset];
    if (block === 0x3b) return { mime, width, height };
    if (block === 0x21) {
      offset += 2;
      skipSubBlocks();
    } else if (block === 0x2c) {
      if (offset + 10 > bytes.length) throw truncated(mime);
      // Descriptor (10 bytes), local colour table, LZW minimum code size (1 byte), data.
      offset += 10 + colorTableSize(bytes[offset + 9]) + 1;
      skipSubBlocks();
    } else {
      throw truncated(mime);
    }
  }
}

function colorTableSize(packed: number): number {
  return packed & 0x80 ? 3 * 2 ** ((packed & 0x07) + 1) : 0;
}
