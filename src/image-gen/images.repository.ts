import { Inject, Injectable } from '@nestjs/common';
import { eq } from 'drizzle-orm';
import { DatabaseClient } from '../database/database.client.js';
import { images } from '../database/schema.js';

export interface StoredImageBytes {
  readonly id: string;
  readonly mime: string;
  readonly bytes: Buffer;
}

/** Reads generated images for the signed-URL endpoint. */
@Injectable()
export class ImagesRepository {
  constructor(@Inject(DatabaseClient) private readonly database: DatabaseClient) {}

  async findById(id: string): Promise<StoredImageBytes | null> {
    const [row] = await this.database.db
      .select({ id: images.id, mime: images.mime, bytes: images.bytes })
      .from(images)
      .where(eq(images.id, id))
      .limit(1);
    return row ?? null;
  }
}
