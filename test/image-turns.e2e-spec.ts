import { ImageUrlSigner } from '../src/images/image-url.signer.js';
import type { Frame } from '../src/chat/turns/frames.js';
import type { RecordedRequest } from './harness/fake-upstream.js';
import { upstreamEnv, useApp, useUpstream } from './harness/app.js';
import { turnBody, userClient } from './harness/api.js';
import {
  eventually,
  expectIdsFrom,
  frameOf,
  framesOf,
  shape,
  type TurnResponse,
  types,
} from './harness/sse-client.js';

const suite = useUpstream({
  CHAT_MODELS: 'chat',
  IMAGE_MODELS: 'p1,p2',
  IMAGE_COMPOSE_MODEL: 'composer',
  IMAGE_ATTEMPT_TIMEOUT_MS: '2000',
  TURN_TIMEOUT_MS: '10000',
});

/** A text reply's frames, deltas folded (as {@link shape} reads them). */
const TEXT = ['meta', 'delta', 'done'];
/** Every attempt of the chain failed: both variants on both models. */
const EXHAUSTED = [...Array<string>(4).fill('image_attempt'), 'image_failed'];

const forced = (content: string, image: Record<string, unknown> = {}) =>
  turnBody(content, { image: { force: true, ...image } });

/** Every frame but the closing `final` is about message `id`. */
function expectAllOf(response: TurnResponse, id: string): void {
  for (const item of response.frames.slice(0, -1)) {
    expect(item.data).toMatchObject({ message_id: id });
  }
}

/** The upstream calls of one kind. */
const calls = (type: RecordedRequest['type']): RecordedRequest[] =>
  suite.upstream.requests.filter((request) => request.type === type);

describe('reply_text_image', () => {
  it('success: meta → delta* → done → image_pending → image_attempt → image → final', async () => {
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, forced('a lighthouse', { aspect_ratio: '16:9' }));

    expect(shape(response)).toEqual([...TEXT, 'image_pending', 'image_attempt', 'image', 'final']);
    expectIdsFrom(response);
    const id = frameOf(response, 'meta').message_id;
    expect(frameOf(response, 'meta').action_type).toBe('reply_text_image');
    expectAllOf(response, id);
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
    const [composer] = calls('completion');
    expect(composer.model).toBe('composer');
    expect(pendingAt).toBeLessThan(composer.receivedAt);
    const [draw] = calls('image');
    expect(draw.body).toMatchObject({
      modalities: ['image', 'text'],
      image_config: { aspect_ratio: '16:9' },
    });

    const [assistant] = await suite.history(sessionId);
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
    suite.upstream.script('p1', { kind: 'status', status: 500, code: 'boom' });
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, forced('a fox'));
    expect(
      framesOf(response, 'image_attempt').map((a) => [a.model, a.variant, a.index, a.total]),
    ).toEqual([
      ['p1', 'composed', 1, 4],
      ['p1', 'original', 2, 4],
      ['p2', 'composed', 3, 4],
    ]);
    expect(frameOf(response, 'image').model).toBe('p2');
    expect(calls('image')).toHaveLength(3);
    const [assistant] = await suite.history(sessionId);
    expect(assistant.image!.attempts.map((a) => [a.model, a.outcome, a.status ?? null])).toEqual([
      ['p1', 'status', 500],
      ['p1', 'status', 500],
      ['p2', 'ok', null],
    ]);
    expect(assistant.image!.attempts[0].error_code).toBe('boom');
  });

  it('failure: image_failed(chain_exhausted) then final, with every attempt stored', async () => {
    suite.upstream.script('p1', { kind: 'zero-images' });
    suite.upstream.script('p2', { kind: 'garbage' });
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, forced('a ghost'));
    expect(shape(response)).toEqual([...TEXT, 'image_pending', ...EXHAUSTED, 'final']);
    expect(frameOf(response, 'image_failed')).toMatchObject({ reason: 'chain_exhausted' });
    const [assistant] = await suite.history(sessionId);
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
    suite.upstream.script('composer', { kind: 'status', status: 500 });
    suite.upstream.script('p2', { kind: 'status', status: 503 });
    const response = await suite.turn(await suite.session(), forced('a tree', { model: 'p2' }));
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
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, forced('a boat', { mode: 'image_only' }));
    expect(types(response)).toEqual([
      'image_pending',
      'image_attempt',
      'meta',
      'image',
      'done',
      'final',
    ]);
    const x = frameOf(response, 'image_pending').message_id;
    expectAllOf(response, x);
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
    const [assistant] = await suite.history(sessionId);
    expect(assistant).toMatchObject({
      id: x,
      role: 'assistant',
      action_type: 'reply_image',
      content: '',
    });
    expect(assistant.image).toMatchObject({ mime: 'image/png', width: 64, height: 64 });
  });

  it('failure: image_failed(X) → meta(Y, reply_text) → delta+ → done(Y) → final, X ≠ Y and X never stored', async () => {
    suite.upstream.script('p1', { kind: 'status', status: 500 });
    suite.upstream.script('p2', { kind: 'status', status: 502 });
    const sessionId = await suite.session();
    const response = await suite.turn(sessionId, forced('a castle', { mode: 'image_only' }));
    expect(shape(response)).toEqual(['image_pending', ...EXHAUSTED, ...TEXT, 'final']);
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

    const stored = await suite.history(sessionId);
    expect(stored.map((message) => message.id)).not.toContain(x);
    expect(stored.map((message) => message.role)).toEqual(['assistant', 'user']);
    expect(stored[0]).toMatchObject({ id: y, action_type: 'reply_text', image: null });
    expect(stored[0].image_failed!.reason).toBe('chain_exhausted');
    expect(stored[0].image_failed!.attempts).toHaveLength(4);
  });

  it('keeps the image diagnostic when the text reply Y also fails before its first token', async () => {
    suite.upstream.script('p1', { kind: 'status', status: 500 });
    suite.upstream.script('p2', { kind: 'status', status: 500 });
    suite.upstream.script('chat', { kind: 'status', status: 503 });
    const sessionId = await suite.session();
    const body = forced('doomed', { mode: 'image_only' });
    const first = await suite.turn(sessionId, body);
    expect(shape(first)).toEqual(['image_pending', ...EXHAUSTED, 'error']);
    const again = await suite.turn(sessionId, body);
    expect(types(again)).toEqual(['image_pending', 'image_failed', 'error']);
    expect(frameOf(again, 'image_failed')).toEqual(frameOf(first, 'image_failed'));
    expect(frameOf(again, 'error')).toEqual(frameOf(first, 'error'));
    expect((await suite.history(sessionId)).map((message) => message.role)).toEqual(['user']);
  });

  it('a forced image_only turn may have an empty message when image_prompt says what to draw', async () => {
    const response = await suite.turn(
      await suite.session(),
      forced('', { mode: 'image_only', image_prompt: 'a red kite' }),
    );
    expect(types(response).at(-1)).toBe('final');
    const [composer] = calls('completion');
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
  let leftAt = 0;
  await suite.turn(sessionId, body, {
    onFrame: (received, disconnect) => {
      if (received.data.type !== frameType) return;
      void eventually(async () => calls(requestType)[0]).then(() => {
        leftAt = performance.now();
        disconnect();
      });
    },
  });
  return { request: calls(requestType)[0], leftAt };
}

describe('cancellation of image work', () => {
  it('aborts the composer call when the client leaves during composing', async () => {
    suite.upstream.script('composer', { kind: 'stall' });
    const { request: composer, leftAt } = await leaveDuring(
      await suite.session(),
      forced('slow compose'),
      'image_pending',
      'completion',
    );
    const closedAt = await composer.closed;
    expect(closedAt - leftAt).toBeLessThan(100);
    expect(calls('image')).toHaveLength(0);
  });

  it('aborts the in-flight draw when the client leaves during an attempt', async () => {
    suite.upstream.script('p1', { kind: 'image', delayMs: 5000 });
    const sessionId = await suite.session();
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
      const items = await suite.history(sessionId);
      return items[0]?.role === 'assistant' ? items : null;
    });
    expect(assistant).toMatchObject({ status: 'complete', image: null });
    expect(calls('image')).toHaveLength(1);
  });
});

describe('replay and signed URLs', () => {
  it('replays an image turn without calling the upstream and returns the same image', async () => {
    const { first, again } = await suite.replayed(forced('replayed picture'));
    expect(types(again)).toEqual(['meta', 'delta', 'done', 'image_pending', 'image', 'final']);
    const before = frameOf(first, 'image');
    const after = frameOf(again, 'image');
    expect(after.data_url).toBe(before.data_url);
    expect(new URL(after.url).pathname).toBe(new URL(before.url).pathname);
    expect({ ...after, url: '' }).toEqual({ ...before, url: '' });
    expect(frameOf(again, 'final')).toEqual({ ...frameOf(first, 'final'), replayed: true });
  });

  it('replays a degraded reply_image turn with the same X and Y', async () => {
    suite.upstream.script('p1', { kind: 'status', status: 500 });
    suite.upstream.script('p2', { kind: 'status', status: 500 });
    const sessionId = await suite.session();
    const body = forced('never drawn', { mode: 'image_only' });
    const first = await suite.turn(sessionId, body);
    const again = await suite.turn(sessionId, body);
    expect(types(again)).toEqual(['image_pending', 'image_failed', ...TEXT, 'final']);
    expect(frameOf(again, 'image_failed')).toEqual(frameOf(first, 'image_failed'));
    expect(frameOf(again, 'meta')).toEqual(frameOf(first, 'meta'));
  });

  it('refuses a tampered or expired signature with 403', async () => {
    const response = await suite.turn(await suite.session(), forced('signed'));
    const url = new URL(frameOf(response, 'image').url);
    const tampered = new URL(url);
    tampered.searchParams.set('sig', `${url.searchParams.get('sig')!.slice(0, -2)}xx`);
    const forbidden = await fetch(tampered);
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({ code: 'forbidden' });

    const imageId = url.pathname.split('/').at(-1)!;
    const signer = suite.app.app.get(ImageUrlSigner);
    const expired = signer.sign(
      imageId,
      Date.now() - 2 * suite.app.config.image.urlTtlSeconds * 1000,
    );
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
    const response = await suite.turn(await suite.session(), turnBody(content, { image: {} }));
    expect(frameOf(response, 'final').action_type).toBe(action);
    expect(types(response).includes('image_pending')).toBe(action !== 'reply_text');
  });
});

describe('image generation off', () => {
  const disabled = useApp(() =>
    upstreamEnv(suite.upstream, { CHAT_MODELS: 'chat', IMAGE_MODELS: '' }),
  );

  /** A turn of alice's in a new session on the app without image models. */
  async function runDisabled(body: unknown): Promise<TurnResponse> {
    const alice = userClient(disabled.baseUrl, await disabled.token('alice'));
    return alice.turn(await alice.session(), body);
  }

  it('answers a forced image turn with 422 image_disabled', async () => {
    const response = await runDisabled(forced('x'));
    expect(response.status).toBe(422);
    expect(response.json).toMatchObject({ code: 'image_disabled' });
  });

  it('does not draw with a caller-named model either', async () => {
    const response = await runDisabled(turnBody('draw me a dog', { image: { model: 'p1' } }));
    expect(frameOf(response, 'image_failed').reason).toBe('config_error');
    expect(calls('image')).toHaveLength(0);
  });

  it('answers a planned image turn with image_pending → image_failed(config_error) and no attempt', async () => {
    const response = await runDisabled(turnBody('draw me a cat', { image: {} }));
    expect(shape(response)).toEqual([...TEXT, 'image_pending', 'image_failed', 'final']);
    expect(frameOf(response, 'image_failed').reason).toBe('config_error');
    expect(calls('image')).toHaveLength(0);
  });
});
