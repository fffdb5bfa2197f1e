import { clientMsgId, createSession } from './harness/api.js';
import {
  bounded,
  buildServer,
  type ChildServer,
  freshStore,
  type ServerStore,
  startChild,
  stopAllChildren,
} from './harness/child-server.js';
import { type FakeUpstream, startFakeUpstream } from './harness/fake-upstream.js';
import { eventually, postTurn, types } from './harness/sse-client.js';

/**
 * Durable turns across two server processes on one PostgreSQL (docs/api-reference.md §8a). Runs only when
 * TEST_DATABASE_URL is set (jest.config.js leaves `*.pg.e2e-spec.ts` out otherwise): an embedded
 * PGlite folder has one process.
 */

const CHUNKS = Array.from({ length: 30 }, (_, index) => `w${index} `);
const REPLY = CHUNKS.join('');

let main: string;
let upstream: FakeUpstream;
let store: ServerStore;
let a: ChildServer;
let b: ChildServer;

beforeAll(async () => {
  [main, upstream, store] = await Promise.all([buildServer(), startFakeUpstream(), freshStore()]);
  const env = {
    ...store.env,
    LLM_BASE_URL: upstream.baseUrl,
    LLM_API_KEY: 'test-key',
    CHAT_MODELS: 'm1',
    IMAGE_MODELS: '',
    IMAGE_COMPOSE_MODEL: 'off',
    SSE_HEARTBEAT_MS: '200',
    MAX_STREAMS_PER_USER: '2',
  };
  [a, b] = await Promise.all([startChild(main, env), startChild(main, env)]);
}, 180_000);

afterAll(async () => {
  await stopAllChildren();
  await upstream?.close();
  await store?.drop();
});

beforeEach(() => upstream.reset());

/** `GET …/events` on `child`, read to its end. */
async function follow(
  child: ChildServer,
  token: string,
  sessionId: string,
  id: string,
  after: number,
) {
  const response = await fetch(`${child.baseUrl}/v1/sessions/${sessionId}/turns/${id}/events`, {
    headers: { authorization: `Bearer ${token}`, 'last-event-id': String(after) },
  });
  const raw = await response.text();
  const frames = raw
    .split('\n\n')
    .map((block) => ({ id: /^id: (\d+)$/m.exec(block), data: /^data: (.*)$/m.exec(block) }))
    .filter((block) => block.id && block.data)
    .map((block) => ({
      id: Number(block.id![1]),
      data: JSON.parse(block.data![1]) as { type: string },
    }));
  return { status: response.status, frames, at: performance.now() };
}

it('resumes on B a continue turn that A runs: contiguous ids, one upstream call', async () => {
  upstream.script('m1', { kind: 'stream', chunks: CHUNKS, delayMs: 30 });
  const token = await a.token('carol');
  const sessionId = await createSession(a.baseUrl, token);
  const id = clientMsgId('pg-resume');
  const first = await postTurn(
    a.baseUrl,
    sessionId,
    token,
    { content: 'count', client_msg_id: id, on_disconnect: 'continue' },
    { onFrame: (frame, disconnect) => frame.id === 3 && disconnect() },
  );
  const rest = await follow(b, token, sessionId, id, 3);
  expect(rest.status).toBe(200);
  expect(rest.frames.map((frame) => frame.id)).toEqual(
    Array.from({ length: rest.frames.length }, (_, index) => index + 4),
  );
  expect(rest.frames.at(-1)?.data.type).toBe('final');
  const joined = [
    ...first.frames.slice(0, 3).map((frame) => frame.data),
    ...rest.frames.map((frame) => frame.data),
  ]
    .filter((frame) => frame.type === 'delta')
    .map((frame) => (frame as unknown as { content: string }).content)
    .join('');
  expect(joined).toBe(REPLY);
  expect(upstream.requests).toHaveLength(1);
}, 60_000);

it("follows on B a cancel turn A streams, and a stop on B aborts A's upstream call", async () => {
  upstream.script('m1', { kind: 'stream', chunks: CHUNKS, delayMs: 60 });
  const token = await a.token('dave');
  const sessionId = await createSession(a.baseUrl, token);
  const id = clientMsgId('pg-stop');
  let started!: () => void;
  const streaming = new Promise<void>((resolve) => (started = resolve));
  const owner = postTurn(
    a.baseUrl,
    sessionId,
    token,
    { content: 'long', client_msg_id: id },
    {
      onFrame: (frame) => frame.id === 2 && started(),
    },
  );
  await streaming;
  const follower = follow(b, token, sessionId, id, 0);
  await new Promise((resolve) => setTimeout(resolve, 300));
  const stop = await fetch(`${b.baseUrl}/v1/sessions/${sessionId}/turns/${id}/cancel`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  const stoppedAt = performance.now();
  expect([stop.status, await stop.json()]).toEqual([202, { status: 'cancelling' }]);
  expect((await upstream.requests[0].closed) - stoppedAt).toBeLessThan(100);
  for (const stream of [await owner, await follower]) {
    expect(stream.frames.at(-1)?.data).toMatchObject({ type: 'error', code: 'cancelled' });
  }
  expect(types(await owner).slice(-2)).toEqual(['done', 'error']);
  const again = await fetch(`${b.baseUrl}/v1/sessions/${sessionId}/turns/${id}/cancel`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
  });
  expect([again.status, await again.json()]).toEqual([200, { status: 'cancelled' }]);
}, 60_000);

it('holds the stream cap across A and B', async () => {
  upstream.script('m1', { kind: 'stall', afterChunks: 1 });
  const token = await a.token('erin');
  const sessionId = await createSession(a.baseUrl, token);
  const open = [a, b].map((child) =>
    postTurn(
      child.baseUrl,
      sessionId,
      token,
      {
        content: 'hold',
        client_msg_id: clientMsgId('pg-cap'),
        on_disconnect: 'continue',
      },
      { onFrame: (_, disconnect) => disconnect() },
    ),
  );
  await Promise.all(open);
  const third = await postTurn(b.baseUrl, sessionId, token, {
    content: 'more',
    client_msg_id: clientMsgId('pg-cap'),
  });
  expect([third.status, third.json?.code]).toEqual([429, 'rate_limited']);
  const fourth = await postTurn(a.baseUrl, sessionId, token, {
    content: 'more',
    client_msg_id: clientMsgId('pg-cap'),
  });
  expect(fourth.status).toBe(429);
}, 60_000);

it("reports A's death to B's follower within 10 s with a retryable error", async () => {
  upstream.script('m1', { kind: 'stream', chunks: CHUNKS, delayMs: 200 });
  const token = await a.token('frank');
  const sessionId = await createSession(a.baseUrl, token);
  const id = clientMsgId('pg-kill');
  let started!: () => void;
  const streaming = new Promise<void>((resolve) => (started = resolve));
  void postTurn(
    a.baseUrl,
    sessionId,
    token,
    { content: 'long', client_msg_id: id, on_disconnect: 'continue' },
    {
      onFrame: (frame, disconnect) => {
        if (frame.id === 2) {
          started();
          disconnect();
        }
      },
    },
  ).catch(() => undefined);
  await streaming;
  const follower = follow(b, token, sessionId, id, 0);
  await eventually(async () => upstream.requests[0]?.receivedAt !== undefined);
  await new Promise((resolve) => setTimeout(resolve, 500));
  a.kill('SIGKILL');
  const killedAt = performance.now();
  const result = await bounded(follower, 15_000, "B's follower ending");
  expect(result.frames.at(-1)?.data).toMatchObject({
    type: 'error',
    code: 'upstream_unavailable',
    retryable: true,
  });
  expect(result.at - killedAt).toBeLessThan(10_000);
  const rows = await store.query<{ status: string }>(
    'SELECT status FROM turns WHERE client_msg_id = $1',
    [id],
  );
  expect(rows[0].status).not.toBe('running');
}, 60_000);
