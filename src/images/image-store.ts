import type { Readable } from 'node:stream';

/** Image ids are our UUIDs; anything else is never stored (and never becomes a file name). */
const IMAGE_ID = /^[A-Za-z0-9_-]{1,128}$/;

export function isStorableId(id: string): boolean {
  return IMAGE_ID.test(id);
}

/** A write the store refuses: a malformed id, or more bytes than IMAGE_MAX_BYTES allows. */
export class ImageStoreError extends Error {
  override readonly name = 'ImageStoreError';
}

/**
 * Where generated image bytes live, apart from the rows that point at them. Two kinds:
 * files under `DATA_DIR/images/` with embedded PGlite, chunks in PostgreSQL (shared by every
 * instance) with `DATABASE_URL`. No method blocks the event loop on the bytes.
 *
 * Ordering rule of its users: `put` resolves once the bytes are durable, and only then is the
 * row that points at them written. A crash in between leaves bytes without a row, which
 * {@link removeOrphans} deletes; never a row without bytes.
 */
export abstract class ImageStore {
  abstract readonly kind: 'files' | 'postgres';

  /** Stores the bytes of `id`; resolves once they would survive a crash. */
  abstract put(id: string, bytes: Buffer): Promise<void>;

  /** The bytes of `id` as a stream, or null when none are stored. */
  abstract open(id: string): Promise<Readable | null>;

  /** Removes the bytes of these ids (ids with none are skipped). */
  abstract delete(ids: readonly string[]): Promise<void>;

  /** Removes bytes stored before `before` whose `images` row is gone; returns how many. */
  abstract removeOrphans(before: Date): Promise<number>;

  /** The whole image in memory: for an inline `data_url`, which needs all of it anyway. */
  async read(id: string): Promise<Buffer | null> {
    const stream = await this.open(id);
    if (!stream) return null;
    const parts: Buffer[] = [];
    for await (const part of stream) parts.push(part as Buffer);
    return Buffer.concat(parts);
  }

  protected checkWrite(id: string, bytes: Buffer, maxBytes: number): void {
    if (!isStorableId(id)) throw new ImageStoreError(`not a storable image id: ${id}`);
    if (bytes.length > maxBytes) {
      throw new ImageStoreError(
        `the image is ${bytes.length} bytes, over the ${maxBytes}-byte limit`,
      );
    }
  }
}
