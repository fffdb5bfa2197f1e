import { Inject, Injectable } from '@nestjs/common';
import { eq, inArray } from 'drizzle-orm';
import { DatabaseClient } from '../database/database.client.js';
import { placeholderRow } from '../database/placeholders.js';
import { images } from '../database/schema.js';

export type NewImage = typeof images.$inferInsert;
/** The columns a prepared insert of an image writes: all but its creation time. */
const IMAGE_COLUMNS = ['id', 'sessionId', 'messageId', 'mime', 'width', 'height', 'size'] as const;
/** An image's row for a prepared insert: every column it writes is given. */
export type ImageValues = Required<Pick<NewImage, (typeof IMAGE_COLUMNS)[number]>>;

/**
 * The values of a prepared insert of an image's row: the placeholders `prefix + column`
 * ({@link prefixed} of an {@link ImageValues}), for a caller that writes it in its own statement.
 */
export function imagePlaceholders(prefix: string) {
  return placeholderRow(IMAGE_COLUMNS, prefix);
}

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
