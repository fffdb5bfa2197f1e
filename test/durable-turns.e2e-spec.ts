import { DatabaseClient } from '../src/database/database.client.js';
import { type FakeUpstream } from './harness/fake-upstream.js';
import { closeAll, startWithUpstream, type TestApp, type UpstreamSuite } from './harness/app.js';
import { clientMsgId, createSession, listMessages } from './harness/api.js';
import {
  eventually,
  getTurnEvents,
  framesOf,
  postTurn,
  type ReceivedFrame,
  type TurnResponse,
  types,
} from './harness/sse-client.js';

/** Durable turns (docs/api-reference.md §8a) and the turn-lifecycle hardening of issue 12 (items 1 and 8). */

const CHUNKS = Array.from({ length: 16 }, (_, index) => `w${index} `);
const REPLY = CHUNKS.join('');

let upstream: FakeUpstream;
let app: TestApp;
let token: string;

beforeAll(async () => {
  ({ upstream, app, token } = await startWithUpstream({
    CHAT_MODELS: 'chat',
    IMAGE_MODELS: 'p1',
    IMAGE_COMPOSE_MODEL: 'composer',
    TURN_TIMEOUT_MS: '8000',
    SSE_HEARTBEAT_MS: '200',
    RESUME_WINDOW_MS: '4000',
  }));
});

afterAll(() => closeAll(app, upstream));

beforeEach(() => upstream.reset());

const turnUrl = (sessionId: string, clientMsgId: string, rest = ''): string =>
  `${app.baseUrl}/v1/sessions/${sessionId}/turns/${clientMsgId}${rest}`;

/** A resume: `GET …/events` after a cursor (`Last-Event-ID` or `?after=`). */
function events(
  sessionId: string,
  clientMsgId: string,
  options: { lastEventId?: number; after?: number; userToken?: string } = {},
): Promise<TurnResponse> {
  return getTurnEvents(app.baseUrl, sessionId, clientMsgId, options.userToken ?? token, {
    after: options.after,
    headers:
      options.lastEventId === undefined ? {} : { 'last-event-id': String(options.lastEventId) },
  });
}

async function stop(sessionId: string, clientMsgId: string, userToken = token) {
  const response = await fetch(turnUrl(sessionId, clientMsgId, '/cancel'), {
    method: 'POST',
    headers: { authorization: `Bearer ${userToken}` },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
}

const text = (frames: ReceivedFrame[]): string =>
  frames
    .filter((frame) => frame.data.type === 'delta')
    .map((frame) => (frame.data as { content: string }).content)
    .join('');

/** The frame lines of a raw SSE body (no pings): what "byte-identical" compares. */
const frameBlocks = (raw: string, upTo = Infinity): string[] =>
  raw
    .split('\n\n')
    .map((block) => block.replace(/^\n+/, ''))
    .filter((block) => block.startsWith('id: ') && Number(/^id: (\d+)/.exec(block)![1]) <= upTo);

/** Starts a `continue` turn and drops the connection after `n` frames. */
async function dropAfter(sessionId: string, clientMsgId: string, n: number, content = 'count') {
  return postTurn(
    app.baseUrl,
    sessionId,
    token,
    { content, client_msg_id: clientMsgId, on_disconnect: 'continue' },
    { onFrame: (frame, disconnect) => frame.id === n && disconnect() },
  );
}

describe('resume', () => {
  it.each([
    ['GET …/events with Last-Event-ID', 'header'],
    ['GET …/events?after=', 'query'],
    ['POST …/turns with Last-Event-ID', 'post'],
  ])(
    'continues a dropped continue turn by %s: contiguous ids, one upstream call',
    async (_, how) => {
      upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 30 });
      const sessionId = await createSession(app.baseUrl, token);
      const id = clientMsgId('durable');
      const first = await dropAfter(sessionId, id, 4);
      expect(first.frames.map((frame) => frame.id)).toEqual([1, 2, 3, 4]);

      const rest =
        how === 'post'
          ? await postTurn(
              app.baseUrl,
              sessionId,
              token,
              { content: 'count', client_msg_id: id, on_disconnect: 'continue' },
              { headers: { 'last-event-id': '4' } },
            )
          : await events(sessionId, id, how === 'header' ? { lastEventId: 4 } : { after: 4 });
      expect(rest.status).toBe(200);
      const ids = rest.frames.map((frame) => frame.id);
      expect(ids).toEqual(Array.from({ length: ids.length }, (_, index) => index + 5));
      expect(types(rest).at(-1)).toBe('final');
      expect(text([...first.frames, ...rest.frames])).toBe(REPLY);
      expect(upstream.requests.filter((request) => request.model === 'chat')).toHaveLength(1);

      // The whole log again, from 0: the same bytes as the two halves.
      const all = await events(sessionId, id);
      expect(frameBlocks(all.raw)).toEqual([
        ...frameBlocks(first.raw, 4),
        ...frameBlocks(rest.raw),
      ]);
    },
  );

  it('serves several followers at once, a slow one included, without holding the others', async () => {
    upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 30 });
    const sessionId = await createSession(app.baseUrl, token);
    const id = clientMsgId('durable');
    const owner = dropAfter(sessionId, id, 2);
    await owner;
    // A follower that reads nothing until the turn has ended.
    const slow = await fetch(turnUrl(sessionId, id, '/events'), {
      headers: { authorization: `Bearer ${token}`, 'last-event-id': '0' },
    });
    const followers = await Promise.all([
      events(sessionId, id, { after: 1 }),
      events(sessionId, id, { after: 2 }),
    ]);
    for (const follower of followers) expect(types(follower).at(-1)).toBe('final');
    const ended = performance.now();
    const slowRaw = await slow.text();
    expect(performance.now() - ended).toBeLessThan(1000);
    expect(frameBlocks(slowRaw).slice(2)).toEqual(frameBlocks(followers[1].raw));
  });

  it('runs a continue turn to its end with nobody attached; it is stored and replays', async () => {
    upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 10 });
    const sessionId = await createSession(app.baseUrl, token);
    const id = clientMsgId('durable');
    await dropAfter(sessionId, id, 1);
    const [assistant] = await eventually(async () => {
      const items = await listMessages(app.baseUrl, sessionId, token);
      return items[0]?.role === 'assistant' && items[0].status === 'complete' ? items : null;
    });
    expect(assistant.content).toBe(REPLY);
    const replay = await postTurn(app.baseUrl, sessionId, token, {
      content: 'count',
      client_msg_id: id,
      on_disconnect: 'continue',
    });
    expect(framesOf(replay, 'final')[0]).toMatchObject({ replayed: true });
    expect(upstream.requests).toHaveLength(1);
  });

  it('answers 410 resume_expired once the window has passed, and the v1 replay still works', async () => {
    upstream.script('chat', { kind: 'stream', chunks: ['short'] });
    const sessionId = await createSession(app.baseUrl, token);
    const id = clientMsgId('durable');
    const first = await postTurn(app.baseUrl, sessionId, token, {
      content: 'hi',
      client_msg_id: id,
    });
    expect(types(first).at(-1)).toBe('final');
    expect((await events(sessionId, id, { after: 1 })).status).toBe(200);
    await new Promise((resolve) => setTimeout(resolve, 4200));
    const late = await events(sessionId, id, { after: 1 });
    expect([late.status, late.json?.code]).toEqual([410, 'resume_expired']);
    const replay = await postTurn(app.baseUrl, sessionId, token, {
      content: 'hi',
      client_msg_id: id,
    });
    expect(framesOf(replay, 'final')[0]).toMatchObject({ replayed: true });
  });

  it("answers 404 turn_not_found for an unknown key and another user's, on every new route", async () => {
    upstream.script('chat', { kind: 'stream', chunks: ['mine'] });
    const sessionId = await createSession(app.baseUrl, token);
    const id = clientMsgId('durable');
    await postTurn(app.baseUrl, sessionId, token, { content: 'hi', client_msg_id: id });
    const mallory = await app.token('mallory');
    for (const [key, who] of [
      [id, mallory],
      [clientMsgId('durable'), token],
    ] as const) {
      const followed = await events(sessionId, key, { userToken: who });
      expect([followed.status, followed.json?.code]).toEqual([404, 'turn_not_found']);
      const stopped = await stop(sessionId, key, who);
      expect([stopped.status, stopped.body.code]).toEqual([404, 'turn_not_found']);
    }
    const attached = await postTurn(
      app.baseUrl,
      sessionId,
      mallory,
      { content: 'hi', client_msg_id: id },
      { headers: { 'last-event-id': '1' } },
    );
    expect(attached.status).toBe(404);
  });
});

describe('stop', () => {
  async function stopWhile(
    script: () => void,
    body: Record<string, unknown>,
    when: (frame: ReceivedFrame) => boolean,
    upstreamIndex: () => number,
  ) {
    script();
    const sessionId = await createSession(app.baseUrl, token);
    const id = clientMsgId('durable');
    let stoppedAt = 0;
    let answer: Promise<{ status: number; body: Record<string, unknown> }> | null = null;
    const stream = await postTurn(
      app.baseUrl,
      sessionId,
      token,
      { client_msg_id: id, ...body },
      {
        onFrame: (frame) => {
          if (answer || !when(frame)) return;
          answer = (async () => {
            // The call in flight must have reached the upstream before the stop.
            await eventually(async () => upstream.requests.length > upstreamIndex());
            const result = await stop(sessionId, id);
            stoppedAt = performance.now();
            return result;
          })();
        },
      },
    );
    expect([await answer!, types(stream)]).toEqual([
      { status: 202, body: { status: 'cancelling' } },
      types(stream),
    ]);
    const closedAt = await upstream.requests[upstreamIndex()].closed;
    expect(closedAt - stoppedAt).toBeLessThan(100);
    const last = stream.frames.at(-1)!.data;
    expect(last).toMatchObject({ type: 'error', code: 'cancelled', retryable: false });
    expect(await stop(sessionId, id)).toEqual({ status: 200, body: { status: 'cancelled' } });
    return { stream, sessionId };
  }

  it('while the text streams: done(truncated) then error cancelled, stored cancelled', async () => {
    const { stream, sessionId } = await stopWhile(
      () => upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 60 }),
      { content: 'long' },
      (frame) => frame.data.type === 'delta',
      () => 0,
    );
    expect(types(stream).slice(-2)).toEqual(['done', 'error']);
    expect(framesOf(stream, 'done')[0].truncated).toBe(true);
    const [assistant] = await listMessages(app.baseUrl, sessionId, token);
    expect(assistant.status).toBe('cancelled');
  });

  it('while the composer runs', async () => {
    const { stream } = await stopWhile(
      () => {
        upstream.script('chat', { kind: 'stream', chunks: ['a picture'] });
        upstream.script('composer', { kind: 'stall' });
      },
      { content: 'draw', image: { force: true } },
      (frame) => frame.data.type === 'image_pending',
      () => 1,
    );
    expect(types(stream).slice(-2)).toEqual(['image_pending', 'error']);
  });

  it('while an image attempt is in flight', async () => {
    const { stream } = await stopWhile(
      () => {
        upstream.script('chat', { kind: 'stream', chunks: ['a picture'] });
        upstream.script('composer', { kind: 'complete', content: 'a detailed picture' });
        upstream.script('p1', { kind: 'stall' });
      },
      { content: 'draw', image: { force: true } },
      (frame) => frame.data.type === 'image_attempt',
      () => 2,
    );
    expect(types(stream).slice(-2)).toEqual(['image_attempt', 'error']);
  });
});

describe('storage failures (issue 12, item 1) and the deadline (item 8)', () => {
  const database = (): DatabaseClient => app.app.get(DatabaseClient);

  it('a final write that fails ends done(truncated) → error(internal, retryable); the key runs again', async () => {
    upstream.script(
      'chat',
      { kind: 'stream', chunks: ['never ', 'stored'], delayMs: 150 },
      { kind: 'stream', chunks: ['ok'] },
    );
    const sessionId = await createSession(app.baseUrl, token);
    const id = clientMsgId('durable');
    const failing = postTurn(
      app.baseUrl,
      sessionId,
      token,
      { content: 'hi', client_msg_id: id },
      {
        // Two full attempts and the status-only update fail: the row is released to the sweep.
        onFrame: (frame) =>
          frame.data.type === 'meta' && database().injectFaults({ failWrites: 3 }),
      },
    );
    const stream = await failing;
    expect(types(stream)).toEqual(['meta', 'delta', 'delta', 'done', 'error']);
    expect(framesOf(stream, 'done')[0].truncated).toBe(true);
    expect(framesOf(stream, 'error')[0]).toMatchObject({ code: 'internal', retryable: true });

    // readyz is not ready while writes are refused; it recovers with them.
    database().injectFaults({ failWrites: 1 });
    expect((await fetch(`${app.baseUrl}/readyz`)).status).toBe(503);
    expect((await fetch(`${app.baseUrl}/readyz`)).status).toBe(200);

    const rerun = await eventually(async () => {
      const attempt = await postTurn(app.baseUrl, sessionId, token, {
        content: 'hi',
        client_msg_id: id,
      });
      return attempt.status === 200 ? attempt : null;
    }, 5000);
    expect(framesOf(rerun, 'final')[0]).toMatchObject({ replayed: false });
  });

  it('a turn that cannot start within TURN_TIMEOUT_MS of its arrival gets a pre-stream 503', async () => {
    const sessionId = await createSession(app.baseUrl, token);
    database().injectFaults({ delayWrites: 1, delayMs: 8200 });
    const late = await postTurn(app.baseUrl, sessionId, token, {
      content: 'hi',
      client_msg_id: clientMsgId('durable'),
    });
    expect([late.status, late.json?.code]).toEqual([503, 'unavailable']);
    upstream.script('chat', { kind: 'stream', chunks: ['fine'] });
    const next = await postTurn(app.baseUrl, sessionId, token, {
      content: 'hi',
      client_msg_id: clientMsgId('durable'),
    });
    expect(types(next).at(-1)).toBe('final');
  }, 20_000);
});

describe('the stream cap under a burst', () => {
  let burst: UpstreamSuite;
  const RACERS = 100;

  beforeAll(async () => {
    burst = await startWithUpstream({
      CHAT_MODELS: 'chat',
      IMAGE_MODELS: 'p1',
      MAX_STREAMS_PER_USER: String(RACERS),
    });
  });
  afterAll(() => closeAll(burst.app, burst.upstream));

  it('lets every turn of a user start when all of them fit the cap, however they race', async () => {
    burst.upstream.script('chat', { kind: 'stream', chunks: ['a', 'b'], delayMs: 50 });
    const sessions = await Promise.all(
      Array.from({ length: RACERS }, () => createSession(burst.app.baseUrl, burst.token)),
    );
    const responses = await Promise.all(
      sessions.map((sessionId) =>
        postTurn(burst.app.baseUrl, sessionId, burst.token, {
          content: 'hi',
          client_msg_id: clientMsgId('burst'),
        }),
      ),
    );
    expect(responses.map((response) => response.status)).toEqual(responses.map(() => 200));
    expect(responses.map((response) => types(response).at(-1))).toEqual(
      responses.map(() => 'final'),
    );
  });
});
