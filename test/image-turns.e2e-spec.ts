import { ImageUrlSigner } from '../src/images/image-url.signer.js';
import type { MessageDto } from '../src/chat/sessions/dto/message.dto.js';
import type { Frame } from '../src/chat/turns/frames.js';
import { type FakeUpstream, type RecordedRequest } from './harness/fake-upstream.js';
import { closeAll, startApp, startWithUpstream, type TestApp } from './harness/app.js';
import { clientMsgId, createSession, listMessages } from './harness/api.js';
import {
  eventually,
  frameOf,
  framesOf,
  postTurn,
  type TurnOptions,
  type TurnResponse,
  types,
} from './harness/sse-client.js';

let upstream: FakeUpstream;
let app: TestApp;
let token: string;

/** Frame types with runs of deltas folded, so orders read like the contract. */
function shape(response: TurnResponse): string[] {
  return types(response).filter(
    (type, index, list) => type !== 'delta' || list[index - 1] !== 'delta',
  );
}

const newSession = (target: TestApp = app, userToken = token): Promise<string> =>
  createSession(target.baseUrl, userToken);
const history = (sessionId: string): Promise<MessageDto[]> =>
  listMessages(app.baseUrl, sessionId, token);

/** A turn of alice's on the main app. */
const run = (sessionId: string, body: unknown, options?: TurnOptions): Promise<TurnResponse> =>
  postTurn(app.baseUrl, sessionId, token, body, options);

const forced = (content: string, image: Record<string, unknown> = {}) => ({
  content,
  client_msg_id: clientMsgId('img'),
  image: { force: true, ...image },
});

beforeAll(async () => {
  ({ upstream, app, token } = await startWithUpstream({
    CHAT_MODELS: 'chat',
    IMAGE_MODELS: 'p1,p2',
    IMAGE_COMPOSE_MODEL: 'composer',
    IMAGE_ATTEMPT_TIMEOUT_MS: '2000',
    TURN_TIMEOUT_MS: '10000',
  }));
});

afterAll(() => closeAll(app, upstream));

beforeEach(() => upstream.reset());

describe('reply_text_image', () => {
  it('success: meta → delta* → done → image_pending → image_attempt → image → final', async () => {
    const sessionId = await newSession();
    const response = await run(sessionId, forced('a lighthouse', { aspect_ratio: '16:9' }));

    expect(shape(response)).toEqual([
      'meta',
      'delta',
      'done',
      'image_pending',
      'image_attempt',
      'image',
      'final',
    ]);
    expect(response.frames.map((item) => item.id)).toEqual(
      response.frames.map((_, index) => index + 1),
    );
    const id = frameOf(response, 'meta').message_id;
    expect(frameOf(response, 'meta').action_type).toBe('reply_text_image');
    for (const item of response.frames.slice(0, -1))
      expect(item.data).toMatchObject({ message_id: id });
    expect(frameOf(response, 'image_attempt')).toEqual({
      type: 'image_attempt',
      message_id: id,
      model: 'p1',
      variant: 'composed',
      index: 1,
      total: 4,
    });
    const image = frameOf(response, 'image');
    expect(image).toMatchObject({ mime: 'image/png', width: 64, height: 64, model: 'p1' });
    expect(image.image_prompt).toBe('A detailed picture of the subject');
    expect(image.data_url).toMatch(/^data:image\/png;base64,iVBORw0KGgo/);
    expect(image.generation_id).toMatch(/^gen-img-/);
    expect(frameOf(response, 'final')).toMatchObject({
      message_ids: [id],
      action_type: 'reply_text_image',
    });

    // image_pending is sent before the prompt composer is even called.
    const pendingAt = response.frames.find((item) => item.data.type === 'image_pending')!.at;
    const composer = upstream.requests.find((request) => request.type === 'completion')!;
    expect(composer.model).toBe('composer');
    expect(pendingAt).toBeLessThan(composer.receivedAt);
    const draw = upstream.requests.find((request) => request.type === 'image')!;
    expect(draw.body).toMatchObject({
      modalities: ['image', 'text'],
      image_config: { aspect_ratio: '16:9' },
    });

    const [assistant] = await history(sessionId);
    expect(assistant).toMatchObject({
      id,
      status: 'complete',
      image: { mime: 'image/png', model: 'p1' },
    });
    expect(assistant.image!.attempts).toEqual([
      expect.objectContaining({ model: 'p1', variant: 'composed', outcome: 'ok' }),
    ]);

    // The signed URL loads in an <img>: no header needed.
    const loaded = await fetch(image.url);
    expect(loaded.status).toBe(200);
    expect(loaded.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await loaded.arrayBuffer()).toString('base64')).toBe(
      image.data_url!.split(',')[1],
    );
  });

  it('falls back from a failing first model to the second with the right index/total', async () => {
    upstream.script('p1', { kind: 'status', status: 500, code: 'boom' });
    const sessionId = await newSession();
    const response = await run(sessionId, forced('a fox'));
    expect(
      framesOf(response, 'image_attempt').map((a) => [a.model, a.variant, a.index, a.total]),
    ).toEqual([
      ['p1', 'composed', 1, 4],
      ['p1', 'original', 2, 4],
      ['p2', 'composed', 3, 4],
    ]);
    expect(frameOf(response, 'image').model).toBe('p2');
    expect(upstream.requests.filter((request) => request.type === 'image')).toHaveLength(3);
    const [assistant] = await history(sessionId);
    expect(assistant.image!.attempts.map((a) => [a.model, a.outcome, a.status ?? null])).toEqual([
      ['p1', 'status', 500],
      ['p1', 'status', 500],
      ['p2', 'ok', null],
    ]);
    expect(assistant.image!.attempts[0].error_code).toBe('boom');
  });

  it('failure: image_failed(chain_exhausted) then final, with every attempt stored', async () => {
    upstream.script('p1', { kind: 'zero-images' });
    upstream.script('p2', { kind: 'garbage' });
    const sessionId = await newSession();
    const response = await run(sessionId, forced('a ghost'));
    expect(shape(response)).toEqual([
      'meta',
      'delta',
      'done',
      'image_pending',
      'image_attempt',
      'image_attempt',
      'image_attempt',
      'image_attempt',
      'image_failed',
      'final',
    ]);
    expect(frameOf(response, 'image_failed')).toMatchObject({ reason: 'chain_exhausted' });
    const [assistant] = await history(sessionId);
    expect(assistant.status).toBe('complete');
    expect(assistant.image).toBeNull();
    expect(assistant.image_failed!.attempts.map((a) => a.outcome)).toEqual([
      'zero_images',
      'zero_images',
      'decode',
      'decode',
    ]);
  });

  it('uses single attempts when composing fails, and the caller-chosen model first', async () => {
    upstream.script('composer', { kind: 'status', status: 500 });
    upstream.script('p2', { kind: 'status', status: 503 });
    const response = await run(await newSession(), forced('a tree', { model: 'p2' }));
    expect(
      framesOf(response, 'image_attempt').map((a) => [a.model, a.variant, a.index, a.total]),
    ).toEqual([
      ['p2', 'single', 1, 2],
      ['p1', 'single', 2, 2],
    ]);
    expect(frameOf(response, 'image').model).toBe('p1');
  });
});

describe('reply_image', () => {
  it('success: image_pending(X) → image_attempt(X) → meta(X) → image(X) → done(X) → final', async () => {
    const sessionId = await newSession();
    const response = await run(sessionId, forced('a boat', { mode: 'image_only' }));
    expect(types(response)).toEqual([
      'image_pending',
      'image_attempt',
      'meta',
      'image',
      'done',
      'final',
    ]);
    const x = frameOf(response, 'image_pending').message_id;
    for (const item of response.frames.slice(0, -1))
      expect(item.data).toMatchObject({ message_id: x });
    expect(frameOf(response, 'meta')).toEqual({
      type: 'meta',
      message_id: x,
      action_type: 'reply_image',
      model: 'p1',
    });
    expect(frameOf(response, 'done')).toMatchObject({ truncated: false, usage: null });
    expect(frameOf(response, 'final')).toMatchObject({
      message_ids: [x],
      action_type: 'reply_image',
    });
    const [assistant] = await history(sessionId);
    expect(assistant).toMatchObject({
      id: x,
      role: 'assistant',
      action_type: 'reply_image',
      content: '',
    });
    expect(assistant.image).toMatchObject({ mime: 'image/png', width: 64, height: 64 });
  });

  it('failure: image_failed(X) → meta(Y, reply_text) → delta+ → done(Y) → final, X ≠ Y and X never stored', async () => {
    upstream.script('p1', { kind: 'status', status: 500 });
    upstream.script('p2', { kind: 'status', status: 502 });
    const sessionId = await newSession();
    const response = await run(sessionId, forced('a castle', { mode: 'image_only' }));
    expect(shape(response)).toEqual([
      'image_pending',
      'image_attempt',
      'image_attempt',
      'image_attempt',
      'image_attempt',
      'image_failed',
      'meta',
      'delta',
      'done',
      'final',
    ]);
    const x = frameOf(response, 'image_pending').message_id;
    expect(frameOf(response, 'image_failed')).toEqual({
      type: 'image_failed',
      message_id: x,
      reason: 'chain_exhausted',
    });
    const y = frameOf(response, 'meta').message_id;
    expect(y).not.toBe(x);
    expect(frameOf(response, 'meta').action_type).toBe('reply_text');
    expect(frameOf(response, 'done').message_id).toBe(y);
    expect(frameOf(response, 'final').message_ids).toEqual([y]);

    const stored = await history(sessionId);
    expect(stored.map((message) => message.id)).not.toContain(x);
    expect(stored.map((message) => message.role)).toEqual(['assistant', 'user']);
    expect(stored[0]).toMatchObject({ id: y, action_type: 'reply_text', image: null });
    expect(stored[0].image_failed!.reason).toBe('chain_exhausted');
    expect(stored[0].image_failed!.attempts).toHaveLength(4);
  });

  it('keeps the image diagnostic when the text reply Y also fails before its first token', async () => {
    upstream.script('p1', { kind: 'status', status: 500 });
    upstream.script('p2', { kind: 'status', status: 500 });
    upstream.script('chat', { kind: 'status', status: 503 });
    const sessionId = await newSession();
    const body = forced('doomed', { mode: 'image_only' });
    const first = await run(sessionId, body);
    expect(shape(first)).toEqual([
      'image_pending',
      'image_attempt',
      'image_attempt',
      'image_attempt',
      'image_attempt',
      'image_failed',
      'error',
    ]);
    const again = await run(sessionId, body);
    expect(types(again)).toEqual(['image_pending', 'image_failed', 'error']);
    expect(frameOf(again, 'image_failed')).toEqual(frameOf(first, 'image_failed'));
    expect(frameOf(again, 'error')).toEqual(frameOf(first, 'error'));
    expect((await history(sessionId)).map((message) => message.role)).toEqual(['user']);
  });

  it('a forced image_only turn may have an empty message when image_prompt says what to draw', async () => {
    const response = await run(
      await newSession(),
      forced('', { mode: 'image_only', image_prompt: 'a red kite' }),
    );
    expect(types(response).at(-1)).toBe('final');
    const composer = upstream.requests.find((request) => request.type === 'completion')!;
    expect(JSON.stringify(composer.body)).toContain('a red kite');
  });
});

/**
 * Runs a turn and leaves once a `frameType` frame arrived and the upstream holds a `requestType`
 * call: that call and the moment the client left.
 */
async function leaveDuring(
  sessionId: string,
  body: unknown,
  frameType: Frame['type'],
  requestType: RecordedRequest['type'],
): Promise<{ request: RecordedRequest; leftAt: number }> {
  const find = (): RecordedRequest | undefined =>
    upstream.requests.find((request) => request.type === requestType);
  let leftAt = 0;
  await run(sessionId, body, {
    onFrame: (received, disconnect) => {
      if (received.data.type !== frameType) return;
      void eventually(async () => find()).then(() => {
        leftAt = performance.now();
        disconnect();
      });
    },
  });
  return { request: find()!, leftAt };
}

describe('cancellation of image work', () => {
  it('aborts the composer call when the client leaves during composing', async () => {
    upstream.script('composer', { kind: 'stall' });
    const { request: composer, leftAt } = await leaveDuring(
      await newSession(),
      forced('slow compose'),
      'image_pending',
      'completion',
    );
    const closedAt = await composer.closed;
    expect(closedAt - leftAt).toBeLessThan(100);
    expect(upstream.requests.filter((request) => request.type === 'image')).toHaveLength(0);
  });

  it('aborts the in-flight draw when the client leaves during an attempt', async () => {
    upstream.script('p1', { kind: 'image', delayMs: 5000 });
    const sessionId = await newSession();
    const { request: draw, leftAt } = await leaveDuring(
      sessionId,
      forced('slow draw'),
      'image_attempt',
      'image',
    );
    const closedAt = await draw.closed;
    expect(draw.clientAborted).toBe(true);
    expect(closedAt - leftAt).toBeLessThan(100);
    // The text part had finished: it stays complete; no image was stored and no further attempt made.
    const [assistant] = await eventually(async () => {
      const items = await history(sessionId);
      return items[0]?.role === 'assistant' ? items : null;
    });
    expect(assistant).toMatchObject({ status: 'complete', image: null });
    expect(upstream.requests.filter((request) => request.type === 'image')).toHaveLength(1);
  });
});

describe('replay and signed URLs', () => {
  it('replays an image turn without calling the upstream and returns the same image', async () => {
    const sessionId = await newSession();
    const body = forced('replayed picture');
    const first = await run(sessionId, body);
    const calls = upstream.requests.length;
    const again = await run(sessionId, body);
    expect(upstream.requests.length).toBe(calls);
    expect(types(again)).toEqual(['meta', 'delta', 'done', 'image_pending', 'image', 'final']);
    const before = frameOf(first, 'image');
    const after = frameOf(again, 'image');
    expect(after.data_url).toBe(before.data_url);
    expect(new URL(after.url).pathname).toBe(new URL(before.url).pathname);
    expect({ ...after, url: '' }).toEqual({ ...before, url: '' });
    expect(frameOf(again, 'final')).toEqual({ ...frameOf(first, 'final'), replayed: true });
  });

  it('replays a degraded reply_image turn with the same X and Y', async () => {
    upstream.script('p1', { kind: 'status', status: 500 });
    upstream.script('p2', { kind: 'status', status: 500 });
    const sessionId = await newSession();
    const body = forced('never drawn', { mode: 'image_only' });
    const first = await run(sessionId, body);
    const again = await run(sessionId, body);
    expect(types(again)).toEqual([
      'image_pending',
      'image_failed',
      'meta',
      'delta',
      'done',
      'final',
    ]);
    expect(frameOf(again, 'image_failed')).toEqual(frameOf(first, 'image_failed'));
    expect(frameOf(again, 'meta')).toEqual(frameOf(first, 'meta'));
  });

  it('refuses a tampered or expired signature with 403', async () => {
    const response = await run(await newSession(), forced('signed'));
    const url = new URL(frameOf(response, 'image').url);
    const tampered = new URL(url);
    tampered.searchParams.set('sig', `${url.searchParams.get('sig')!.slice(0, -2)}xx`);
    const forbidden = await fetch(tampered);
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({ code: 'forbidden' });

    const imageId = url.pathname.split('/').at(-1)!;
    const signer = app.app.get(ImageUrlSigner);
    const expired = signer.sign(imageId, Date.now() - 2 * app.config.image.urlTtlSeconds * 1000);
    expect((await fetch(expired.url)).status).toBe(403);
    const fresh = signer.sign(imageId);
    expect((await fetch(fresh.url)).status).toBe(200);
  });
});

describe('action planner', () => {
  it.each([
    ['draw me a cat', 'reply_text_image'],
    ['给我画一只猫', 'reply_text_image'],
    ['hello', 'reply_text'],
  ])('%s → %s', async (content, action) => {
    const response = await run(await newSession(), {
      content,
      client_msg_id: clientMsgId('img'),
      image: {},
    });
    expect(frameOf(response, 'final').action_type).toBe(action);
    expect(types(response).includes('image_pending')).toBe(action !== 'reply_text');
  });
});

describe('image generation off', () => {
  let disabled: TestApp;
  beforeAll(async () => {
    disabled = await startApp({
      LLM_BASE_URL: upstream.baseUrl,
      LLM_API_KEY: 'test-key',
      CHAT_MODELS: 'chat',
      IMAGE_MODELS: '',
    });
  });
  afterAll(() => disabled.close());

  it('answers a forced image turn with 422 image_disabled', async () => {
    const aliceToken = await disabled.token('alice');
    const response = await postTurn(
      disabled.baseUrl,
      await newSession(disabled, aliceToken),
      aliceToken,
      forced('x'),
    );
    expect(response.status).toBe(422);
    expect(response.json).toMatchObject({ code: 'image_disabled' });
  });

  it('does not draw with a caller-named model either', async () => {
    const aliceToken = await disabled.token('alice');
    const response = await postTurn(
      disabled.baseUrl,
      await newSession(disabled, aliceToken),
      aliceToken,
      { content: 'draw me a dog', client_msg_id: clientMsgId('img'), image: { model: 'p1' } },
    );
    expect(frameOf(response, 'image_failed').reason).toBe('config_error');
    expect(upstream.requests.filter((request) => request.type === 'image')).toHaveLength(0);
  });

  it('answers a planned image turn with image_pending → image_failed(config_error) and no attempt', async () => {
    const aliceToken = await disabled.token('alice');
    const response = await postTurn(
      disabled.baseUrl,
      await newSession(disabled, aliceToken),
      aliceToken,
      {
        content: 'draw me a cat',
        client_msg_id: clientMsgId('img'),
        image: {},
      },
    );
    expect(shape(response)).toEqual([
      'meta',
      'delta',
      'done',
      'image_pending',
      'image_failed',
      'final',
    ]);
    expect(frameOf(response, 'image_failed').reason).toBe('config_error');
    expect(upstream.requests.filter((request) => request.type === 'image')).toHaveLength(0);
  });
});
