import { performance } from 'node:perf_hooks';
import type { Frame } from '../src/chat/turns/frames.js';
import { clientMsgId, turnBody, userClient } from './harness/api.js';
import { bounded, type ChildServer, httpGet, useChildSuite } from './harness/child-server.js';
import { eventually, expectIdsFrom, type TurnResponse, types } from './harness/sse-client.js';

// The built server in a child process, so SIGTERM goes through the real signal handling. The
// tests share its store (each has its own session): a new PGlite folder costs seconds to create.
const suite = useChildSuite();

/**
 * How long after its last turn ended a draining server may take to exit. The drain lets the last
 * frames flush so the server's close() can end the then-idle keep-alive connections; without that,
 * the exit waits for the client's keep-alive timeout (undici: 4 s).
 */
const EXIT_AFTER_TURNS_MS = 2000;

const CHUNKS = ['One', ' two', ' three', ' four', ' five', ' six', ' seven', ' eight'];

function last(response: TurnResponse): Frame {
  const frame = response.frames.at(-1);
  if (!frame) throw new Error('no frames');
  return frame.data;
}

/** SIGTERMs the child once the first delta has arrived; resolves with when the signal went. */
function sigtermOnFirstDelta(child: ChildServer): {
  onFrame: (frame: { data: Frame }) => void;
  sent: Promise<number>;
} {
  let resolveSent: (at: number) => void = () => undefined;
  const sent = new Promise<number>((resolve) => (resolveSent = resolve));
  let done = false;
  return {
    sent,
    onFrame: (frame) => {
      if (done || frame.data.type !== 'delta') return;
      done = true;
      child.kill('SIGTERM');
      resolveSent(performance.now());
    },
  };
}

it('lets an open turn finish on SIGTERM, refuses new turns meanwhile, then exits 0', async () => {
  // About 2 s of streaming: well within the grace period, long enough to probe the drain.
  suite.upstream.script('m1', { kind: 'stream', chunks: CHUNKS, delayMs: 250 });
  const child = await suite.start({ SHUTDOWN_GRACE_MS: '10000' });
  const alice = userClient(child.baseUrl, await child.token());
  const sessionId = await alice.session();

  const trigger = sigtermOnFirstDelta(child);
  let turnEndedAt: number | null = null;
  const turn = alice
    .turn(
      sessionId,
      { content: 'count to eight', client_msg_id: clientMsgId('drain') },
      { onFrame: trigger.onFrame },
    )
    .finally(() => (turnEndedAt = performance.now()));
  const signalledAt = await trigger.sent;

  // Draining: not ready, and a new turn is refused before it touches the database.
  await eventually(async () => (await httpGet(`${child.baseUrl}/readyz`)).status === 503, 3000);
  const refused = await alice.turn(sessionId, turnBody('and another one'));
  expect(refused.status).toBe(503);
  expect(refused.json).toMatchObject({ code: 'unavailable' });
  expect(turnEndedAt).toBeNull();

  const response = await bounded(turn, 20_000, 'the drained turn ending');
  expect(response.status).toBe(200);
  expectIdsFrom(response);
  expect(types(response)).toEqual(['meta', ...CHUNKS.map(() => 'delta'), 'done', 'final']);
  expect(last(response)).toMatchObject({ type: 'final', replayed: false });
  const done = response.frames.find((frame) => frame.data.type === 'done')?.data;
  expect(done).toMatchObject({ truncated: false });
  // It kept streaming after the signal: most deltas came during the drain.
  const drained = response.frames.filter(
    (frame) => frame.at > signalledAt && frame.data.type === 'delta',
  );
  expect(drained.length).toBeGreaterThanOrEqual(CHUNKS.length - 2);

  const exit = await bounded(child.exited, 20_000, 'the server exiting');
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.at).toBeGreaterThanOrEqual(turnEndedAt ?? Infinity);
  expect(exit.at - (turnEndedAt ?? 0)).toBeLessThan(EXIT_AFTER_TURNS_MS);

  // One upstream call: the drained turn's, answered in full; the refused turn made none.
  expect(suite.upstream.requests).toHaveLength(1);
  await suite.upstream.requests[0].closed;
  expect(suite.upstream.requests[0].clientAborted).toBe(false);

  const rows = await suite.store.query<{ client_msg_id: string; status: string }>(
    'select client_msg_id, status from turns where session_id = $1',
    [sessionId],
  );
  expect(rows).toEqual([{ client_msg_id: expect.stringMatching(/^drain-/), status: 'completed' }]);
}, 60_000);

it('ends a turn still open after SHUTDOWN_GRACE_MS with a retryable error, stored as failed', async () => {
  const graceMs = 500;
  // Two chunks, then silence: only the shutdown can end this turn.
  suite.upstream.script('m1', { kind: 'stall', chunks: ['Partial', ' answer'], afterChunks: 2 });
  const child = await suite.start({
    SHUTDOWN_GRACE_MS: String(graceMs),
    TURN_TIMEOUT_MS: '120000',
  });
  const token = await child.token();
  const alice = userClient(child.baseUrl, token);
  const sessionId = await alice.session();
  const body = turnBody('never finishes');

  const trigger = sigtermOnFirstDelta(child);
  const response = await bounded(
    alice.turn(sessionId, body, { onFrame: trigger.onFrame }),
    20_000,
    'the stalled turn ending',
  );
  const signalledAt = await trigger.sent;

  expect(response.status).toBe(200);
  expectIdsFrom(response);
  expect(types(response)).toEqual(['meta', 'delta', 'delta', 'done', 'error']);
  expect(response.frames[3].data).toMatchObject({ type: 'done', truncated: true });
  expect(last(response)).toMatchObject({
    type: 'error',
    code: 'upstream_unavailable',
    retryable: true,
  });
  // Not before the grace period ran out (a little slack for when the signal was sent).
  const errorAt = response.frames.at(-1)?.at ?? 0;
  expect(errorAt - signalledAt).toBeGreaterThanOrEqual(graceMs - 50);

  const exit = await bounded(child.exited, 20_000, 'the server exiting');
  expect(exit).toMatchObject({ code: 0, signal: null });
  expect(exit.at - signalledAt).toBeLessThan(graceMs + EXIT_AFTER_TURNS_MS);

  // The stalled upstream call was aborted when the grace ran out (not by the kernel at exit).
  expect(suite.upstream.requests).toHaveLength(1);
  const closedAt = await suite.upstream.requests[0].closed;
  expect(suite.upstream.requests[0].clientAborted).toBe(true);
  expect(closedAt - signalledAt).toBeLessThan(graceMs + 1000);
  await eventually(async () => suite.upstream.openConnections() === 0, 3000);

  // Same data, new process: the turn is finished (failed), so the same request replays the error.
  const restarted = await suite.start();
  const again = userClient(restarted.baseUrl, token);
  const replay = await again.turn(sessionId, body);
  expect(replay.status).toBe(200);
  expectIdsFrom(replay);
  expect(types(replay)).toEqual(['meta', 'delta', 'done', 'error']);
  expect(replay.frames[0].data).toEqual(response.frames[0].data);
  expect(replay.frames[1].data).toMatchObject({ type: 'delta', content: 'Partial answer' });
  expect(replay.frames[2].data).toMatchObject({ type: 'done', truncated: true });
  expect(last(replay)).toEqual(last(response));
  expect(suite.upstream.requests).toHaveLength(1);

  const items = await again.history(sessionId);
  expect(items.map((item) => [item.role, item.status])).toEqual([
    ['assistant', 'failed'],
    ['user', 'complete'],
  ]);

  // Idle: SIGTERM exits at once, cleanly.
  const stopAt = performance.now();
  restarted.kill('SIGTERM');
  const idleExit = await bounded(restarted.exited, 20_000, 'the idle server exiting');
  expect(idleExit).toMatchObject({ code: 0, signal: null });
  expect(idleExit.at - stopAt).toBeLessThan(3000);
}, 60_000);
