import { Inject, Injectable } from '@nestjs/common';
import { eq, inArray } from 'drizzle-orm';
import { DatabaseClient, type Executor } from '../database/database.client.js';
import { images } from '../database/schema.js';

export type NewImage = typeof images.$inferInsert;

/** What serving an image needs besides its bytes. */
export interface ImageRow {
  readonly id: string;
  readonly mime: string;
  readonly size: number;
}

/** The `images` table: one row per stored image (its bytes are in the {@link ImageStore}). */
@Injectable()
export class ImagesRepository {
  constructor(@Inject(DatabaseClient) private readonly database: DatabaseClient) {}

  insert(db: Executor, image: NewImage) {
    return db.insert(images).values(image);
  }

  async findById(id: string): Promise<ImageRow | null> {
    const [row] = await this.database.db
      .select({ id: images.id, mime: images.mime, size: images.size })
      .from(images)
      .where(eq(images.id, id))
      .limit(1);
    return row ?? null;
  }

  async idsInSession(sessionId: string): Promise<string[]> {
    const rows = await this.database.db
      .select({ id: images.id })
      .from(images)
      .where(eq(images.sessionId, sessionId));
    return rows.map((row) => row.id);
  }

  /** Which of `ids` still have a row. */
  async existing(ids: readonly string[]): Promise<ReadonlySet<string>> {
    if (ids.length === 0) return new Set();
    const rows = await this.database.db
      .select({ id: images.id })
      .from(images)
      .where(inArray(images.id, [...ids]));
    return new Set(rows.map((row) => row.id));
  }
}
