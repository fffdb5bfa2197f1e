import { connect, type Socket } from 'node:net';
import { eq } from 'drizzle-orm';
import { DatabaseClient } from '../src/database/database.client.js';
import { messages, sessions, turns } from '../src/database/schema.js';
import type { RecordedRequest } from './harness/fake-upstream.js';
import { signToken, useUpstream, wordChunks } from './harness/app.js';
import { turnBody, userClient } from './harness/api.js';
import {
  frameOf,
  framesOf,
  replyText,
  shape,
  type TurnResponse,
  types,
} from './harness/sse-client.js';

/**
 * Issue 12 (hardening): what a client or an upstream sends can neither cause a 500 nor wedge a
 * turn. Every case goes through the real database (PGlite, or PostgreSQL with TEST_DATABASE_URL)
 * and a real local upstream, so aborts are seen on its sockets.
 */

const LIMITS = {
  firstTokenMs: 600,
  idleMs: 600,
  maxTokens: 777,
  replyMaxChars: 2000,
  requestTimeoutMs: 1000,
  keepAliveMs: 2000,
};

const suite = useUpstream(
  {
    CHAT_MODELS: 'hang,ok',
    IMAGE_MODELS: 'p1,p2',
    IMAGE_COMPOSE_MODEL: 'composer',
    IMAGE_ATTEMPT_TIMEOUT_MS: '5000',
    TURN_TIMEOUT_MS: '15000',
    CHAT_FIRST_TOKEN_TIMEOUT_MS: String(LIMITS.firstTokenMs),
    CHAT_IDLE_TIMEOUT_MS: String(LIMITS.idleMs),
    CHAT_MAX_TOKENS: String(LIMITS.maxTokens),
    REPLY_MAX_CHARS: String(LIMITS.replyMaxChars),
    HTTP_HEADERS_TIMEOUT_MS: String(LIMITS.requestTimeoutMs),
    HTTP_REQUEST_TIMEOUT_MS: String(LIMITS.requestTimeoutMs),
    HTTP_KEEPALIVE_TIMEOUT_MS: String(LIMITS.keepAliveMs),
  },
  'hardy',
);

const auth = (bearer = suite.token): Record<string, string> => ({
  authorization: `Bearer ${bearer}`,
});
const jsonHeaders = (bearer = suite.token): Record<string, string> => ({
  ...auth(bearer),
  'content-type': 'application/json',
});

/** A reply cut short: done(truncated), then a retryable upstream_unavailable error. */
function expectTruncated(response: TurnResponse): void {
  expect(shape(response)).toEqual(['meta', 'delta', 'done', 'error']);
  expect(frameOf(response, 'done').truncated).toBe(true);
  expect(frameOf(response, 'error')).toEqual(
    expect.objectContaining({ code: 'upstream_unavailable', retryable: true }),
  );
}

const requestsFor = (model: string): RecordedRequest[] =>
  suite.upstream.requests.filter((request) => request.model === model);

const db = () => suite.app.app.get(DatabaseClient).db;

async function turnRow(sessionId: string, clientMsgId: string) {
  const rows = await db().select().from(turns).where(eq(turns.sessionId, sessionId));
  return rows.find((row) => row.clientMsgId === clientMsgId);
}

async function assistantRow(messageId: string) {
  const [row] = await db().select().from(messages).where(eq(messages.id, messageId));
  return row;
}

async function rowCounts(): Promise<{ sessions: number; turns: number; messages: number }> {
  const [s, tr, m] = await Promise.all([
    db().select().from(sessions),
    db().select().from(turns),
    db().select().from(messages),
  ]);
  return { sessions: s.length, turns: tr.length, messages: m.length };
}

async function api(
  method: string,
  path: string,
  body?: unknown,
  bearer = suite.token,
): Promise<{ status: number; body: Record<string, unknown> | null }> {
  const response = await fetch(`${suite.baseUrl}${path}`, {
    method,
    headers: body === undefined ? auth(bearer) : jsonHeaders(bearer),
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text === '' ? null : (JSON.parse(text) as never) };
}

/** A pre-stream refusal, as JSON with the contract's code. */
function expectRefusal(
  reply: { status: number; body: Record<string, unknown> | null },
  status: number,
  code: string,
): Record<string, unknown> {
  expect({ status: reply.status, code: reply.body?.code }).toEqual({ status, code });
  expect(typeof reply.body?.message).toBe('string');
  return reply.body ?? {};
}

// ---------------------------------------------------------------------------------------------
// Item 2: client text PostgreSQL cannot store
// ---------------------------------------------------------------------------------------------

describe('item 2: NUL and lone surrogates in client input → 400/404/401, never 500, nothing written', () => {
  const nul = 'before\u0000after';
  const loneHigh = '日本\uD800語';
  const loneLow = 'Ünï\uDC00cödé';

  it.each([
    ['title', { title: nul }],
    ['title', { title: loneHigh }],
    ['system_prompt', { system_prompt: loneLow }],
    ['system_prompt', { title: 'fine', system_prompt: `You are ${nul}` }],
  ])('POST /v1/sessions with a bad %s → 400 naming it', async (field, body) => {
    const before = await rowCounts();
    const refusal = expectRefusal(await api('POST', '/v1/sessions', body), 400, 'invalid_payload');
    expect(refusal.message).toMatch(new RegExp(`^${field}: `));
    expect(await rowCounts()).toEqual(before);
  });

  it('control: astral characters (well-formed pairs) and non-ASCII are stored verbatim', async () => {
    const title = '😀 𝒜 画一只猫 Ünïcödé\u0007';
    const created = await api('POST', '/v1/sessions', { title, system_prompt: '🦊'.repeat(100) });
    expect(created.status).toBe(201);
    const read = await api('GET', `/v1/sessions/${String(created.body?.id)}`);
    expect(read.body).toEqual(expect.objectContaining({ title, system_prompt: '🦊'.repeat(100) }));
  });

  it.each<[string, () => Record<string, unknown>]>([
    ['content', () => turnBody(nul)],
    ['content', () => turnBody(loneHigh)],
    ['content', () => turnBody(`${'a'.repeat(3000)}\uDFFF`)],
    ['client_msg_id', () => ({ content: 'hi', client_msg_id: 'abcd\u0000efgh' })],
    ['image.image_prompt', () => turnBody('draw', { image: { force: true, image_prompt: nul } })],
    ['image.model', () => turnBody('draw', { image: { force: true, model: loneLow } })],
    ['image.aspect_ratio', () => turnBody('draw', { image: { aspect_ratio: '1:1\u0000' } })],
    ['"\\u0000"', () => turnBody('hi', { '\u0000': 'x' })],
  ])('POST …/turns with a bad %s → 400 naming it, no stream, no row', async (field, make) => {
    const sessionId = await suite.session();
    const before = await rowCounts();
    const response = await suite.turn(sessionId, make());
    expect(response.status).toBe(400);
    expect(response.json?.code).toBe('invalid_payload');
    expect(String(response.json?.message).startsWith(`${field}: `)).toBe(true);
    expect(await rowCounts()).toEqual(before);
    expect(suite.upstream.requests).toHaveLength(0);
  });

  it('control: a turn whose content has astral characters and CJK streams and is stored', async () => {
    const content = '画一只猫 😀 please, in 𝒜 style';
    const response = await suite.firstTurn(turnBody(content));
    expect(types(response).at(-1)).toBe('final');
    const stored = await suite.history(response.sessionId);
    expect(stored.find((message) => message.role === 'user')?.content).toBe(content);
  });

  describe('path ids that cannot exist answer as unknown ids do', () => {
    let sessionId: string;
    beforeAll(async () => {
      sessionId = await suite.session();
    });

    it.each([
      ['GET', (id: string) => `/v1/sessions/${id}`],
      ['DELETE', (id: string) => `/v1/sessions/${id}`],
      ['GET', (id: string) => `/v1/sessions/${id}/messages`],
    ])('%s %s with %%00 → 404 session_not_found', async (method, path) => {
      for (const id of ['%00', `abc%00def`, `${sessionId}%00`]) {
        expectRefusal(await api(method, path(id)), 404, 'session_not_found');
      }
    });

    it('POST …/turns on a session id with %00 → 404 session_not_found, as JSON', async () => {
      const response = await suite.turn(`${sessionId}%00`, turnBody('hi'));
      expect(response.status).toBe(404);
      expect(response.json?.code).toBe('session_not_found');
    });

    it('POST …/messages/:message_id/image with %00 in the message id → 404 not_found', async () => {
      const reply = await api('POST', `/v1/sessions/${sessionId}/messages/m%00x/image`, {
        url: 'https://example.com/a.png',
      });
      expectRefusal(reply, 404, 'not_found');
    });

    it('an id with percent-encoded surrogate halves (not UTF-8) → 4xx, never 5xx', async () => {
      for (const id of ['%ED%A0%80', '%ED%B0%80x', 'a%F0%9F%98']) {
        const reply = await fetch(`${suite.baseUrl}/v1/sessions/${id}`, { headers: auth() });
        expect(reply.status).toBeGreaterThanOrEqual(400);
        expect(reply.status).toBeLessThan(500);
      }
    });

    it('cursors: ?cursor= and ?before= with %00 → 400 naming them', async () => {
      const list = expectRefusal(
        await api('GET', '/v1/sessions?cursor=1%00'),
        400,
        'invalid_payload',
      );
      expect(list.message).toMatch(/^cursor: /);
      const page = expectRefusal(
        await api('GET', `/v1/sessions/${sessionId}/messages?before=m%00`),
        400,
        'invalid_payload',
      );
      expect(page.message).toMatch(/^before: /);
    });
  });

  it.each([
    ['NUL', 'ali\u0000ce'],
    ['a lone high surrogate next to CJK', '用户\uD83D'],
    ['a lone low surrogate', '\uDE00alice'],
  ])('a token whose sub holds %s → 401 on every kind of route', async (_, sub) => {
    const bad = await signToken({ subject: sub });
    const before = await rowCounts();
    expectRefusal(await api('POST', '/v1/sessions', {}, bad), 401, 'unauthorized');
    expectRefusal(await api('GET', '/v1/sessions', undefined, bad), 401, 'unauthorized');
    const sessionId = await suite.session();
    const response = await userClient(suite.baseUrl, bad).turn(sessionId, turnBody('hi'));
    expect(response.status).toBe(401);
    expect((await rowCounts()).sessions).toBe(before.sessions + 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Item 4: per-model time limits
// ---------------------------------------------------------------------------------------------

describe('item 4: a hung chat model falls back; a stalled stream fails', () => {
  it('CHAT_MODELS=hang,ok: the fallback answers after CHAT_FIRST_TOKEN_TIMEOUT_MS, the hung socket is closed', async () => {
    suite.upstream.script('hang', { kind: 'hang', commentEveryMs: 100 });
    const response = await suite.firstTurn(turnBody('hello?'));

    expect(shape(response)).toEqual(['meta', 'delta', 'done', 'final']);
    expect(frameOf(response, 'meta').model).toBe('ok');
    const [hung] = requestsFor('hang');
    const [fallback] = requestsFor('ok');
    expect(fallback).toBeDefined();
    // The fallback was asked only once the first-token limit had passed, and the hung call
    // was closed by us (not by the upstream), socket included.
    expect(fallback.receivedAt - hung.receivedAt).toBeGreaterThanOrEqual(LIMITS.firstTokenMs - 50);
    await hung.socketClosed;
    expect(hung.clientAborted).toBe(true);
  });

  it('no chunk for CHAT_IDLE_TIMEOUT_MS mid-stream → done(truncated) + retryable error, text kept', async () => {
    suite.upstream.script('hang', { kind: 'stall', chunks: ['Half', ' way'], afterChunks: 2 });
    const body = turnBody('tell me');
    const response = await suite.firstTurn(body);

    expectTruncated(response);
    // Text had streamed: no fallback (the client already saw this model's words).
    expect(requestsFor('ok')).toHaveLength(0);
    await requestsFor('hang')[0].socketClosed;
    const messageId = frameOf(response, 'meta').message_id;
    const stored = await assistantRow(messageId);
    expect(stored.content).toBe('Half way');
    expect(stored.status).toBe('failed');
    expect((await turnRow(response.sessionId, body.client_msg_id))?.status).toBe('failed');
  });

  it('the prompt composer gets the same limit: a stalled composer falls back to single attempts', async () => {
    suite.upstream.script('composer', { kind: 'stall' });
    const response = await suite.firstTurn(
      turnBody('a lighthouse at dusk', { image: { force: true, mode: 'image_only' } }),
    );

    expect(types(response).at(-1)).toBe('final');
    expect(framesOf(response, 'image_attempt').map((frame) => frame.variant)).toEqual(['single']);
    frameOf(response, 'image');
    const [composer] = requestsFor('composer');
    await composer.socketClosed;
    expect(composer.clientAborted).toBe(true);
    const [attempt] = requestsFor('p1');
    expect(attempt.receivedAt - composer.receivedAt).toBeGreaterThanOrEqual(
      LIMITS.firstTokenMs - 50,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Item 5: bounded replies
// ---------------------------------------------------------------------------------------------

describe('item 5: CHAT_MAX_TOKENS upstream and REPLY_MAX_CHARS on the stored reply', () => {
  it('sends CHAT_MAX_TOKENS as max_tokens on chat and composer requests', async () => {
    await suite.firstTurn(turnBody('a fox', { image: { force: true } }));
    const chat = suite.upstream.requests.filter((request) => request.type === 'chat-stream');
    const composer = requestsFor('composer');
    expect(chat.length).toBeGreaterThan(0);
    expect(composer.length).toBe(1);
    for (const request of [...chat, ...composer]) {
      expect(request.body.max_tokens).toBe(LIMITS.maxTokens);
    }
  });

  it('an endless reply is cut at REPLY_MAX_CHARS: done(truncated) + error, upstream aborted, stored ≤ cap', async () => {
    suite.upstream.script('hang', { kind: 'endless', content: 'la ' });
    const body = turnBody('sing');
    const response = await suite.firstTurn(body);

    expectTruncated(response);
    const text = replyText(response.frames);
    expect(text.length).toBeLessThanOrEqual(LIMITS.replyMaxChars);
    expect(text.length).toBeGreaterThan(LIMITS.replyMaxChars - 'la '.length);
    const [endless] = requestsFor('hang');
    await endless.socketClosed;
    expect(endless.clientAborted).toBe(true);
    const stored = await assistantRow(frameOf(response, 'meta').message_id);
    expect(stored.content).toBe(text);
    expect(stored.metadata.truncated).toBe(true);
    expect((await turnRow(response.sessionId, body.client_msg_id))?.error?.code).toBe(
      'upstream_unavailable',
    );
  });

  it('control: a reply of exactly REPLY_MAX_CHARS completes', async () => {
    const chunks = ['x'.repeat(LIMITS.replyMaxChars - 100), 'y'.repeat(100)];
    suite.upstream.script('hang', { kind: 'stream', chunks });
    const response = await suite.firstTurn(turnBody('long'));
    expect(shape(response)).toEqual(['meta', 'delta', 'done', 'final']);
    expect(replyText(response.frames)).toHaveLength(LIMITS.replyMaxChars);
  });
});

// ---------------------------------------------------------------------------------------------
// Item 6: a stream that ends without [DONE] or a finish_reason
// ---------------------------------------------------------------------------------------------

describe('item 6: silent truncation is a truncated reply', () => {
  it('closes cleanly without [DONE]/finish_reason → done(truncated) + retryable error, stored failed', async () => {
    suite.upstream.script('hang', {
      kind: 'stream',
      chunks: ['Cut', ' short'],
      done: false,
      finishReason: false,
    });
    const body = turnBody('go');
    const response = await suite.firstTurn(body);

    expectTruncated(response);
    const history = await suite.history(response.sessionId);
    const assistant = history.find((message) => message.role === 'assistant');
    expect(assistant).toEqual(expect.objectContaining({ content: 'Cut short', status: 'failed' }));
    expect((await assistantRow(assistant!.id)).metadata.truncated).toBe(true);
    expect((await turnRow(response.sessionId, body.client_msg_id))?.status).toBe('failed');
  });
});

// ---------------------------------------------------------------------------------------------
// Item 7: server timeouts
// ---------------------------------------------------------------------------------------------

/** A raw TCP client: writes what it is told, records what comes back and when the socket closed. */
function rawClient(): Promise<{
  socket: Socket;
  received: () => string;
  closed: Promise<number>;
  startedAt: number;
}> {
  const url = new URL(suite.baseUrl);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(url.port), url.hostname);
    let text = '';
    socket.on('data', (part: Buffer) => (text += part.toString('latin1')));
    socket.on('error', () => undefined);
    const closed = new Promise<number>((done) => socket.once('close', () => done(Date.now())));
    socket.once('connect', () =>
      resolve({ socket, received: () => text, closed, startedAt: Date.now() }),
    );
    socket.once('error', reject);
  });
}

/**
 * Sends `head`, then `piece` every 100 ms until the server closes the socket: what came back, and
 * how long after connecting the socket closed.
 */
async function trickle(head: string, piece: string): Promise<{ received: string; tookMs: number }> {
  const client = await rawClient();
  client.socket.write(head);
  const timer = setInterval(() => {
    if (!client.socket.destroyed) client.socket.write(piece);
  }, 100);
  try {
    const closedAt = await client.closed;
    return { received: client.received(), tookMs: closedAt - client.startedAt };
  } finally {
    clearInterval(timer);
  }
}

describe('item 7: HTTP server timeouts', () => {
  it('a body trickled byte by byte is cut (408) after HTTP_REQUEST_TIMEOUT_MS, not held for minutes', async () => {
    const sessionId = await suite.session();
    const cut = await trickle(
      `POST /v1/sessions/${sessionId}/turns HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${suite.token}\r\n` +
        'Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"content":"',
      'a',
    );
    expect(cut.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(cut.tookMs).toBeGreaterThanOrEqual(LIMITS.requestTimeoutMs - 100);
    expect(cut.tookMs).toBeLessThan(10_000);
  });

  it('headers sent slowly are cut after HTTP_HEADERS_TIMEOUT_MS', async () => {
    const cut = await trickle('GET /healthz HTTP/1.1\r\nHost: x\r\n', 'X-Slow: y\r\n');
    expect(cut.received).toMatch(/^HTTP\/1\.1 408 /);
    expect(cut.tookMs).toBeLessThan(10_000);
  });

  it('an idle keep-alive connection is closed after HTTP_KEEPALIVE_TIMEOUT_MS (and says so)', async () => {
    const client = await rawClient();
    client.socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n');
    const closedAt = await client.closed;
    expect(client.received()).toMatch(/^HTTP\/1\.1 200 /);
    expect(client.received()).toMatch(/keep-alive: timeout=2\r\n/i);
    expect(closedAt - client.startedAt).toBeGreaterThanOrEqual(LIMITS.keepAliveMs - 100);
  });

  it('a turn stream that lasts longer than the request timeout is not cut (the limit ends with the body)', async () => {
    const chunks = wordChunks(12);
    suite.upstream.script('hang', { kind: 'stream', chunks, delayMs: 200 });
    const sessionId = await suite.session();
    const started = Date.now();
    const response = await suite.turn(sessionId, turnBody('slowly'));
    expect(Date.now() - started).toBeGreaterThan(LIMITS.requestTimeoutMs * 2);
    expect(shape(response)).toEqual(['meta', 'delta', 'done', 'final']);
    expect(replyText(response.frames)).toBe(chunks.join(''));
  });
});

// ---------------------------------------------------------------------------------------------
// Item 9: small ones
// ---------------------------------------------------------------------------------------------

describe('item 9: small ones', () => {
  it.each(['0x10', '1e1', '+16', '16.0', ' 16', '0b1'])(
    'limit=%s → 400 on the sessions and messages lists',
    async (limit) => {
      const sessionId = await suite.session();
      const query = `limit=${encodeURIComponent(limit)}`;
      expectRefusal(await api('GET', `/v1/sessions?${query}`), 400, 'invalid_payload');
      expectRefusal(
        await api('GET', `/v1/sessions/${sessionId}/messages?${query}`),
        400,
        'invalid_payload',
      );
    },
  );

  it('control: limit=16 is accepted on both lists', async () => {
    const sessionId = await suite.session();
    expect((await api('GET', '/v1/sessions?limit=16')).status).toBe(200);
    expect((await api('GET', `/v1/sessions/${sessionId}/messages?limit=16`)).status).toBe(200);
  });

  it.each(['\u200B', '\u200B\u200C\u200D', '\u2060\uFEFF', ' \u200B\t\u00AD\n'])(
    'content made only of zero-width/format characters (%j) → 400, no row',
    async (content) => {
      const sessionId = await suite.session();
      const before = await rowCounts();
      const response = await suite.turn(sessionId, turnBody(content));
      expect(response.status).toBe(400);
      expect(response.json?.code).toBe('invalid_payload');
      expect(await rowCounts()).toEqual(before);
    },
  );

  it('an image upstream answering 200 with an HTML page is a `decode` attempt, not `zero_images`', async () => {
    suite.upstream.script('p1', { kind: 'html-200' });
    const response = await suite.firstTurn(
      turnBody('a red fox', { image: { force: true, mode: 'image_only' } }),
    );

    expect(types(response).at(-1)).toBe('final');
    frameOf(response, 'image');
    const [message] = (await suite.history(response.sessionId)).filter(
      (item) => item.role === 'assistant',
    );
    const outcomes = message.image!.attempts.map((attempt) => [attempt.model, attempt.outcome]);
    expect(outcomes).toEqual([
      ['p1', 'decode'],
      ['p1', 'decode'],
      ['p2', 'ok'],
    ]);
  });
});
