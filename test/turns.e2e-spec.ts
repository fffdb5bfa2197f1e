import { eq, sql } from 'drizzle-orm';
import { DatabaseClient } from '../src/database/database.client.js';
import { turns } from '../src/database/schema.js';
import { FAKE_DEFAULT_CHUNKS } from './harness/fake-upstream.js';
import { useUpstream, wordChunks } from './harness/app.js';
import { turnBody, userClient } from './harness/api.js';
import {
  eventually,
  expectIdsFrom,
  frameOf,
  replyText,
  type TurnResponse,
  types,
} from './harness/sse-client.js';

const suite = useUpstream({
  CHAT_MODELS: 'm1,m2',
  IMAGE_MODELS: 'painter',
  TURN_TIMEOUT_MS: '1500',
  SSE_HEARTBEAT_MS: '100',
  MAX_STREAMS_PER_USER: '3',
});

describe('reply_text', () => {
  it('streams meta → delta+ → done → final with ids counting from 1', async () => {
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, turnBody('hello'));

    expect(response.status).toBe(200);
    expect(response.contentType).toMatch(/^text\/event-stream/);
    expect(response.raw).not.toMatch(/^event:/m);
    expect(types(response)).toEqual([
      'meta',
      ...FAKE_DEFAULT_CHUNKS.map(() => 'delta'),
      'done',
      'final',
    ]);
    expectIdsFrom(response);

    const meta = frameOf(response, 'meta');
    expect(meta).toEqual({
      type: 'meta',
      message_id: meta.message_id,
      action_type: 'reply_text',
      model: 'm1',
    });
    const text = replyText(response.frames);
    expect(text).toBe(FAKE_DEFAULT_CHUNKS.join(''));
    const done = frameOf(response, 'done');
    expect(done.truncated).toBe(false);
    expect(done.usage).toEqual({
      prompt_tokens: 12,
      completion_tokens: FAKE_DEFAULT_CHUNKS.length,
      total_tokens: 12 + FAKE_DEFAULT_CHUNKS.length,
    });
    expect(done.generation_id).toBe(suite.upstream.requests[0].generationId);
    const final = frameOf(response, 'final');
    expect(final.message_ids).toEqual([meta.message_id]);
    expect(final.replayed).toBe(false);
    expect(final.action_type).toBe('reply_text');

    const stored = await suite.history(sessionId);
    expect(stored.map((message) => [message.role, message.status, message.content])).toEqual([
      ['assistant', 'complete', text],
      ['user', 'complete', 'hello'],
    ]);
    expect(stored[1].id).toBe(final.user_message_id);
  });

  it('sends the system prompt and earlier turns as context', async () => {
    const sessionId = await suite.session({ system_prompt: 'Be brief.' });
    await suite.turn(sessionId, turnBody('first question'));
    await suite.turn(sessionId, turnBody('second question'));
    expect(suite.upstream.requests[1].body.messages).toEqual([
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'first question' },
      { role: 'assistant', content: FAKE_DEFAULT_CHUNKS.join('') },
      { role: 'user', content: 'second question' },
    ]);
  });

  it('falls back to the second chat model when the first answers 500', async () => {
    suite.upstream.script('m1', { kind: 'status', status: 500, code: 'server_error' });
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, turnBody('hi'));

    expect(types(response)[0]).toBe('meta');
    expect(frameOf(response, 'meta').model).toBe('m2');
    expect(types(response).at(-1)).toBe('final');
    expect(suite.upstream.requests.map((request) => request.model)).toEqual(['m1', 'm2']);
    expect((await suite.history(sessionId))[0].model).toBe('m2');
  });

  it('ends with error alone when every chat model fails before any text', async () => {
    suite.upstream.script('m1', { kind: 'status', status: 503 });
    suite.upstream.script('m2', { kind: 'cut', afterChunks: 0 });
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, turnBody('hi'));

    expect(types(response)).toEqual(['error']);
    expect(response.frames[0].id).toBe(1);
    expect(frameOf(response, 'error')).toMatchObject({
      code: 'upstream_unavailable',
      retryable: true,
    });
    expect(frameOf(response, 'error').user_message).toEqual(expect.any(String));
  });

  it('reports rate_limited when every chat model answers 429', async () => {
    suite.upstream.script('m1', { kind: 'status', status: 429 });
    suite.upstream.script('m2', { kind: 'status', status: 429 });
    const response = await suite.turn(await suite.session(), turnBody('hi'));
    expect(types(response)).toEqual(['error']);
    expect(frameOf(response, 'error')).toMatchObject({ code: 'rate_limited', retryable: true });
  });

  it('ends a reply cut mid-stream with done(truncated) → error, and stores the partial text as failed', async () => {
    suite.upstream.script('m1', { kind: 'cut', chunks: ['Par', 'tial', ' never'], afterChunks: 2 });
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, turnBody('hi'));

    expect(types(response)).toEqual(['meta', 'delta', 'delta', 'done', 'error']);
    expect(frameOf(response, 'done').truncated).toBe(true);
    expect(frameOf(response, 'error').code).toBe('upstream_unavailable');
    // No fallback once text has been sent: the client already shows m1's words.
    expect(suite.upstream.requests).toHaveLength(1);
    const [assistant] = await suite.history(sessionId);
    expect(assistant).toMatchObject({ role: 'assistant', status: 'failed', content: 'Partial' });
  });

  it('treats an {"error":…} chunk mid-stream as a failure', async () => {
    suite.upstream.script('m1', {
      kind: 'error-chunk',
      afterChunks: 1,
      code: 502,
      message: 'provider died',
    });
    const response = await suite.turn(await suite.session(), turnBody('hi'));
    expect(types(response)).toEqual(['meta', 'delta', 'done', 'error']);
    expect(frameOf(response, 'done').truncated).toBe(true);
  });

  it('times the turn out: done(truncated) → error(timeout), and the stalled upstream call is closed', async () => {
    suite.upstream.script('m1', { kind: 'stall', chunks: ['Slow', ' start'], afterChunks: 2 });
    const sessionId = await suite.session();
    const started = performance.now();
    const response = await suite.turn(sessionId, turnBody('hi'));

    expect(performance.now() - started).toBeGreaterThanOrEqual(1400);
    expect(types(response)).toEqual(['meta', 'delta', 'delta', 'done', 'error']);
    expect(frameOf(response, 'error')).toMatchObject({ code: 'timeout', retryable: true });
    // Pings kept the quiet connection alive while the upstream stalled.
    expect(response.comments).toContain('ping');
    await suite.upstream.requests[0].closed;
    expect((await suite.history(sessionId))[0]).toMatchObject({
      status: 'failed',
      content: 'Slow start',
    });
  });
});

describe('cancellation', () => {
  it('closes the upstream socket within 100 ms of a disconnect and stores the partial text as cancelled', async () => {
    const chunks = wordChunks(40);
    suite.upstream.script('m1', { kind: 'stream', chunks, delayMs: 40 });
    const sessionId = await suite.session();
    const body = turnBody('long one');
    let disconnectedAt = 0;
    const response = await suite.turn(sessionId, body, {
      onFrame: (received, disconnect) => {
        if (received.data.type === 'delta' && received.id === 3) {
          disconnectedAt = performance.now();
          disconnect();
        }
      },
    });
    expect(types(response)).toEqual(['meta', 'delta', 'delta']);

    const closedAt = await suite.upstream.requests[0].closed;
    expect(suite.upstream.requests[0].clientAborted).toBe(true);
    expect(closedAt - disconnectedAt).toBeLessThan(100);

    const [assistant] = await eventually(async () => {
      const items = await suite.history(sessionId);
      return items[0]?.role === 'assistant' ? items : null;
    });
    expect(assistant.status).toBe('cancelled');
    expect(chunks.join('').startsWith(assistant.content)).toBe(true);
    expect(assistant.content.length).toBeGreaterThanOrEqual('w0 w1 '.length);

    // A cancelled turn is not replayed: the same key runs it again, superseding the partial reply.
    suite.upstream.script('m1', { kind: 'stream' });
    const rerun = await suite.turn(sessionId, body);
    expect(types(rerun).at(-1)).toBe('final');
    expect(frameOf(rerun, 'final').replayed).toBe(false);
    const after = await suite.history(sessionId);
    expect(after.map((message) => [message.role, message.status])).toEqual([
      ['assistant', 'complete'],
      ['user', 'complete'],
    ]);
  });
});

describe('idempotency and replay', () => {
  it('replays a finished turn from the database without calling the upstream', async () => {
    const { first, again } = await suite.replayed(turnBody('replay me'));
    expect(types(again)).toEqual(['meta', 'delta', 'done', 'final']);
    expect(again.frames.map((item) => item.id)).toEqual([1, 2, 3, 4]);
    const meta = frameOf(again, 'meta');
    expect(meta).toEqual(frameOf(first, 'meta'));
    expect(frameOf(again, 'delta').content).toBe(FAKE_DEFAULT_CHUNKS.join(''));
    expect(frameOf(again, 'done')).toEqual(frameOf(first, 'done'));
    expect(frameOf(again, 'final')).toEqual({ ...frameOf(first, 'final'), replayed: true });
  });

  it('stores a turn as one row per outcome: no error on success (SQL NULL), the error on failure', async () => {
    const sessionId = await suite.session();
    const ok = await suite.turn(sessionId, turnBody('stored well'));
    suite.upstream.script('m1', { kind: 'cut', chunks: ['Cut', ' here', ' x'], afterChunks: 2 });
    suite.upstream.script('m2', { kind: 'cut', chunks: ['Cut', ' too', ' x'], afterChunks: 2 });
    const failed = await suite.turn(sessionId, turnBody('stored badly'));
    const { db } = suite.app.app.get(DatabaseClient);
    const rows = await db
      .select({
        status: turns.status,
        errorIsNull: sql<boolean>`${turns.error} IS NULL`,
        errorCode: sql<string | null>`${turns.error}->>'code'`,
        messageIds: turns.messageIds,
        finishedAt: turns.finishedAt,
      })
      .from(turns)
      .where(eq(turns.sessionId, sessionId))
      .orderBy(turns.createdAt);
    expect(rows).toEqual([
      expect.objectContaining({ status: 'completed', errorIsNull: true, errorCode: null }),
      expect.objectContaining({ status: 'failed', errorIsNull: false }),
    ]);
    expect(rows[0].messageIds).toEqual(frameOf(ok, 'final').message_ids);
    expect(rows[1].errorCode).toBe(frameOf(failed, 'error').code);
    expect(rows[1].messageIds).toEqual([frameOf(failed, 'meta').message_id]);
    expect(rows.every((row) => row.finishedAt instanceof Date)).toBe(true);
    const history = await suite.history(sessionId);
    expect(history.map((message) => [message.role, message.status])).toEqual([
      ['assistant', 'failed'],
      ['user', 'complete'],
      ['assistant', 'complete'],
      ['user', 'complete'],
    ]);
  });

  it('replays a failed turn with its partial text and the same error', async () => {
    suite.upstream.script('m1', { kind: 'cut', chunks: ['Half', ' way', ' x'], afterChunks: 2 });
    const { first, again } = await suite.replayed(turnBody('fail me'));
    expect(types(again)).toEqual(['meta', 'delta', 'done', 'error']);
    expect(frameOf(again, 'delta').content).toBe('Half way');
    expect(frameOf(again, 'done').truncated).toBe(true);
    expect(frameOf(again, 'error')).toEqual(frameOf(first, 'error'));
    expect(suite.upstream.requests).toHaveLength(1);
  });

  it('answers 409 duplicate_in_progress while the turn runs and 409 idempotency_conflict for other content', async () => {
    suite.upstream.script('m1', { kind: 'stall', afterChunks: 1 });
    const sessionId = await suite.session();
    const body = turnBody('slow');
    let checks: Promise<[TurnResponse, TurnResponse]> | null = null;
    await suite.turn(sessionId, body, {
      onFrame: (received, disconnect) => {
        if (received.data.type !== 'delta' || checks) return;
        checks = (async () => {
          const duplicate = await suite.turn(sessionId, body);
          const conflict = await suite.turn(sessionId, {
            ...body,
            content: 'other',
          });
          disconnect();
          return [duplicate, conflict];
        })();
      },
    });
    expect(checks).not.toBeNull();
    const [duplicate, conflict] = await checks!;
    expect(duplicate.status).toBe(409);
    expect(duplicate.json).toMatchObject({ code: 'duplicate_in_progress' });
    expect(conflict.status).toBe(409);
    expect(conflict.json).toMatchObject({ code: 'idempotency_conflict' });
    const userMessageId = String(duplicate.json?.original_user_message_id);
    const stored = await eventually(async () =>
      (await suite.history(sessionId)).find((m) => m.role === 'user'),
    );
    expect(stored.id).toBe(userMessageId);
  });
});

describe('limits and access', () => {
  it('answers 429 rate_limited to the fourth open stream of a user, and frees the slot on disconnect', async () => {
    suite.upstream.script('m1', { kind: 'stall', afterChunks: 1 });
    const bob = userClient(suite.baseUrl, await suite.app.token('bob'));
    const sessionId = await bob.session();
    const disconnects: Array<() => void> = [];
    let opened = 0;
    let release!: () => void;
    const allOpen = new Promise<void>((resolve) => (release = resolve));
    const streams = [1, 2, 3].map(() =>
      bob.turn(sessionId, turnBody('hold'), {
        onFrame: (received, disconnect) => {
          if (received.data.type !== 'meta') return;
          disconnects.push(disconnect);
          if (++opened === 3) release();
        },
      }),
    );
    await allOpen;
    const fourth = await bob.turn(sessionId, turnBody('one more'));
    expect(fourth.status).toBe(429);
    expect(fourth.json).toMatchObject({ code: 'rate_limited', message: expect.any(String) });
    // Other users are not affected.
    const other = await suite.turn(await suite.session(), turnBody('hi'));
    expect(other.status).toBe(200);

    disconnects.forEach((disconnect) => disconnect());
    await Promise.all(streams);
    suite.upstream.script('m1', { kind: 'stream' });
    const retry = await eventually(async () => {
      const attempt = await bob.turn(sessionId, turnBody('again'));
      return attempt.status === 200 ? attempt : null;
    });
    expect(types(retry).at(-1)).toBe('final');
  });

  it('answers 401 without a token and with a bad one, and 404 for another user', async () => {
    const sessionId = await suite.session();
    const body = turnBody('hi');
    const none = await fetch(`${suite.baseUrl}/v1/sessions/${sessionId}/turns`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ code: 'unauthorized' });
    const forgedToken = `${suite.token.slice(0, -4)}AAAA`;
    const forged = await userClient(suite.baseUrl, forgedToken).turn(sessionId, body);
    expect(forged.status).toBe(401);
    expect(forged.json).toMatchObject({ code: 'unauthorized' });
    const malloryToken = await suite.app.token('mallory');
    const mallory = await userClient(suite.baseUrl, malloryToken).turn(sessionId, body);
    expect(mallory.status).toBe(404);
    expect(mallory.json).toMatchObject({ code: 'session_not_found' });
    expect(suite.upstream.requests).toHaveLength(0);
  });

  it('answers 400 invalid_payload for a blank message and writes nothing', async () => {
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, turnBody('   '));
    expect(response.status).toBe(400);
    expect(response.json).toMatchObject({ code: 'invalid_payload' });
    expect(await suite.history(sessionId)).toEqual([]);
  });
});
