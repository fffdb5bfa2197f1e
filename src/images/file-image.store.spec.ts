import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { FileImageStore } from './file-image.store.js';
import { ImageStoreError } from './image-store.js';

describe('FileImageStore', () => {
  let parent: string;
  let dir: string;
  /** Ids that have an `images` row, as the database would answer. */
  let rows: Set<string>;
  let store: FileImageStore;

  beforeEach(async () => {
    parent = await mkdtemp(join(tmpdir(), 'easel-file-store-spec-'));
    dir = join(parent, 'images');
    rows = new Set();
    store = await FileImageStore.create({
      dir,
      maxBytes: 256 * 1024,
      known: async (ids) => new Set(ids.filter((id) => rows.has(id))),
    });
  });

  afterEach(async () => {
    await rm(parent, { recursive: true, force: true });
  });

  const ago = (ms: number): Date => new Date(Date.now() - ms);

  it('writes a file named by the id, leaving no temporary behind', async () => {
    const bytes = randomBytes(50_000);
    await store.put('img_a', bytes);
    expect(await readdir(dir)).toEqual(['img_a']);
    expect(await readFile(join(dir, 'img_a'))).toEqual(bytes);
  });

  it('streams the bytes back in pieces (64 KiB reads)', async () => {
    const bytes = randomBytes(200_000);
    await store.put('img_a', bytes);
    const stream = await store.open('img_a');
    const parts: Buffer[] = [];
    for await (const part of stream!) parts.push(part as Buffer);
    expect(Buffer.concat(parts)).toEqual(bytes);
    expect(parts.length).toBeGreaterThan(1);
    expect(await store.read('img_a')).toEqual(bytes);
  });

  it('answers null for an id with no file, and for ids that are not file names', async () => {
    await writeFile(join(parent, 'secret'), 'outside the store');
    expect(await store.open('img_missing')).toBeNull();
    expect(await store.open('../secret')).toBeNull();
    expect(await store.open('')).toBeNull();
    expect(await store.read('img_missing')).toBeNull();
  });

  it('refuses more bytes than the limit, and ids that are not file names', async () => {
    await expect(store.put('img_big', Buffer.alloc(256 * 1024 + 1))).rejects.toThrow(
      ImageStoreError,
    );
    await expect(store.put('../escape', Buffer.alloc(1))).rejects.toThrow(ImageStoreError);
    await store.put('img_edge', Buffer.alloc(256 * 1024));
    expect((await readdir(dir)).sort()).toEqual(['img_edge']);
  });

  it('replaces the bytes of an id whole', async () => {
    await store.put('img_a', Buffer.from('first'));
    await store.put('img_a', Buffer.from('second'));
    // rename replaces atomically: the reader sees one whole version, never a mix.
    expect((await store.read('img_a'))?.toString()).toBe('second');
    expect(await readdir(dir)).toEqual(['img_a']);
  });

  it('deletes the files of the given ids and skips the missing', async () => {
    await store.put('img_a', Buffer.from('a'));
    await store.put('img_b', Buffer.from('b'));
    await store.delete(['img_a', 'img_none', '../nope']);
    expect(await readdir(dir)).toEqual(['img_b']);
  });

  it('sweeps old files without a row and old temporaries, keeping young files and rows', async () => {
    for (const id of ['img_kept', 'img_orphan', 'img_young']) await store.put(id, Buffer.from(id));
    await writeFile(join(dir, '.img_crashed.0a1b.tmp'), 'half');
    rows.add('img_kept');
    const old = ago(60 * 60_000);
    for (const name of ['img_kept', 'img_orphan', '.img_crashed.0a1b.tmp']) {
      await utimes(join(dir, name), old, old);
    }

    expect(await store.removeOrphans(ago(10 * 60_000))).toBe(2);
    expect((await readdir(dir)).sort()).toEqual(['img_kept', 'img_young']);
  });

  it('sweeps in batches', async () => {
    const ids = Array.from({ length: 1203 }, (_, index) => `img_${index}`);
    await Promise.all(ids.map((id) => writeFile(join(dir, id), id)));
    ids.filter((_, index) => index % 2 === 0).forEach((id) => rows.add(id));
    const asked: number[] = [];
    const batched = await FileImageStore.create({
      dir,
      maxBytes: 1024,
      known: async (batch) => {
        asked.push(batch.length);
        return new Set(batch.filter((id) => rows.has(id)));
      },
    });
    expect(await batched.removeOrphans(new Date(Date.now() + 1000))).toBe(601);
    expect(asked).toEqual([500, 500, 203]);
    expect((await readdir(dir)).length).toBe(602);
  });

  it('removes an ephemeral folder at shutdown, and keeps a persistent one', async () => {
    await store.put('img_a', Buffer.from('a'));
    await store.onApplicationShutdown();
    expect(await readdir(dir)).toEqual(['img_a']);

    const ephemeral = await FileImageStore.create({
      dir: join(parent, 'ephemeral'),
      maxBytes: 1024,
      known: async () => new Set(),
      ephemeral: true,
    });
    await ephemeral.put('img_b', Buffer.from('b'));
    await ephemeral.onApplicationShutdown();
    expect(await readdir(parent)).toEqual(['images']);
  });
});
