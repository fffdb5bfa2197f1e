import { createHmac, randomUUID } from 'node:crypto';
import { eq } from 'drizzle-orm';
import fc from 'fast-check';
import request, { type Response } from 'supertest';
import type { MessageDto, MessagePageDto } from '../src/chat/sessions/dto/message.dto.js';
import type { SessionDto, SessionPageDto } from '../src/chat/sessions/dto/session.dto.js';
import { DatabaseClient } from '../src/database/database.client.js';
import { images, messages, turns } from '../src/database/schema.js';
import { turnBody } from './harness/api.js';
import { signToken, useApp } from './harness/app.js';
import { frameOf, postTurn, replyText, type TurnResponse, types } from './harness/sse-client.js';
import {
  awkwardButStorable,
  hazardousUnit,
  isUnstorable,
  unstorableText,
} from './harness/unstorable-text.js';

const t = useApp();
let alice: string;

const api = () => request(t.app.getHttpServer());
const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });
const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** Every pre-stream error is JSON `{ code, message, user_message? }` (docs/api-reference.md §10). */
function expectError(res: Response, status: number, code: string): void {
  expect({ status: res.status, body: res.body as unknown }).toEqual({
    status,
    body: expect.objectContaining({ code, message: expect.any(String) }),
  });
  expect(res.headers['content-type']).toMatch(/^application\/json/);
  expect((res.body as { message: string }).message.length).toBeGreaterThan(0);
}

async function createSession(token: string, body: object = {}): Promise<SessionDto> {
  const res = await api().post('/v1/sessions').set(bearer(token)).send(body);
  expect(res.status).toBe(201);
  return res.body as SessionDto;
}

async function history(
  sessionId: string,
  query: Record<string, string | number> = {},
  token = alice,
): Promise<MessagePageDto> {
  const res = await api().get(`/v1/sessions/${sessionId}/messages`).query(query).set(bearer(token));
  expect(res.status).toBe(200);
  return res.body as MessagePageDto;
}

/** Runs a turn to its end and checks it ended in `final`. */
async function turn(sessionId: string, body: Record<string, unknown>): Promise<TurnResponse> {
  const response = await postTurn(t.baseUrl, sessionId, alice, body);
  expect(response.status).toBe(200);
  expect(types(response).at(-1)).toBe('final');
  return response;
}

/** The app's signed URLs carry PUBLIC_BASE_URL's origin; the test app listens elsewhere. */
const local = (url: string): string => {
  const parsed = new URL(url);
  return `${parsed.pathname}${parsed.search}`;
};

function pngSize(bytes: Buffer): { width: number; height: number } {
  expect(bytes.subarray(0, 8)).toEqual(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]));
  expect(bytes.toString('latin1', 12, 16)).toBe('IHDR');
  return { width: bytes.readUInt32BE(16), height: bytes.readUInt32BE(20) };
}

const binary = (res: Response, callback: (error: Error | null, body: Buffer) => void): void => {
  const parts: Buffer[] = [];
  res.on('data', (part: Buffer) => parts.push(part));
  res.on('end', () => callback(null, Buffer.concat(parts)));
};

beforeAll(async () => {
  alice = await t.token('alice');
});

describe('public endpoints', () => {
  it('GET /healthz answers 200 without a token', async () => {
    const res = await api().get('/healthz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: 'ok' });
  });

  it('GET /readyz answers 200 once the database answers', async () => {
    const res = await api().get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toEqual(expect.objectContaining({ status: 'ok' }));
  });
});

describe('POST /v1/sessions', () => {
  it('creates an empty session (no body at all) with nulls and ISO timestamps', async () => {
    const res = await api().post('/v1/sessions').set(bearer(alice));
    expect(res.status).toBe(201);
    const session = res.body as SessionDto;
    expect(session).toEqual({
      id: expect.any(String),
      title: null,
      system_prompt: null,
      created_at: expect.stringMatching(ISO),
      updated_at: expect.stringMatching(ISO),
    });
    expect(session.id.length).toBeGreaterThan(0);
  });

  it('accepts title and system_prompt at their limits (200 / 8000) and stores them verbatim', async () => {
    const title = `T${'é'.repeat(198)}!`;
    const systemPrompt = `${'line\n'.repeat(1599)}last.`;
    expect([title.length, systemPrompt.length]).toEqual([200, 8000]);
    const created = await createSession(alice, { title, system_prompt: systemPrompt });
    expect(created).toEqual(expect.objectContaining({ title, system_prompt: systemPrompt }));

    const fetched = await api().get(`/v1/sessions/${created.id}`).set(bearer(alice));
    expect(fetched.status).toBe(200);
    expect(fetched.body).toEqual(created);
  });

  it('gives every session its own id', async () => {
    const [a, b] = await Promise.all([createSession(alice), createSession(alice)]);
    expect(a.id).not.toBe(b.id);
  });

  const invalid: [string, string | object, string | null][] = [
    ['title over 200', { title: 'x'.repeat(201) }, 'title'],
    ['system_prompt over 8000', { system_prompt: 'x'.repeat(8001) }, 'system_prompt'],
    ['title not a string', { title: 42 }, 'title'],
    ['system_prompt not a string', { system_prompt: ['a'] }, 'system_prompt'],
    ['an unknown field', { title: 'ok', colour: 'blue' }, 'colour'],
    ['malformed JSON', '{"title": ', null],
  ];

  it.each(invalid)(
    'rejects %s with 400 invalid_payload and creates nothing',
    async (_, body, field) => {
      const user = await t.token(`creator-${randomUUID()}`);
      const req = api().post('/v1/sessions').set(bearer(user));
      const res =
        typeof body === 'string'
          ? await req.set('content-type', 'application/json').send(body)
          : await req.send(body);
      expectError(res, 400, 'invalid_payload');
      if (field) expect((res.body as { message: string }).message).toContain(field);

      const list = await api().get('/v1/sessions').set(bearer(user));
      expect(list.body).toEqual({ items: [], next_cursor: null });
    },
  );
});

describe('GET /v1/sessions/:session_id', () => {
  it('answers 404 session_not_found for an id that does not exist', async () => {
    expectError(
      await api().get(`/v1/sessions/${randomUUID()}`).set(bearer(alice)),
      404,
      'session_not_found',
    );
    expectError(
      await api().get('/v1/sessions/not-even-a-uuid').set(bearer(alice)),
      404,
      'session_not_found',
    );
  });
});

describe('GET /v1/sessions (cursor pagination)', () => {
  let lister: string;
  /** Oldest first, as created. */
  const created: SessionDto[] = [];

  async function pages(limit: number): Promise<SessionPageDto[]> {
    const result: SessionPageDto[] = [];
    let cursor: string | null = null;
    do {
      const query: Record<string, string | number> = { limit };
      if (cursor !== null) query.cursor = cursor;
      const res = await api().get('/v1/sessions').query(query).set(bearer(lister));
      expect(res.status).toBe(200);
      const page = res.body as SessionPageDto;
      result.push(page);
      cursor = page.next_cursor;
      expect(result.length).toBeLessThan(20);
    } while (cursor !== null);
    return result;
  }

  beforeAll(async () => {
    lister = await t.token(`lister-${randomUUID()}`);
    for (let i = 0; i < 7; i++) created.push(await createSession(lister, { title: `s${i}` }));
  });

  it('walks every session exactly once, newest first, ending with next_cursor null', async () => {
    const walked = await pages(3);
    expect(walked.map((page) => page.items.length)).toEqual([3, 3, 1]);
    expect(walked.slice(0, -1).every((page) => typeof page.next_cursor === 'string')).toBe(true);
    expect(walked.at(-1)?.next_cursor).toBeNull();
    const ids = walked.flatMap((page) => page.items.map((item) => item.id));
    expect(new Set(ids).size).toBe(ids.length);
    expect(ids).toEqual([...created].reverse().map((session) => session.id));
    expect(walked[0].items[0]).toEqual(created[6]);
  });

  it.each([1, 2, 6, 7, 100])('pages with limit=%i cover the same list', async (limit) => {
    const walked = await pages(limit);
    expect(walked.flatMap((page) => page.items.map((item) => item.title))).toEqual([
      's6',
      's5',
      's4',
      's3',
      's2',
      's1',
      's0',
    ]);
    expect(walked).toHaveLength(Math.ceil(7 / limit));
  });

  it('returns everything on one page without a limit (default page size)', async () => {
    const res = await api().get('/v1/sessions').set(bearer(lister));
    expect(res.status).toBe(200);
    expect((res.body as SessionPageDto).items).toHaveLength(7);
    expect((res.body as SessionPageDto).next_cursor).toBeNull();
  });

  it("lists only the caller's own sessions", async () => {
    const res = await api().get('/v1/sessions').query({ limit: 100 }).set(bearer(alice));
    const ids = (res.body as SessionPageDto).items.map((item) => item.id);
    expect(ids.length).toBeGreaterThan(0);
    for (const session of created) expect(ids).not.toContain(session.id);
  });

  it('a fresh user has an empty list', async () => {
    const res = await api()
      .get('/v1/sessions')
      .set(bearer(await t.token(`new-${randomUUID()}`)));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ items: [], next_cursor: null });
  });

  it.each([
    ['limit=0'],
    ['limit=101'],
    ['limit=-1'],
    ['limit=abc'],
    ['limit=2.5'],
    ['limit='],
    ['cursor=abc'],
    ['cursor=-5'],
    ['cursor=1e3'],
    ['limit=1&page=2'],
  ])('?%s → 400 invalid_payload', async (query) => {
    expectError(
      await api().get(`/v1/sessions?${query}`).set(bearer(lister)),
      400,
      'invalid_payload',
    );
  });
});

describe('message history', () => {
  let sessionId: string;
  /** Per turn, oldest first: the user message id and the assistant message id with its text. */
  const ran: { userId: string; assistantId: string; text: string; content: string; key: string }[] =
    [];

  beforeAll(async () => {
    sessionId = (await createSession(alice, { title: 'history' })).id;
    for (const content of ['first question', 'second question', 'third question']) {
      const body = turnBody(content);
      const response = await turn(sessionId, body);
      const final = frameOf(response, 'final');
      expect(final.message_ids).toHaveLength(1);
      const text = replyText(response.frames);
      ran.push({
        userId: final.user_message_id,
        assistantId: final.message_ids[0],
        text,
        content,
        key: body.client_msg_id,
      });
    }
  });

  it('lists every message newest first, with the Message shape', async () => {
    const page = await history(sessionId);
    expect(page.next_cursor).toBeNull();
    expect(page.items.map((item) => item.id)).toEqual(
      [...ran].reverse().flatMap((one) => [one.assistantId, one.userId]),
    );
    const [third] = [...ran].reverse();
    const [assistant, user] = page.items;
    expect(user).toEqual({
      id: third.userId,
      session_id: sessionId,
      role: 'user',
      content: 'third question',
      client_msg_id: third.key,
      action_type: null,
      status: 'complete',
      model: null,
      image: null,
      image_failed: null,
      created_at: expect.stringMatching(ISO),
    } satisfies MessageDto);
    expect(assistant).toEqual({
      id: third.assistantId,
      session_id: sessionId,
      role: 'assistant',
      content: third.text,
      client_msg_id: null,
      action_type: 'reply_text',
      status: 'complete',
      model: 'demo/chat',
      image: null,
      image_failed: null,
      created_at: expect.stringMatching(ISO),
    } satisfies MessageDto);
    expect(third.text.length).toBeGreaterThan(0);
    const times = page.items.map((item) => Date.parse(item.created_at));
    expect(times).toEqual([...times].sort((a, b) => b - a));
  });

  it.each([1, 2, 4, 5, 6])(
    'pages with limit=%i and `before` without gaps or repeats',
    async (limit) => {
      const full = (await history(sessionId)).items.map((item) => item.id);
      const walked: string[] = [];
      let before: string | null = null;
      let pagesSeen = 0;
      do {
        const query: Record<string, string | number> = { limit };
        if (before !== null) query.before = before;
        const page = await history(sessionId, query);
        expect(page.items.length).toBeLessThanOrEqual(limit);
        walked.push(...page.items.map((item) => item.id));
        before = page.next_cursor;
        if (before !== null) expect(before).toBe(page.items.at(-1)?.id);
        pagesSeen++;
        expect(pagesSeen).toBeLessThan(20);
      } while (before !== null);
      expect(walked).toEqual(full);
      expect(pagesSeen).toBe(Math.ceil(full.length / limit));
    },
  );

  it('`before` an older message returns only what precedes it', async () => {
    const page = await history(sessionId, { before: ran[1].userId });
    expect(page.items.map((item) => item.id)).toEqual([ran[0].assistantId, ran[0].userId]);
    expect(page.next_cursor).toBeNull();
    expect(await history(sessionId, { before: ran[0].userId })).toEqual({
      items: [],
      next_cursor: null,
    });
  });

  it('an empty session has an empty history', async () => {
    const empty = await createSession(alice);
    expect(await history(empty.id)).toEqual({ items: [], next_cursor: null });
  });

  it.each([
    ['limit=0'],
    ['limit=101'],
    ['limit=x'],
    ['before=not-a-message'],
    [`before=${randomUUID()}`],
    ['limit=2&after=x'],
  ])('?%s → 400 invalid_payload', async (query) => {
    expectError(
      await api().get(`/v1/sessions/${sessionId}/messages?${query}`).set(bearer(alice)),
      400,
      'invalid_payload',
    );
  });

  it('`before` naming a message of another session → 400', async () => {
    const other = await createSession(alice);
    await turn(other.id, turnBody('elsewhere'));
    const [foreign] = (await history(other.id)).items;
    expectError(
      await api()
        .get(`/v1/sessions/${sessionId}/messages`)
        .query({ before: foreign.id })
        .set(bearer(alice)),
      400,
      'invalid_payload',
    );
  });
});

describe('DELETE /v1/sessions/:session_id', () => {
  it('answers 204, then the session, its messages, turns and images are gone (404)', async () => {
    const session = await createSession(alice, { title: 'doomed' });
    await turn(session.id, turnBody('a text turn'));
    const drawn = await turn(session.id, turnBody('draw a lighthouse', { image: { force: true } }));
    const imageUrl = local(frameOf(drawn, 'image').url);
    expect((await api().get(imageUrl)).status).toBe(200);

    const { db } = t.app.get(DatabaseClient);
    const rows = async (): Promise<number[]> => [
      (await db.select().from(messages).where(eq(messages.sessionId, session.id))).length,
      (await db.select().from(turns).where(eq(turns.sessionId, session.id))).length,
      (await db.select().from(images).where(eq(images.sessionId, session.id))).length,
    ];
    expect(await rows()).toEqual([4, 2, 1]);

    const res = await api().delete(`/v1/sessions/${session.id}`).set(bearer(alice));
    expect(res.status).toBe(204);
    expect(res.text).toBe('');

    expect(await rows()).toEqual([0, 0, 0]);
    expectError(
      await api().get(`/v1/sessions/${session.id}`).set(bearer(alice)),
      404,
      'session_not_found',
    );
    expectError(
      await api().get(`/v1/sessions/${session.id}/messages`).set(bearer(alice)),
      404,
      'session_not_found',
    );
    expectError(
      await api().delete(`/v1/sessions/${session.id}`).set(bearer(alice)),
      404,
      'session_not_found',
    );
    const again = await postTurn(t.baseUrl, session.id, alice, turnBody('still there?'));
    expect(again.status).toBe(404);
    expect(again.json).toEqual(expect.objectContaining({ code: 'session_not_found' }));
    // The signature is still valid, but the image went with its session.
    expectError(await api().get(imageUrl), 404, 'not_found');
  });

  it('leaves the other sessions alone', async () => {
    const keep = await createSession(alice, { title: 'keep' });
    const drop = await createSession(alice, { title: 'drop' });
    expect((await api().delete(`/v1/sessions/${drop.id}`).set(bearer(alice))).status).toBe(204);
    const res = await api().get(`/v1/sessions/${keep.id}`).set(bearer(alice));
    expect(res.status).toBe(200);
    expect(res.body).toEqual(keep);
  });
});

describe('authentication', () => {
  let sessionId: string;
  const routes: [string, (token: Record<string, string>) => request.Test][] = [
    ['POST /v1/sessions', (h) => api().post('/v1/sessions').set(h).send({})],
    ['GET /v1/sessions', (h) => api().get('/v1/sessions').set(h)],
    ['GET /v1/sessions/:id', (h) => api().get(`/v1/sessions/${sessionId}`).set(h)],
    ['DELETE /v1/sessions/:id', (h) => api().delete(`/v1/sessions/${sessionId}`).set(h)],
    ['GET …/messages', (h) => api().get(`/v1/sessions/${sessionId}/messages`).set(h)],
    [
      'POST …/turns',
      (h) => api().post(`/v1/sessions/${sessionId}/turns`).set(h).send(turnBody('hi')),
    ],
    [
      'POST …/messages/:mid/image',
      (h) =>
        api()
          .post(`/v1/sessions/${sessionId}/messages/${randomUUID()}/image`)
          .set(h)
          .send({ url: 'https://example.com/a.png' }),
    ],
  ];

  const now = (): number => Math.floor(Date.now() / 1000);
  const b64 = (value: object): string => Buffer.from(JSON.stringify(value)).toString('base64url');
  const badHeaders: [string, () => Promise<Record<string, string>>][] = [
    ['no Authorization header', async () => ({})],
    ['an empty Bearer', async () => ({ authorization: 'Bearer ' })],
    ['a Basic scheme', async () => ({ authorization: `Basic ${btoa('alice:pw')}` })],
    ['the token without a scheme', async () => ({ authorization: alice })],
    ['a token that is not a JWT', async () => bearer('not.a.jwt')],
    [
      'a token signed with another secret',
      async () =>
        bearer(await signToken({ subject: 'alice', secret: 'some-other-secret-0123456789' })),
    ],
    [
      'an expired token',
      async () => bearer(await signToken({ subject: 'alice', issuedAt: -7200, expiresIn: -60 })),
    ],
    ['a token without sub', async () => bearer(await signToken())],
    [
      'an unsigned (alg none) token',
      async () => bearer(`${b64({ alg: 'none', typ: 'JWT' })}.${b64({ sub: 'alice' })}.`),
    ],
    ...(
      [
        ['NUL', 'ali\u0000ce'],
        ['a lone surrogate next to CJK', '用户\uD83D'],
      ] as const
    ).map(([what, sub]): [string, () => Promise<Record<string, string>>] => [
      `a token whose sub holds ${what}`,
      async () => bearer(await signToken({ subject: sub })),
    ]),
    [
      'a token whose payload was swapped',
      async () => {
        const [header, , signature] = alice.split('.');
        return bearer(`${header}.${b64({ sub: 'mallory', exp: now() + 3600 })}.${signature}`);
      },
    ],
  ];

  beforeAll(async () => {
    sessionId = (await createSession(alice, { title: 'guarded' })).id;
  });

  describe.each(badHeaders)('with %s', (_, header) => {
    it.each(routes)('%s → 401 unauthorized', async (_route, call) => {
      expectError(await call(await header()), 401, 'unauthorized');
    });
  });

  it('a valid token passes (control), and nothing above deleted or wrote anything', async () => {
    const res = await api().get(`/v1/sessions/${sessionId}`).set(bearer(alice));
    expect(res.status).toBe(200);
    expect(await history(sessionId)).toEqual({ items: [], next_cursor: null });
  });
});

describe("another user's session", () => {
  let session: SessionDto;
  let bob: string;
  let imageMessageId: string;

  beforeAll(async () => {
    bob = await t.token('bob');
    session = await createSession(alice, { title: "alice's" });
    const drawn = await turn(session.id, turnBody('a quiet harbour', { image: { force: true } }));
    imageMessageId = frameOf(drawn, 'image').message_id;
  });

  it.each<[string, (token: Record<string, string>) => request.Test]>([
    ['GET', (h) => api().get(`/v1/sessions/${session.id}`).set(h)],
    ['GET …/messages', (h) => api().get(`/v1/sessions/${session.id}/messages`).set(h)],
    [
      'POST …/messages/:mid/image',
      (h) =>
        api()
          .post(`/v1/sessions/${session.id}/messages/${imageMessageId}/image`)
          .set(h)
          .send({ url: 'https://evil.example/x.png' }),
    ],
    ['DELETE', (h) => api().delete(`/v1/sessions/${session.id}`).set(h)],
  ])('%s answers 404 session_not_found', async (_route, call) => {
    expectError(await call(bearer(bob)), 404, 'session_not_found');
  });

  it('POST …/turns answers 404 session_not_found as JSON, before any stream', async () => {
    const response = await postTurn(t.baseUrl, session.id, bob, turnBody('let me in'));
    expect(response.status).toBe(404);
    expect(response.contentType).toMatch(/^application\/json/);
    expect(response.json).toEqual(
      expect.objectContaining({ code: 'session_not_found', message: expect.any(String) }),
    );
  });

  it("leaves alice's session, history and image untouched", async () => {
    const res = await api().get(`/v1/sessions/${session.id}`).set(bearer(alice));
    expect(res.status).toBe(200);
    const page = await history(session.id);
    expect(page.items.map((item) => item.content)).toContain('a quiet harbour');
    expect(page.items).toHaveLength(2);
    expect(page.items.find((item) => item.id === imageMessageId)?.image?.durable_url).toBeNull();
    const list = await api().get('/v1/sessions').set(bearer(bob));
    expect((list.body as SessionPageDto).items.map((item) => item.id)).not.toContain(session.id);
  });
});

describe('image write-back and signed image URLs', () => {
  let sessionId: string;
  let drawn: TurnResponse;
  let imageMessageId: string;
  let textMessageId: string;
  let userMessageId: string;

  const writeBack = (messageId: string, body: unknown, session = sessionId): request.Test =>
    api()
      .post(`/v1/sessions/${session}/messages/${messageId}/image`)
      .set(bearer(alice))
      .send(body as object);

  async function imageMessage(): Promise<MessageDto> {
    const found = (await history(sessionId)).items.find((item) => item.id === imageMessageId);
    if (!found) throw new Error('image message missing from history');
    return found;
  }

  beforeAll(async () => {
    sessionId = (await createSession(alice, { title: 'pictures' })).id;
    const text = await turn(sessionId, turnBody('just talk to me'));
    textMessageId = frameOf(text, 'final').message_ids[0];
    userMessageId = frameOf(text, 'final').user_message_id;
    drawn = await turn(
      sessionId,
      turnBody('paint a wide mountain lake at dawn', {
        image: { force: true, aspect_ratio: '16:9' },
      }),
    );
    imageMessageId = frameOf(drawn, 'image').message_id;
  });

  it('the demo image chain fails first, then draws (stream and stored attempts agree)', async () => {
    const attempts = drawn.frames.flatMap((frame) =>
      frame.data.type === 'image_attempt' ? [frame.data] : [],
    );
    expect(attempts.length).toBeGreaterThanOrEqual(2);
    expect(attempts[0].model).toBe('demo/flaky-painter');
    expect(attempts.at(-1)?.model).toBe('demo/painter');
    expect(types(drawn).slice(-3)).toEqual(['image_attempt', 'image', 'final']);

    const stored = await imageMessage();
    expect(stored.action_type).toBe('reply_text_image');
    expect(stored.image).toEqual(
      expect.objectContaining({
        url: expect.any(String),
        mime: 'image/png',
        model: 'demo/painter',
        width: 512,
        height: 288,
        durable_url: null,
      }),
    );
    const outcomes = stored.image?.attempts.map((attempt) => [attempt.model, attempt.outcome]);
    expect(outcomes).toHaveLength(attempts.length);
    expect(outcomes?.at(0)).toEqual(['demo/flaky-painter', 'status']);
    expect(outcomes?.at(-1)).toEqual(['demo/painter', 'ok']);
    expect(stored.image_failed).toBeNull();
  });

  it.each([
    ['a user message', () => userMessageId],
    ['a text-only assistant message', () => textMessageId],
    ['an unknown message id', () => randomUUID()],
    ['a malformed message id', () => 'nope'],
  ])('answers 404 not_found for %s', async (_, id) => {
    expectError(await writeBack(id(), { url: 'https://cdn.example.com/a.png' }), 404, 'not_found');
  });

  it('answers 404 not_found for an image message of another session of the same user', async () => {
    const other = await createSession(alice);
    expectError(
      await writeBack(imageMessageId, { url: 'https://cdn.example.com/a.png' }, other.id),
      404,
      'not_found',
    );
  });

  it.each([
    ['a relative url', { url: '/images/a.png' }],
    ['a bare file name', { url: 'a.png' }],
    ['an ftp url', { url: 'ftp://cdn.example.com/a.png' }],
    ['a javascript: url', { url: 'javascript:alert(1)' }],
    ['a data: url', { url: 'data:image/png;base64,iVBORw0KGgo=' }],
    ['a url over 2048 characters', { url: `https://cdn.example.com/${'a'.repeat(2030)}.png` }],
    ['a non-string url', { url: 42 }],
    ['no url', {}],
    ['an unknown field', { url: 'https://cdn.example.com/a.png', note: 'x' }],
  ])('answers 400 invalid_payload for %s, and records nothing', async (_, body) => {
    expectError(await writeBack(imageMessageId, body), 400, 'invalid_payload');
    expect((await imageMessage()).image?.durable_url).toBeNull();
  });

  it('records the durable URL (204), idempotently, and history shows it', async () => {
    const url = 'https://cdn.example.com/users/alice/lake.png?v=1';
    const first = await writeBack(imageMessageId, { url });
    expect(first.status).toBe(204);
    expect(first.text).toBe('');
    expect((await imageMessage()).image?.durable_url).toBe(url);

    const second = await writeBack(imageMessageId, { url });
    expect(second.status).toBe(204);
    const stored = await imageMessage();
    expect(stored.image?.durable_url).toBe(url);
    // Nothing else about the message moved.
    expect(stored.image).toEqual(expect.objectContaining({ model: 'demo/painter', width: 512 }));
    expect(stored.content.length).toBeGreaterThan(0);
  });

  it('accepts an http URL of exactly 2048 characters', async () => {
    const prefix = 'http://cdn.example.com/';
    const url = `${prefix}${'b'.repeat(2048 - prefix.length)}`;
    expect((await writeBack(imageMessageId, { url })).status).toBe(204);
    expect((await imageMessage()).image?.durable_url).toBe(url);
  });

  describe('GET /v1/images/:image_id', () => {
    let url: URL;
    let imageId: string;

    const sign = (id: string, exp: number): string =>
      createHmac('sha256', t.config.image.signingSecret).update(`${id}.${exp}`).digest('base64url');
    const withQuery = (exp: string | number, sig: string): string =>
      `/v1/images/${imageId}?${new URLSearchParams({ exp: String(exp), sig })}`;

    beforeAll(async () => {
      const stored = await imageMessage();
      if (!stored.image) throw new Error('no image on the message');
      url = new URL(stored.image.url);
      imageId = decodeURIComponent(url.pathname.split('/').at(-1) ?? '');
    });

    it('the URL from history loads as image/png with no Authorization header', async () => {
      const res = await api().get(local(url.toString())).buffer(true).parse(binary);
      expect(res.status).toBe(200);
      expect(res.headers['content-type']).toMatch(/^image\/png/);
      const bytes = res.body as Buffer;
      expect(pngSize(bytes)).toEqual({ width: 512, height: 288 });

      // The same picture the stream sent inline.
      const frame = frameOf(drawn, 'image');
      expect(frame.data_url).toBeDefined();
      const inline = Buffer.from((frame.data_url ?? '').split(',')[1] ?? '', 'base64');
      expect(bytes.equals(inline)).toBe(true);
      // And the stream's own URL points at the same image.
      expect(new URL(frame.url).pathname).toBe(url.pathname);
    });

    it('a correctly signed URL with a future exp loads (control for the cases below)', async () => {
      const exp = Math.floor(Date.now() / 1000) + 600;
      expect((await api().get(withQuery(exp, sign(imageId, exp)))).status).toBe(200);
    });

    it('a tampered sig → 403 forbidden', async () => {
      const sig = url.searchParams.get('sig') ?? '';
      const exp = url.searchParams.get('exp') ?? '';
      const flipped = `${sig.slice(0, 10)}${sig[10] === 'A' ? 'B' : 'A'}${sig.slice(11)}`;
      expect(flipped).not.toBe(sig);
      expectError(await api().get(withQuery(exp, flipped)), 403, 'forbidden');
    });

    it('a changed exp with the old sig → 403 forbidden', async () => {
      const sig = url.searchParams.get('sig') ?? '';
      const exp = Number(url.searchParams.get('exp')) + 3600;
      expectError(await api().get(withQuery(exp, sig)), 403, 'forbidden');
    });

    it('a correctly signed but past exp → 403 forbidden', async () => {
      const exp = Math.floor(Date.now() / 1000) - 5;
      expectError(await api().get(withQuery(exp, sign(imageId, exp))), 403, 'forbidden');
    });

    it('a missing signature → 403 forbidden', async () => {
      expectError(await api().get(`/v1/images/${imageId}`), 403, 'forbidden');
    });

    it("another image's signature does not open this one → 403", async () => {
      const exp = Math.floor(Date.now() / 1000) + 600;
      expectError(await api().get(withQuery(exp, sign(randomUUID(), exp))), 403, 'forbidden');
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Property-based: every sessions route, with NULs and surrogate halves mixed into its input
// ---------------------------------------------------------------------------------------------

describe('property: random input on every sessions route never gets a 5xx', () => {
  const RUNS = 120;
  /** Any string, often with a NUL or half a surrogate pair in it. */
  const anyText = fc.oneof(
    unstorableText,
    awkwardButStorable,
    fc.string({ unit: hazardousUnit, maxLength: 30 }),
  );
  /** Every UTF-8 byte percent-encoded, so no "." segment is normalised away and NUL is %00. */
  const pathSegment = (text: string): string =>
    [...Buffer.from(text, 'utf8')].map((byte) => `%${byte.toString(16).padStart(2, '0')}`).join('');
  /** What the server will see once it decodes the segment (lone surrogates travel as U+FFFD). */
  const asSent = (text: string): string => Buffer.from(text, 'utf8').toString('utf8');

  let sessionId: string;
  beforeAll(async () => {
    sessionId = (await createSession(alice, { title: 'fuzzed' })).id;
  });

  it(`POST /v1/sessions: ${RUNS} titles and system prompts`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({ title: anyText, system_prompt: anyText }, { requiredKeys: [] }),
        async (body) => {
          const res = await api().post('/v1/sessions').set(bearer(alice)).send(body);
          expect(res.status).toBeLessThan(500);
          const bad = Object.entries(body).find(([, value]) => isUnstorable(value));
          if (bad) {
            expectError(res, 400, 'invalid_payload');
            expect((res.body as { message: string }).message).toMatch(new RegExp(`^${bad[0]}: `));
          } else if ((body.title ?? '').length <= 200) {
            expect(res.status).toBe(201);
            expect((res.body as SessionDto).title).toBe(body.title ?? null);
            expect((res.body as SessionDto).system_prompt).toBe(body.system_prompt ?? null);
          }
        },
      ),
      { numRuns: RUNS },
    );
  }, 60_000);

  it(`${RUNS} path ids on GET, DELETE, …/messages and …/messages/:id/image`, async () => {
    const id = anyText.filter((text) => !['', '.', '..'].includes(asSent(text)));
    await fc.assert(
      fc.asyncProperty(id, id, async (sessionPart, messagePart) => {
        const unknown = pathSegment(sessionPart);
        for (const res of [
          await api().get(`/v1/sessions/${unknown}`).set(bearer(alice)),
          await api().get(`/v1/sessions/${unknown}/messages`).set(bearer(alice)),
          await api().delete(`/v1/sessions/${unknown}`).set(bearer(alice)),
        ]) {
          expectError(res, 404, 'session_not_found');
        }
        const image = await api()
          .post(`/v1/sessions/${sessionId}/messages/${pathSegment(messagePart)}/image`)
          .set(bearer(alice))
          .send({ url: 'https://example.com/a.png' });
        expectError(image, 404, 'not_found');
      }),
      { numRuns: RUNS },
    );
    // The session the ids were tried against is still there.
    expect((await api().get(`/v1/sessions/${sessionId}`).set(bearer(alice))).status).toBe(200);
  }, 60_000);

  it(`${RUNS} limit, cursor and before query values`, async () => {
    const value = fc.oneof(anyText, fc.constantFrom('0x10', '1e1', '16', '1', '100', '101'));
    await fc.assert(
      fc.asyncProperty(value, value, async (limit, cursor) => {
        const sent = { limit: asSent(limit), cursor: asSent(cursor) };
        const lists = [
          await api().get('/v1/sessions').query(sent).set(bearer(alice)),
          await api()
            .get(`/v1/sessions/${sessionId}/messages`)
            .query({ limit: sent.limit, before: sent.cursor })
            .set(bearer(alice)),
        ];
        for (const res of lists) {
          expect(res.status).toBeLessThan(500);
          if (res.status !== 200) expectError(res, 400, 'invalid_payload');
          if (isUnstorable(sent.limit) || isUnstorable(sent.cursor)) expect(res.status).toBe(400);
        }
      }),
      { numRuns: RUNS },
    );
  }, 60_000);

  it(`${RUNS} image write-back bodies`, async () => {
    const url = fc.oneof(
      anyText,
      anyText.map((text) => `https://example.com/${text}`),
      fc.jsonValue({ maxDepth: 2, stringUnit: hazardousUnit }),
    );
    await fc.assert(
      fc.asyncProperty(url, async (value) => {
        const res = await api()
          .post(`/v1/sessions/${sessionId}/messages/${randomUUID()}/image`)
          .set(bearer(alice))
          .send({ url: value });
        expect(res.status).toBeLessThan(500);
        if (typeof value === 'string' && isUnstorable(value)) {
          expectError(res, 400, 'invalid_payload');
        }
      }),
      { numRuns: RUNS },
    );
  }, 60_000);

  it(`${RUNS} token subjects: unstorable ones are refused (401), the rest are users`, async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.string({ unit: hazardousUnit, minLength: 1, maxLength: 20 }),
        async (sub) => {
          const token = await signToken({ subject: sub, expiresIn: 600 });
          const res = await api().get('/v1/sessions').set(bearer(token));
          if (isUnstorable(sub)) expectError(res, 401, 'unauthorized');
          else expect(res.status).toBe(200);
        },
      ),
      { numRuns: RUNS },
    );
  }, 60_000);
});
