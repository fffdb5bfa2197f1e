import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { ImageStore, isStorableId } from './image-store.js';

/** Which of these ids still have an `images` row. */
export type KnownImages = (ids: readonly string[]) => Promise<ReadonlySet<string>>;

/** Ids checked against the database per query while sweeping. */
const SWEEP_BATCH = 500;

function isMissing(error: unknown): boolean {
  return (error as NodeJS.ErrnoException | null)?.code === 'ENOENT';
}

/**
 * Image bytes as files: `<dir>/<image id>`, one file per image. A write goes to a temporary
 * `.<id>.<random>.tmp` first, is fsynced, renamed into place and the folder fsynced, so a
 * file under its final name is always whole. Reads are `fs` streams (64 KiB at a time, on the
 * libuv pool), so serving a big image never blocks the event loop.
 */
export class FileImageStore extends ImageStore {
  readonly kind = 'files';

  private constructor(
    readonly dir: string,
    private readonly maxBytes: number,
    private readonly known: KnownImages,
    /** A folder made for this process only (`DATA_DIR=memory://`): removed at shutdown. */
    private readonly ephemeral: boolean,
  ) {
    super();
  }

  /** Opens (making it if needed) `dir`; an `ephemeral` one goes away at shutdown. */
  static async create(options: {
    dir: string;
    maxBytes: number;
    known: KnownImages;
    ephemeral?: boolean;
  }): Promise<FileImageStore> {
    await mkdir(options.dir, { recursive: true });
    return new FileImageStore(
      options.dir,
      options.maxBytes,
      options.known,
      options.ephemeral ?? false,
    );
  }

  async put(id: string, bytes: Buffer): Promise<void> {
    this.checkWrite(id, bytes, this.maxBytes);
    const temporary = join(this.dir, `.${id}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      const handle = await open(temporary, 'wx', 0o600);
      try {
        await handle.writeFile(bytes);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await rename(temporary, this.path(id));
    } catch (error) {
      await rm(temporary, { force: true });
      throw error;
    }
    // The rename itself is durable only once the folder's entry is.
    const folder = await open(this.dir, 'r');
    try {
      await folder.sync();
    } finally {
      await folder.close();
    }
  }

  async open(id: string): Promise<Readable | null> {
    if (!isStorableId(id)) return null;
    try {
      // Opened here, not lazily by the stream, so a missing file is a null before any header.
      const handle = await open(this.path(id), 'r');
      return handle.createReadStream({ autoClose: true });
    } catch (error) {
      if (isMissing(error)) return null;
      throw error;
    }
  }

  async delete(ids: readonly string[]): Promise<void> {
    for (const id of ids.filter(isStorableId)) {
      await unlink(this.path(id)).catch((error: unknown) => {
        if (!isMissing(error)) throw error;
      });
    }
  }

  /** Files older than `before` with no row, and temporaries a crash left behind. */
  async removeOrphans(before: Date): Promise<number> {
    const names = await readdir(this.dir);
    const old: string[] = [];
    for (const name of names) {
      const stats = await stat(join(this.dir, name)).catch(() => null);
      if (stats?.isFile() && stats.mtime < before) old.push(name);
    }
    const temporaries = old.filter((name) => name.startsWith('.') && name.endsWith('.tmp'));
    const candidates = old.filter(isStorableId);
    const orphans: string[] = [];
    for (let start = 0; start < candidates.length; start += SWEEP_BATCH) {
      const batch = candidates.slice(start, start + SWEEP_BATCH);
      const kept = await this.known(batch);
      orphans.push(...batch.filter((id) => !kept.has(id)));
    }
    await Promise.all(temporaries.map((name) => rm(join(this.dir, name), { force: true })));
    await this.delete(orphans);
    return orphans.length + temporaries.length;
  }

  /** Nest calls it at shutdown (the store is a provider): an ephemeral folder goes. */
  async onApplicationShutdown(): Promise<void> {
    if (this.ephemeral) await rm(this.dir, { recursive: true, force: true });
  }

  private path(id: string): string {
    return join(this.dir, id);
  }
}
