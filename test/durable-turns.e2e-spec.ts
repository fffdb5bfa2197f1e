import { DatabaseClient } from '../src/database/database.client.js';
import { useUpstream, wordChunks } from './harness/app.js';
import { clientMsgId, type TurnBody, turnBody, userClient } from './harness/api.js';
import {
  eventually,
  expectIdsFrom,
  framesOf,
  type ReceivedFrame,
  replyText,
  types,
} from './harness/sse-client.js';

/** Durable turns (docs/api-reference.md §8a) and the turn-lifecycle hardening of issue 12 (items 1 and 8). */

const CHUNKS = wordChunks(16);
const REPLY = CHUNKS.join('');

const suite = useUpstream({
  CHAT_MODELS: 'chat',
  IMAGE_MODELS: 'p1',
  IMAGE_COMPOSE_MODEL: 'composer',
  TURN_TIMEOUT_MS: '8000',
  SSE_HEARTBEAT_MS: '200',
  RESUME_WINDOW_MS: '4000',
});

/** The frame lines of a raw SSE body (no pings): what "byte-identical" compares. */
const frameBlocks = (raw: string, upTo = Infinity): string[] =>
  raw
    .split('\n\n')
    .map((block) => block.replace(/^\n+/, ''))
    .filter((block) => block.startsWith('id: ') && Number(/^id: (\d+)/.exec(block)![1]) <= upTo);

/** Starts a `continue` turn in a new session and drops the connection after `n` frames. */
async function dropAfter(n: number) {
  const body = turnBody('count', { on_disconnect: 'continue' });
  const response = await suite.firstTurn(body, {
    onFrame: (frame, disconnect) => frame.id === n && disconnect(),
  });
  return { ...response, body, id: body.client_msg_id };
}

describe('resume', () => {
  it.each([
    ['GET …/events with Last-Event-ID', 'header'],
    ['GET …/events?after=', 'query'],
    ['POST …/turns with Last-Event-ID', 'post'],
  ])(
    'continues a dropped continue turn by %s: contiguous ids, one upstream call',
    async (_, how) => {
      suite.upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 30 });
      const first = await dropAfter(4);
      const { sessionId, id } = first;
      expect(first.frames.map((frame) => frame.id)).toEqual([1, 2, 3, 4]);

      const rest =
        how === 'post'
          ? await suite.turn(sessionId, first.body, { headers: { 'last-event-id': '4' } })
          : await suite.events(sessionId, id, how === 'header' ? { lastEventId: 4 } : { after: 4 });
      expect(rest.status).toBe(200);
      expectIdsFrom(rest, 5);
      expect(types(rest).at(-1)).toBe('final');
      expect(replyText([...first.frames, ...rest.frames])).toBe(REPLY);
      expect(suite.upstream.requests.filter((request) => request.model === 'chat')).toHaveLength(1);

      // The whole log again, from 0: the same bytes as the two halves.
      const all = await suite.events(sessionId, id);
      expect(frameBlocks(all.raw)).toEqual([
        ...frameBlocks(first.raw, 4),
        ...frameBlocks(rest.raw),
      ]);
    },
  );

  it('serves several followers at once, a slow one included, without holding the others', async () => {
    suite.upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 30 });
    const { sessionId, id } = await dropAfter(2);
    // A follower that reads nothing until the turn has ended.
    const slow = await fetch(`${suite.baseUrl}/v1/sessions/${sessionId}/turns/${id}/events`, {
      headers: { authorization: `Bearer ${suite.token}`, 'last-event-id': '0' },
    });
    const followers = await Promise.all([
      suite.events(sessionId, id, { after: 1 }),
      suite.events(sessionId, id, { after: 2 }),
    ]);
    for (const follower of followers) expect(types(follower).at(-1)).toBe('final');
    const ended = performance.now();
    const slowRaw = await slow.text();
    expect(performance.now() - ended).toBeLessThan(1000);
    expect(frameBlocks(slowRaw).slice(2)).toEqual(frameBlocks(followers[1].raw));
  });

  it('runs a continue turn to its end with nobody attached; it is stored and replays', async () => {
    suite.upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 10 });
    const { sessionId, body } = await dropAfter(1);
    const [assistant] = await eventually(async () => {
      const items = await suite.history(sessionId);
      return items[0]?.role === 'assistant' && items[0].status === 'complete' ? items : null;
    });
    expect(assistant.content).toBe(REPLY);
    const replay = await suite.turn(sessionId, body);
    expect(framesOf(replay, 'final')[0]).toMatchObject({ replayed: true });
    expect(suite.upstream.requests).toHaveLength(1);
  });

  it('answers 410 resume_expired once the window has passed, and the v1 replay still works', async () => {
    suite.upstream.script('chat', { kind: 'stream', chunks: ['short'] });
    const body = turnBody('hi');
    const id = body.client_msg_id;
    const first = await suite.firstTurn(body);
    const { sessionId } = first;
    expect(types(first).at(-1)).toBe('final');
    expect((await suite.events(sessionId, id, { after: 1 })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 4200));
    const late = await suite.events(sessionId, id, { after: 1 });
    expect([late.status, late.json?.code]).toEqual([410, 'resume_expired']);
    const replay = await suite.turn(sessionId, body);
    expect(framesOf(replay, 'final')[0]).toMatchObject({ replayed: true });
  });

  it("answers 404 turn_not_found for an unknown key and another user's, on every new route", async () => {
    suite.upstream.script('chat', { kind: 'stream', chunks: ['mine'] });
    const body = turnBody('hi');
    const id = body.client_msg_id;
    const { sessionId } = await suite.firstTurn(body);
    const mallory = userClient(suite.baseUrl, await suite.app.token('mallory'));
    for (const [key, who] of [
      [id, mallory],
      [clientMsgId('unknown'), suite],
    ] as const) {
      const followed = await who.events(sessionId, key);
      expect([followed.status, followed.json?.code]).toEqual([404, 'turn_not_found']);
      const stopped = await who.cancel(sessionId, key);
      expect([stopped.status, stopped.body.code]).toEqual([404, 'turn_not_found']);
    }
    const attached = await mallory.turn(sessionId, body, { headers: { 'last-event-id': '1' } });
    expect(attached.status).toBe(404);
  });
});

describe('stop', () => {
  async function stopWhile(
    script: () => void,
    body: TurnBody,
    when: (frame: ReceivedFrame) => boolean,
    upstreamIndex: () => number,
  ) {
    script();
    const sessionId = await suite.session();
    const id = body.client_msg_id;
    let stoppedAt = 0;
    let answer: Promise<{ status: number; body: Record<string, unknown> }> | null = null;
    const stream = await suite.turn(sessionId, body, {
      onFrame: (frame) => {
        if (answer || !when(frame)) return;
        answer = (async () => {
          // The call in flight must have reached the upstream before the stop.
          await eventually(async () => suite.upstream.requests.length > upstreamIndex());
          const result = await suite.cancel(sessionId, id);
          stoppedAt = performance.now();
          return result;
        })();
      },
    });
    expect([await answer!, types(stream)]).toEqual([
      { status: 202, body: { status: 'cancelling' } },
      types(stream),
    ]);
    const closedAt = await suite.upstream.requests[upstreamIndex()].closed;
    expect(closedAt - stoppedAt).toBeLessThan(100);
    const last = stream.frames.at(-1)!.data;
    expect(last).toMatchObject({ type: 'error', code: 'cancelled', retryable: false });
    expect(await suite.cancel(sessionId, id)).toEqual({
      status: 200,
      body: { status: 'cancelled' },
    });
    return { stream, sessionId };
  }

  it('while the text streams: done(truncated) then error cancelled, stored cancelled', async () => {
    const { stream, sessionId } = await stopWhile(
      () => suite.upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 60 }),
      turnBody('long'),
      (frame) => frame.data.type === 'delta',
      () => 0,
    );
    expect(types(stream).slice(-2)).toEqual(['done', 'error']);
    expect(framesOf(stream, 'done')[0].truncated).toBe(true);
    const [assistant] = await suite.history(sessionId);
    expect(assistant.status).toBe('cancelled');
  });

  it('while the composer runs', async () => {
    const { stream } = await stopWhile(
      () => {
        suite.upstream.script('chat', { kind: 'stream', chunks: ['a picture'] });
        suite.upstream.script('composer', { kind: 'stall' });
      },
      turnBody('draw', { image: { force: true } }),
      (frame) => frame.data.type === 'image_pending',
      () => 1,
    );
    expect(types(stream).slice(-2)).toEqual(['image_pending', 'error']);
  });

  it('while an image attempt is in flight', async () => {
    const { stream } = await stopWhile(
      () => {
        suite.upstream.script('chat', { kind: 'stream', chunks: ['a picture'] });
        suite.upstream.script('composer', { kind: 'complete', content: 'a detailed picture' });
        suite.upstream.script('p1', { kind: 'stall' });
      },
      turnBody('draw', { image: { force: true } }),
      (frame) => frame.data.type === 'image_attempt',
      () => 2,
    );
    expect(types(stream).slice(-2)).toEqual(['image_attempt', 'error']);
  });
});

describe('storage failures (issue 12, item 1) and the deadline (item 8)', () => {
  const database = (): DatabaseClient => suite.app.app.get(DatabaseClient);

  it('a final write that fails ends done(truncated) → error(internal, retryable); the key runs again', async () => {
    suite.upstream.script(
      'chat',
      { kind: 'stream', chunks: ['never ', 'stored'], delayMs: 150 },
      { kind: 'stream', chunks: ['ok'] },
    );
    const body = turnBody('hi');
    const stream = await suite.firstTurn(body, {
      // Two full attempts and the status-only update fail: the row is released to the sweep.
      onFrame: (frame) => frame.data.type === 'meta' && database().injectFaults({ failWrites: 3 }),
    });
    expect(types(stream)).toEqual(['meta', 'delta', 'delta', 'done', 'error']);
    expect(framesOf(stream, 'done')[0].truncated).toBe(true);
    expect(framesOf(stream, 'error')[0]).toMatchObject({ code: 'internal', retryable: true });

    // readyz is not ready while writes are refused; it recovers with them.
    database().injectFaults({ failWrites: 1 });
    expect((await fetch(`${suite.baseUrl}/readyz`)).status).toBe(503);
    expect((await fetch(`${suite.baseUrl}/readyz`)).status).toBe(200);

    const rerun = await eventually(async () => {
      const attempt = await suite.turn(stream.sessionId, body);
      return attempt.status === 200 ? attempt : null;
    }, 5000);
    expect(framesOf(rerun, 'final')[0]).toMatchObject({ replayed: false });
  });

  it('a turn that cannot start within TURN_TIMEOUT_MS of its arrival gets a pre-stream 503', async () => {
    const sessionId = await suite.session();
    database().injectFaults({ delayWrites: 1, delayMs: 8200 });
    const late = await suite.turn(sessionId, turnBody('hi'));
    expect([late.status, late.json?.code]).toEqual([503, 'unavailable']);
    suite.upstream.script('chat', { kind: 'stream', chunks: ['fine'] });
    const next = await suite.turn(sessionId, turnBody('hi'));
    expect(types(next).at(-1)).toBe('final');
  }, 20_000);
});

describe('turn starts beyond TURN_START_CONCURRENCY (item 8) wait their turn', () => {
  const DEADLINE_MS = 1500;
  const gated = useUpstream({
    CHAT_MODELS: 'chat',
    TURN_START_CONCURRENCY: '1',
    TURN_TIMEOUT_MS: String(DEADLINE_MS),
  });
  const database = (): DatabaseClient => gated.app.app.get(DatabaseClient);

  /**
   * A first turn whose first row waits `delayMs`, holding the one start slot meanwhile; 50 ms
   * later, a second session to send the next turn on, and the time it is sent.
   */
  async function behindASlowStart(delayMs: number) {
    const [one, two] = await Promise.all([gated.session(), gated.session()]);
    database().injectFaults({ delayWrites: 1, delayMs });
    const first = gated.turn(one, turnBody('one'));
    await new Promise((resolve) => setTimeout(resolve, 50));
    return { first, two, sentAt: performance.now() };
  }

  it('with one start slot, a second turn starts once the first has (in arrival order)', async () => {
    gated.upstream.script('chat', { kind: 'stream', chunks: ['first'] });
    gated.upstream.script('chat', { kind: 'stream', chunks: ['second'] });
    // The first turn's first row waits 600 ms; the second's write alone would not.
    const { first, two, sentAt } = await behindASlowStart(600);
    const second = await gated.turn(two, turnBody('two'));
    const firstDone = await first;
    expect([types(firstDone).at(-1), types(second).at(-1)]).toEqual(['final', 'final']);
    const metaAt = (response: typeof second): number =>
      response.frames.find((frame) => frame.data.type === 'meta')?.at ?? Infinity;
    expect(metaAt(second)).toBeGreaterThan(metaAt(firstDone));
    expect(metaAt(second) - sentAt).toBeGreaterThanOrEqual(450);
  });

  it('a turn still queued at its deadline gets the pre-stream 503 then, and writes nothing', async () => {
    // The first start holds the slot past both deadlines.
    const { first, two, sentAt } = await behindASlowStart(DEADLINE_MS + 1500);
    const queuedBody = turnBody('two');
    const queued = await gated.turn(two, queuedBody);
    const waitedMs = performance.now() - sentAt;
    expect([queued.status, queued.json?.code]).toEqual([503, 'unavailable']);
    // At its own deadline, not after the first start gave the slot back.
    expect(waitedMs).toBeLessThan(DEADLINE_MS + 1000);
    const stored = await gated.events(two, String(queuedBody.client_msg_id));
    expect([stored.status, stored.json?.code]).toEqual([404, 'turn_not_found']);
    expect((await first).status).toBe(503);
  }, 10_000);
});

describe('the stream cap under a burst', () => {
  const RACERS = 100;
  const burst = useUpstream({
    CHAT_MODELS: 'chat',
    IMAGE_MODELS: 'p1',
    MAX_STREAMS_PER_USER: String(RACERS),
  });

  it('lets every turn of a user start when all of them fit the cap, however they race', async () => {
    burst.upstream.script('chat', { kind: 'stream', chunks: ['a', 'b'], delayMs: 50 });
    const sessions = await Promise.all(Array.from({ length: RACERS }, () => burst.session()));
    const responses = await Promise.all(
      sessions.map((sessionId) => burst.turn(sessionId, turnBody('hi'))),
    );
    expect(responses.map((response) => response.status)).toEqual(responses.map(() => 200));
    expect(responses.map((response) => types(response).at(-1))).toEqual(
      responses.map(() => 'final'),
    );
  });
});
