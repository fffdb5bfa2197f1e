import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Logger, type Provider } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { DatabaseClient, IN_MEMORY } from '../database/database.client.js';
import { FileImageStore } from './file-image.store.js';
import { ImageStore } from './image-store.js';
import { ImagesRepository } from './images.repository.js';
import { PostgresImageStore } from './postgres-image.store.js';

/** Legacy images moved per query at boot. */
const ADOPT_BATCH = 100;

/**
 * The image store for this configuration: PostgreSQL's `image_chunks` with `DATABASE_URL`;
 * otherwise files under `DATA_DIR/images/`. With `DATA_DIR=memory://` (tests) the database
 * lives and dies with the process, so do its images: a fresh folder under the OS temp folder,
 * removed at shutdown.
 */
export const imageStoreProvider: Provider = {
  provide: ImageStore,
  inject: [APP_CONFIG, DatabaseClient, ImagesRepository],
  useFactory: async (
    config: AppConfig,
    database: DatabaseClient,
    rows: ImagesRepository,
  ): Promise<ImageStore> => {
    const maxBytes = config.image.maxBytes;
    if (database.kind === 'postgres') return new PostgresImageStore(database.db, maxBytes);
    const ephemeral = config.dataDir === IN_MEMORY;
    const dir = ephemeral
      ? await mkdtemp(join(tmpdir(), 'easel-images-'))
      : join(config.dataDir, 'images');
    const known = (ids: readonly string[]) => rows.existing(ids);
    const store = await FileImageStore.create({ dir, maxBytes, known, ephemeral });
    await adoptChunks(database, dir, known);
    return store;
  },
};

/**
 * Before the image store, image bytes lived in the database; the migration moved them to
 * `image_chunks`. Embedded, they belong in files: moved here once, at the first boot after.
 */
async function adoptChunks(
  database: DatabaseClient,
  dir: string,
  known: (ids: readonly string[]) => Promise<ReadonlySet<string>>,
): Promise<void> {
  const chunks = new PostgresImageStore(database.db, Number.MAX_SAFE_INTEGER);
  // Older images may be larger than today's limit: they are kept, not refused.
  const files = await FileImageStore.create({ dir, maxBytes: Number.MAX_SAFE_INTEGER, known });
  let moved = 0;
  for (let ids = await chunks.storedIds(ADOPT_BATCH); ids.length > 0;) {
    for (const id of ids) {
      const bytes = await chunks.read(id);
      if (bytes) await files.put(id, bytes);
      await chunks.delete([id]);
      moved++;
    }
    ids = await chunks.storedIds(ADOPT_BATCH);
  }
  if (moved > 0)
    new Logger('ImageStore').log(`moved ${moved} image(s) from the database to ${dir}`);
}
