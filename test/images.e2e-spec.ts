import { randomBytes, randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { eq, sql } from 'drizzle-orm';
import { DatabaseClient } from '../src/database/database.client.js';
import { imageChunks, images, messages } from '../src/database/schema.js';
import { FileImageStore } from '../src/images/file-image.store.js';
import { ImageStore } from '../src/images/image-store.js';
import { ImageSweepJob, ORPHAN_GRACE_MS } from '../src/images/image-sweep.job.js';
import { ImageUrlSigner } from '../src/images/image-url.signer.js';
import { ImagesRepository } from '../src/images/images.repository.js';
import { turnBody, userClient } from './harness/api.js';
import { startApp, type TestApp, upstreamEnv, useUpstream } from './harness/app.js';
import { frameOf } from './harness/sse-client.js';

const ENV = {
  CHAT_MODELS: 'chat',
  IMAGE_MODELS: 'p1',
  IMAGE_COMPOSE_MODEL: 'off',
  IMAGE_ATTEMPT_TIMEOUT_MS: '5000',
  TURN_TIMEOUT_MS: '20000',
};
const suite = useUpstream(ENV);
const { app } = suite;

const forced = (content: string) => turnBody(content, { image: { force: true } });

const store = (target: TestApp = app): ImageStore => target.app.get(ImageStore);
const database = (target: TestApp = app): DatabaseClient => target.app.get(DatabaseClient);
const imageIdOf = (url: string): string =>
  decodeURIComponent(new URL(url).pathname.replace('/v1/images/', ''));

/** Whether the store holds bytes for `id`, asked of its medium directly (not through the store). */
async function storedInMedium(id: string): Promise<boolean> {
  const current = store();
  if (current instanceof FileImageStore) return (await readdir(current.dir)).includes(id);
  const rows = await database()
    .db.select({ seq: imageChunks.seq })
    .from(imageChunks)
    .where(eq(imageChunks.imageId, id));
  return rows.length > 0;
}

/** A turn that draws a 64×64 PNG; returns where it lives and the bytes the stream carried inline. */
async function drawImage(sessionId: string): Promise<{ url: string; id: string; bytes: Buffer }> {
  const response = await suite.turn(sessionId, forced('a lighthouse'));
  const frame = frameOf(response, 'image');
  const bytes = Buffer.from(frame.data_url!.replace(/^data:image\/png;base64,/, ''), 'base64');
  return { url: frame.url, id: imageIdOf(frame.url), bytes };
}

describe('image store', () => {
  it('stores an image turn’s bytes in the store, not in the embedded database', async () => {
    const sessionId = await suite.session();
    const { id, bytes } = await drawImage(sessionId);
    expect(bytes.subarray(1, 4).toString('latin1')).toBe('PNG');

    expect(await storedInMedium(id)).toBe(true);
    expect(await store().read(id)).toEqual(bytes);
    const [row] = await database().db.select().from(images).where(eq(images.id, id));
    expect(row).toMatchObject({ sessionId, size: bytes.length, mime: 'image/png' });
    expect(Object.keys(row)).not.toContain('bytes');
    if (database().kind === 'pglite') {
      expect(store()).toBeInstanceOf(FileImageStore);
      const [{ count }] = await database()
        .db.select({ count: sql<number>`count(*)::int` })
        .from(imageChunks);
      expect(count).toBe(0);
    } else {
      expect(store().kind).toBe('postgres');
    }
  });

  it('serves the bytes at the signed URL with an ETag and an immutable private cache until exp', async () => {
    const { url, id, bytes } = await drawImage(await suite.session());
    const response = await fetch(url);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toBe('image/png');
    expect(response.headers.get('content-length')).toBe(String(bytes.length));
    expect(response.headers.get('etag')).toBe(`"${id}"`);
    const exp = Number(new URL(url).searchParams.get('exp'));
    const maxAge = Number(
      /^private, max-age=(\d+), immutable$/.exec(response.headers.get('cache-control') ?? '')?.[1],
    );
    // Never past the URL's expiry (a second may pass between signing and serving).
    expect(maxAge).toBeLessThanOrEqual(exp - Math.floor(Date.now() / 1000) + 1);
    expect(maxAge).toBeGreaterThan(app.config.image.urlTtlSeconds - 60);
    expect(Buffer.from(await response.arrayBuffer())).toEqual(bytes);
  });

  it('answers 304 with no body to a matching If-None-Match, 200 to another', async () => {
    const { url, id } = await drawImage(await suite.session());
    const cached = await fetch(url, { headers: { 'if-none-match': `"${id}"` } });
    expect(cached.status).toBe(304);
    expect(cached.headers.get('etag')).toBe(`"${id}"`);
    expect(cached.headers.get('cache-control')).toMatch(/^private, max-age=\d+, immutable$/);
    expect(await cached.text()).toBe('');

    const other = await fetch(url, { headers: { 'if-none-match': '"img_other"' } });
    expect(other.status).toBe(200);
  });

  it('answers 403 to a tampered signature before any lookup', async () => {
    const { url } = await drawImage(await suite.session());
    const lookups = jest.spyOn(app.app.get(ImagesRepository), 'findById');
    const opens = jest.spyOn(store(), 'open');
    try {
      const sig = new URL(url).searchParams.get('sig')!;
      const tampered = url.replace(
        `sig=${sig}`,
        `sig=${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`,
      );
      for (const headers of [{}, { 'if-none-match': '*' }] as Record<string, string>[]) {
        const response = await fetch(tampered, { headers });
        expect(response.status).toBe(403);
        expect(await response.json()).toEqual({ code: 'forbidden', message: expect.any(String) });
      }
      expect(lookups).not.toHaveBeenCalled();
      expect(opens).not.toHaveBeenCalled();
    } finally {
      lookups.mockRestore();
      opens.mockRestore();
    }
  });

  it('deleting a session removes its image bytes, and its URLs answer 404', async () => {
    const sessionId = await suite.session();
    const first = await drawImage(sessionId);
    const second = await drawImage(sessionId);
    const keptSession = await suite.session();
    const kept = await drawImage(keptSession);

    const response = await fetch(`${app.baseUrl}/v1/sessions/${sessionId}`, {
      method: 'DELETE',
      headers: { authorization: `Bearer ${suite.token}` },
    });
    expect(response.status).toBe(204);

    expect(await storedInMedium(first.id)).toBe(false);
    expect(await storedInMedium(second.id)).toBe(false);
    expect(await storedInMedium(kept.id)).toBe(true);
    expect((await fetch(first.url)).status).toBe(404);
    expect((await fetch(kept.url)).status).toBe(200);
  });

  it('the sweep removes old bytes without a row (a crash between bytes and row), nothing else', async () => {
    const { id: live } = await drawImage(await suite.session());
    const orphan = randomUUID();
    await store().put(orphan, Buffer.from('bytes whose row was never written'));
    const sweep = app.app.get(ImageSweepJob);

    // Young bytes may be between their write and their row's: kept.
    await sweep.run();
    expect(await storedInMedium(orphan)).toBe(true);

    await sweep.run(Date.now() + ORPHAN_GRACE_MS + 60_000);
    expect(await storedInMedium(orphan)).toBe(false);
    expect(await storedInMedium(live)).toBe(true);
  });

  it('replays a turn with its image read back from the store', async () => {
    const sessionId = await suite.session();
    const body = forced('a windmill');
    const live = frameOf(await suite.turn(sessionId, body), 'image');
    const replay = await suite.turn(sessionId, body);
    const replayed = frameOf(replay, 'image');
    expect(replayed.data_url).toBe(live.data_url);
    expect(imageIdOf(replayed.url)).toBe(imageIdOf(live.url));
  });

  it('keeps answering /healthz while clients fetch a multi-MB image', async () => {
    const sessionId = await suite.session();
    const messageId = randomUUID();
    const imageId = randomUUID();
    const bytes = randomBytes(3 * 1024 * 1024);
    await database().db.insert(messages).values({
      id: messageId,
      sessionId,
      role: 'assistant',
      content: '',
      status: 'complete',
    });
    await store().put(imageId, bytes);
    await database().db.insert(images).values({
      id: imageId,
      sessionId,
      messageId,
      mime: 'image/png',
      width: 1,
      height: 1,
      size: bytes.length,
    });
    const url = app.app.get(ImageUrlSigner).sign(imageId).url;

    // Headers first: every fetch is under way before /healthz is asked.
    const fetches = await Promise.all(Array.from({ length: 4 }, () => fetch(url)));
    expect(fetches.map((response) => response.status)).toEqual([200, 200, 200, 200]);
    const health = await fetch(`${app.baseUrl}/healthz`);
    expect(health.status).toBe(200);
    for (const response of fetches) {
      expect(Buffer.from(await response.arrayBuffer()).equals(bytes)).toBe(true);
    }
  });
});

describe('IMAGE_MAX_BYTES', () => {
  let small: TestApp | undefined;

  beforeAll(async () => {
    small = await startApp(upstreamEnv(suite.upstream, { ...ENV, IMAGE_MAX_BYTES: '1024' }));
  });

  afterAll(async () => {
    await small?.close();
  });

  const smallApp = (): TestApp => {
    if (!small) throw new Error('the small app is closed');
    return small;
  };

  it('an upstream image over the limit is a failed decode attempt, with a message saying so', async () => {
    suite.upstream.script('p1', { kind: 'image', width: 256, height: 256 });
    const warnings = jest.spyOn(Logger.prototype, 'warn');
    try {
      const target = smallApp();
      const bob = userClient(target.baseUrl, await target.token('bob'));
      const response = await bob.firstTurn(forced('a big one'));

      expect(frameOf(response, 'image_failed').reason).toBe('chain_exhausted');
      const [message] = await bob.history(response.sessionId);
      expect(message.image_failed?.attempts.map((attempt) => attempt.outcome)).toEqual(['decode']);
      expect(warnings.mock.calls.map((call) => String(call[0]))).toContainEqual(
        expect.stringMatching(
          /\(p1\) returned undecodable data: .*larger than the 1024-byte limit/,
        ),
      );
      const files = store(target);
      if (files instanceof FileImageStore) expect(await readdir(files.dir)).toEqual([]);
    } finally {
      warnings.mockRestore();
    }
  });

  it('the store refuses bytes over the limit', async () => {
    await expect(store(smallApp()).put(randomUUID(), Buffer.alloc(1025))).rejects.toThrow(
      /over the 1024-byte limit/,
    );
  });

  // Last in this block: it closes the app.
  it('with DATA_DIR=memory:// the files live in a per-process temp folder, removed at shutdown', async () => {
    const target = smallApp();
    const current = store(target);
    const dir = current instanceof FileImageStore ? current.dir : null;
    if (dir) {
      expect(dir).not.toBe((store() as FileImageStore).dir);
      await current.put(randomUUID(), Buffer.from('x'));
    }
    small = undefined;
    await target.close();
    if (dir) await expect(readdir(dir)).rejects.toThrow(/ENOENT/);
    else expect(current.kind).toBe('postgres');
  });
});
