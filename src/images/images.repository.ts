import { Inject, Injectable } from '@nestjs/common';
import { eq } from 'drizzle-orm';
import { DatabaseClient, type Executor } from '../database/database.client.js';
import { images } from '../database/schema.js';

export type NewImage = typeof images.$inferInsert;

export interface StoredImageBytes {
  readonly id: string;
  readonly mime: string;
  readonly bytes: Buffer;
}

/** The `images` table: generated image bytes, written with their message, read by id. */
@Injectable()
export class ImagesRepository {
  constructor(@Inject(DatabaseClient) private readonly database: DatabaseClient) {}

  insert(db: Executor, image: NewImage) {
    return db.insert(images).values(image);
  }

  async findById(id: string): Promise<StoredImageBytes | null> {
    const [row] = await this.database.db
      .select({ id: images.id, mime: images.mime, bytes: images.bytes })
      .from(images)
      .where(eq(images.id, id))
      .limit(1);
    return row ?? null;
  }
}
