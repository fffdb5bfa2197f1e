import { turnBody, type UserClient, userClient } from './harness/api.js';
import { wordChunks } from './harness/app.js';
import { bounded, type ChildServer, useChildSuite } from './harness/child-server.js';
import { eventually, expectIdsFrom, replyText, types } from './harness/sse-client.js';

/**
 * Durable turns across two server processes on one PostgreSQL (docs/api-reference.md §8a). Runs only when
 * TEST_DATABASE_URL is set (jest.config.js leaves `*.pg.e2e-spec.ts` out otherwise): an embedded
 * PGlite folder has one process.
 */

const CHUNKS = wordChunks(30);
const REPLY = CHUNKS.join('');

const suite = useChildSuite();
let a: ChildServer;
let b: ChildServer;

beforeAll(async () => {
  const env = { SSE_HEARTBEAT_MS: '200', MAX_STREAMS_PER_USER: '2' };
  [a, b] = await Promise.all([suite.start(env), suite.start(env)]);
}, 120_000);

/** `user` on instance A and on instance B, in a new session made on A. */
async function onBoth(
  user: string,
): Promise<{ onA: UserClient; onB: UserClient; sessionId: string }> {
  const token = await a.token(user);
  const onA = userClient(a.baseUrl, token);
  return { onA, onB: userClient(b.baseUrl, token), sessionId: await onA.session() };
}

it('resumes on B a continue turn that A runs: contiguous ids, one upstream call', async () => {
  suite.upstream.script('m1', { kind: 'stream', chunks: CHUNKS, delayMs: 30 });
  const { onA, onB, sessionId } = await onBoth('carol');
  const body = turnBody('count', { on_disconnect: 'continue' });
  const first = await onA.turn(sessionId, body, {
    onFrame: (frame, disconnect) => frame.id === 3 && disconnect(),
  });
  const rest = await onB.events(sessionId, body.client_msg_id, { lastEventId: 3 });
  expect(rest.status).toBe(200);
  expectIdsFrom(rest, 4);
  expect(types(rest).at(-1)).toBe('final');
  expect(replyText([...first.frames.slice(0, 3), ...rest.frames])).toBe(REPLY);
  expect(suite.upstream.requests).toHaveLength(1);
}, 60_000);

it("follows on B a cancel turn A streams, and a stop on B aborts A's upstream call", async () => {
  suite.upstream.script('m1', { kind: 'stream', chunks: CHUNKS, delayMs: 60 });
  const { onA, onB, sessionId } = await onBoth('dave');
  const body = turnBody('long');
  const id = body.client_msg_id;
  let started!: () => void;
  const streaming = new Promise<void>((resolve) => (started = resolve));
  const owner = onA.turn(sessionId, body, { onFrame: (frame) => frame.id === 2 && started() });
  await streaming;
  const follower = onB.events(sessionId, id, { lastEventId: 0 });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const stop = await onB.cancel(sessionId, id);
  const stoppedAt = performance.now();
  expect(stop).toEqual({ status: 202, body: { status: 'cancelling' } });
  expect((await suite.upstream.requests[0].closed) - stoppedAt).toBeLessThan(100);
  for (const stream of [await owner, await follower]) {
    expect(stream.frames.at(-1)?.data).toMatchObject({ type: 'error', code: 'cancelled' });
  }
  expect(types(await owner).slice(-2)).toEqual(['done', 'error']);
  expect(await onB.cancel(sessionId, id)).toEqual({ status: 200, body: { status: 'cancelled' } });
}, 60_000);

it('holds the stream cap across A and B', async () => {
  suite.upstream.script('m1', { kind: 'stall', afterChunks: 1 });
  const { onA, onB, sessionId } = await onBoth('erin');
  const open = [onA, onB].map((client) =>
    client.turn(sessionId, turnBody('hold', { on_disconnect: 'continue' }), {
      onFrame: (_, disconnect) => disconnect(),
    }),
  );
  await Promise.all(open);
  const third = await onB.turn(sessionId, turnBody('more'));
  expect([third.status, third.json?.code]).toEqual([429, 'rate_limited']);
  const fourth = await onA.turn(sessionId, turnBody('more'));
  expect(fourth.status).toBe(429);
}, 60_000);

it("reports A's death to B's follower within 10 s with a retryable error", async () => {
  suite.upstream.script('m1', { kind: 'stream', chunks: CHUNKS, delayMs: 200 });
  const { onA, onB, sessionId } = await onBoth('frank');
  const body = turnBody('long', { on_disconnect: 'continue' });
  let started!: () => void;
  const streaming = new Promise<void>((resolve) => (started = resolve));
  void onA
    .turn(sessionId, body, {
      onFrame: (frame, disconnect) => {
        if (frame.id === 2) {
          started();
          disconnect();
        }
      },
    })
    .catch(() => undefined);
  await streaming;
  const follower = onB.events(sessionId, body.client_msg_id, { lastEventId: 0 });
  await eventually(async () => suite.upstream.requests[0]?.receivedAt !== undefined);
  await new Promise((resolve) => setTimeout(resolve, 500));
  a.kill('SIGKILL');
  const killedAt = performance.now();
  const result = await bounded(follower, 15_000, "B's follower ending");
  expect(performance.now() - killedAt).toBeLessThan(10_000);
  expect(result.frames.at(-1)?.data).toMatchObject({
    type: 'error',
    code: 'upstream_unavailable',
    retryable: true,
  });
  const rows = await suite.store.query<{ status: string }>(
    'SELECT status FROM turns WHERE client_msg_id = $1',
    [body.client_msg_id],
  );
  expect(rows[0].status).not.toBe('running');
}, 60_000);
