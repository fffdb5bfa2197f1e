import { Readable } from 'node:stream';
import { and, eq, inArray, lt, notExists, sql } from 'drizzle-orm';
import type { Database } from '../database/database.client.js';
import { imageChunks, images } from '../database/schema.js';
import { ImageStore, isStorableId } from './image-store.js';

/** Bytes per `image_chunks` row: what one statement carries, and a read holds, at most. */
export const IMAGE_CHUNK_BYTES = 256 * 1024;

/**
 * Image bytes in PostgreSQL's `image_chunks` table, shared by every instance on the database.
 * A write is one transaction of one insert per chunk; a read is a stream that fetches one
 * chunk per query as the client takes them, so no whole image sits in one buffer. The `pg`
 * driver does its I/O asynchronously.
 */
export class PostgresImageStore extends ImageStore {
  readonly kind = 'postgres';

  constructor(
    private readonly db: Database,
    private readonly maxBytes: number,
  ) {
    super();
  }

  async put(id: string, bytes: Buffer): Promise<void> {
    this.checkWrite(id, bytes, this.maxBytes);
    await this.db.transaction(async (tx) => {
      // An empty image is still stored, as one empty chunk, so `open` can tell it from none.
      for (let seq = 0; seq === 0 || seq * IMAGE_CHUNK_BYTES < bytes.length; seq++) {
        const start = seq * IMAGE_CHUNK_BYTES;
        await tx.insert(imageChunks).values({
          imageId: id,
          seq,
          bytes: bytes.subarray(start, start + IMAGE_CHUNK_BYTES),
        });
      }
    });
  }

  async open(id: string): Promise<Readable | null> {
    if (!isStorableId(id)) return null;
    const first = await this.chunk(id, 0);
    if (!first) return null;
    return Readable.from(this.chunks(id, first), { objectMode: false });
  }

  async delete(ids: readonly string[]): Promise<void> {
    const storable = ids.filter(isStorableId);
    if (storable.length === 0) return;
    await this.db.delete(imageChunks).where(inArray(imageChunks.imageId, storable));
  }

  async removeOrphans(before: Date): Promise<number> {
    const removed = await this.db
      .delete(imageChunks)
      .where(
        and(
          lt(imageChunks.createdAt, before),
          notExists(
            this.db
              .select({ one: sql`1` })
              .from(images)
              .where(eq(images.id, imageChunks.imageId)),
          ),
        ),
      )
      .returning({ imageId: imageChunks.imageId });
    return new Set(removed.map((row) => row.imageId)).size;
  }

  /** Image ids with chunks, for moving bytes that an older version stored here elsewhere. */
  async storedIds(limit: number): Promise<string[]> {
    const rows = await this.db
      .selectDistinct({ imageId: imageChunks.imageId })
      .from(imageChunks)
      .limit(limit);
    return rows.map((row) => row.imageId);
  }

  private async *chunks(id: string, first: Buffer): AsyncGenerator<Buffer> {
    yield first;
    for (let seq = 1; ; seq++) {
      const next = await this.chunk(id, seq);
      if (!next) return;
      yield next;
    }
  }

  private async chunk(id: string, seq: number): Promise<Buffer | null> {
    const [row] = await this.db
      .select({ bytes: imageChunks.bytes })
      .from(imageChunks)
      .where(and(eq(imageChunks.imageId, id), eq(imageChunks.seq, seq)));
    return row?.bytes ?? null;
  }
}
