import { performance } from 'node:perf_hooks';
import { turnBody } from './harness/api.js';
import { useUpstream } from './harness/app.js';
import type { RecordedRequest } from './harness/fake-upstream.js';
import { eventually, frameOf, framesOf, type TurnResponse, types } from './harness/sse-client.js';

/**
 * Partial image previews through the fallback chain (docs/api-reference.md §13), on the OpenAI
 * Images API flavour of the fake upstream, and `image.concurrent` (draw while the text streams).
 */
const suite = useUpstream(
  {
    IMAGE_API: 'images',
    CHAT_MODELS: 'chat',
    IMAGE_MODELS: 'p1,p2',
    IMAGE_COMPOSE_MODEL: 'off',
    IMAGE_ATTEMPT_TIMEOUT_MS: '5000',
    IMAGE_PREVIEW_MAX_BYTES: '4096',
    TURN_TIMEOUT_MS: '15000',
  },
  'pia',
);

const draw = (partialImages: number, extra: Record<string, unknown> = {}) =>
  turnBody('a lighthouse at dusk', {
    image: { force: true, mode: 'image_only', partial_images: partialImages, ...extra },
  });

const drawRequests = (): RecordedRequest[] =>
  suite.upstream.requests.filter((request) => request.type === 'images-api');

/** The previews as [attempt index, partial index]. */
const previews = (response: TurnResponse): number[][] =>
  framesOf(response, 'image_partial').map((frame) => [frame.index, frame.partial_index]);

describe('image_partial previews', () => {
  it('sends the asked previews after their attempt, in order, each a checked inline image', async () => {
    suite.upstream.script('p1', { kind: 'images', partials: 2 });
    const response = await suite.firstTurn(draw(2));

    expect(types(response)).toEqual([
      'image_pending',
      'image_attempt',
      'image_partial',
      'image_partial',
      'meta',
      'image',
      'done',
      'final',
    ]);
    expect(previews(response)).toEqual([
      [1, 0],
      [1, 1],
    ]);
    const x = frameOf(response, 'image_pending').message_id;
    for (const preview of framesOf(response, 'image_partial')) {
      expect(preview.message_id).toBe(x);
      expect(preview.mime).toBe('image/png');
      expect(preview.data_url.startsWith('data:image/png;base64,')).toBe(true);
    }
    const [request] = drawRequests();
    expect(request.body).toEqual(expect.objectContaining({ stream: true, partial_images: 2 }));
  });

  it('a preview of an attempt that then fails is followed by the next attempt', async () => {
    suite.upstream.script('p1', { kind: 'partial-then-error', afterPartials: 1 });
    suite.upstream.script('p2', { kind: 'images', partials: 2 });
    const response = await suite.firstTurn(draw(2));

    expect(types(response).slice(0, 6)).toEqual([
      'image_pending',
      'image_attempt',
      'image_partial',
      'image_attempt',
      'image_partial',
      'image_partial',
    ]);
    expect(previews(response)).toEqual([
      [1, 0],
      [2, 0],
      [2, 1],
    ]);
    expect(frameOf(response, 'image').model).toBe('p2');
    const [message] = await suite.history(response.sessionId);
    expect(message.image?.attempts.map((attempt) => [attempt.model, attempt.outcome])).toEqual([
      ['p1', 'transport'],
      ['p2', 'ok'],
    ]);
  });

  it('sends no preview with partial_images 0 (a plain, unstreamed request), nor in a replay', async () => {
    suite.upstream.script('p1', { kind: 'images', partials: 2 });
    const sessionId = await suite.session();
    const body = draw(2);
    const live = await suite.turn(sessionId, body);
    expect(previews(live)).toHaveLength(2);
    const replay = await suite.turn(sessionId, body);
    expect(frameOf(replay, 'final').replayed).toBe(true);
    expect(previews(replay)).toEqual([]);

    suite.upstream.reset();
    const plain = await suite.firstTurn(draw(0));
    expect(previews(plain)).toEqual([]);
    expect(types(plain).at(-1)).toBe('final');
    expect(drawRequests()[0].body['stream']).not.toBe(true);
  });

  it.each([
    ['not an image', 'garbage'],
    ['over IMAGE_PREVIEW_MAX_BYTES', 'huge'],
  ] as const)('drops a preview that is %s without failing the attempt', async (_label, bad) => {
    suite.upstream.script('p1', { kind: 'images', partials: 2, badPartials: { 0: bad } });
    const response = await suite.firstTurn(draw(2));

    expect(previews(response)).toEqual([[1, 0]]);
    expect(framesOf(response, 'image_attempt')).toHaveLength(1);
    expect(frameOf(response, 'image').model).toBe('p1');
  });

  it('closes the streamed draw within 100 ms when the client leaves after a preview', async () => {
    suite.upstream.script('p1', { kind: 'images', partials: 3, delayMs: 400 });
    let leftAt = 0;
    await suite.firstTurn(draw(3), {
      onFrame: (received, disconnect) => {
        if (received.data.type !== 'image_partial') return;
        leftAt = performance.now();
        disconnect();
      },
    });
    const [request] = drawRequests();
    const closedAt = await request.closed;
    expect(request.clientAborted).toBe(true);
    expect(closedAt - leftAt).toBeLessThan(100);
  });
});

describe('image.concurrent: draw while the text streams', () => {
  const both = (extra: Record<string, unknown> = {}) =>
    turnBody('tell me about lighthouses', { image: { force: true, concurrent: true, ...extra } });
  const slowText = {
    kind: 'stream',
    chunks: 'one two three four five six'.split(' '),
    delayMs: 150,
  } as const;

  it('starts the draw with the turn: image frames come between the deltas, final last', async () => {
    suite.upstream.script('chat', slowText);
    suite.upstream.script('p1', { kind: 'images', partials: 1, delayMs: 50 });
    const response = await suite.firstTurn(both({ partial_images: 1 }));
    const order = types(response);

    expect(order.slice(0, 2)).toEqual(['meta', 'image_pending']);
    expect(order.at(-1)).toBe('final');
    expect(order.filter((type) => type === 'final' || type === 'error')).toEqual(['final']);
    // The picture landed while the text still streamed.
    expect(order.indexOf('image')).toBeLessThan(order.lastIndexOf('delta'));
    expect(order.indexOf('image_attempt')).toBeLessThan(order.indexOf('done'));
    const id = frameOf(response, 'meta').message_id;
    expect(
      response.frames.every(
        (frame) => !('message_id' in frame.data) || frame.data.message_id === id,
      ),
    ).toBe(true);
    const [message] = await suite.history(response.sessionId);
    expect(message.content).toBe('one two three four five six'.split(' ').join(''));
    expect(message.image?.model).toBe('p1');
  });

  it('an image failure leaves the text to finish: image_failed, then the rest, then final', async () => {
    suite.upstream.script('chat', slowText);
    suite.upstream.script('p1', { kind: 'status', status: 500 });
    suite.upstream.script('p2', { kind: 'status', status: 500 });
    const response = await suite.firstTurn(both());
    const order = types(response);

    expect(order).toContain('image_failed');
    expect(order.indexOf('image_failed')).toBeLessThan(order.indexOf('done'));
    expect(order.at(-1)).toBe('final');
  });

  it('a text failure ends the turn v1-style and tears the draw down', async () => {
    suite.upstream.script('chat', { kind: 'cut', chunks: ['a', 'b', 'c'], afterChunks: 2 });
    suite.upstream.script('p1', { kind: 'images', delayMs: 5000 });
    const response = await suite.firstTurn(both());

    expect(types(response).slice(-2)).toEqual(['done', 'error']);
    expect(frameOf(response, 'done').truncated).toBe(true);
    const [request] = drawRequests();
    await expect(request.closed).resolves.toEqual(expect.any(Number));
    expect(request.clientAborted).toBe(true);
  });

  it('closes both upstream calls within 100 ms when the client leaves', async () => {
    suite.upstream.script('chat', { ...slowText, delayMs: 400 });
    suite.upstream.script('p1', { kind: 'images', delayMs: 5000 });
    let leftAt = 0;
    await suite.firstTurn(both(), {
      onFrame: (received, disconnect) => {
        if (received.data.type !== 'image_attempt') return;
        void eventually(async () => drawRequests()[0]).then(() => {
          leftAt = performance.now();
          disconnect();
        });
      },
    });
    const chat = suite.upstream.requests.find((request) => request.type === 'chat-stream')!;
    const [image] = drawRequests();
    const [chatClosed, imageClosed] = await Promise.all([chat.closed, image.closed]);
    expect(chatClosed - leftAt).toBeLessThan(100);
    expect(imageClosed - leftAt).toBeLessThan(100);
  });
});
