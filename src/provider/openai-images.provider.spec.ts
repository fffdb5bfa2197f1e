import { startFakeUpstream, type FakeUpstream } from '../../test/harness/fake-upstream.js';
import { imageRequest } from '../../test/harness/provider-calls.js';
import type { ImageEvent, ImageRequest } from './image-provider.js';
import { ProviderError } from './llm-provider.js';
import { OpenAiImagesProvider } from './openai-images.provider.js';

const MODEL = 'gpt-image-1';

/** Everything the attempt yielded, and what it threw (null when it ended normally). */
async function run(
  provider: OpenAiImagesProvider,
  request: ImageRequest,
): Promise<{ events: ImageEvent[]; error: unknown }> {
  const events: ImageEvent[] = [];
  try {
    for await (const event of provider.generateImage(request)) events.push(event);
  } catch (error) {
    return { events, error };
  }
  return { events, error: null };
}

function pngSize(dataUrl: string): [number, number] {
  const prefix = 'data:image/png;base64,';
  expect(dataUrl.startsWith(prefix)).toBe(true);
  const png = Buffer.from(dataUrl.slice(prefix.length), 'base64');
  expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
  return [png.readUInt32BE(16), png.readUInt32BE(20)];
}

describe('OpenAiImagesProvider against the fake upstream', () => {
  let upstream: FakeUpstream;
  let provider: OpenAiImagesProvider;

  const request = (overrides: Partial<ImageRequest> = {}): ImageRequest =>
    imageRequest(MODEL, overrides);

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    provider = new OpenAiImagesProvider({ baseUrl: upstream.baseUrl, apiKey: 'image-key' });
  });

  afterAll(async () => {
    await upstream.close();
  });

  beforeEach(() => upstream.reset());

  describe('not streamed (no previews asked)', () => {
    it('posts to /images/generations and returns b64_json as a data URL, request id as generation id', async () => {
      const { events, error } = await run(provider, request({ aspectRatio: '16:9' }));
      expect(error).toBeNull();
      const [recorded] = upstream.requests;
      expect(recorded.type).toBe('images-api');
      expect(recorded.authorization).toBe('Bearer image-key');
      expect(recorded.body).toEqual({
        model: MODEL,
        prompt: 'a red fox in the snow',
        n: 1,
        size: '1536x1024',
      });
      expect(events).toHaveLength(1);
      const [result] = events;
      if (result.type !== 'result') throw new Error('no result');
      expect(result.generationId).toBe(recorded.generationId);
      expect(result.images).toHaveLength(1);
      expect(pngSize(result.images[0])).toEqual([64, 64]);
    });

    it('sends no size without an aspect ratio, and labels JPEG output as such', async () => {
      upstream.script(MODEL, { kind: 'images', mime: 'image/jpeg', width: 16, height: 8 });
      const { events } = await run(provider, request());
      expect(upstream.requests[0].body).not.toHaveProperty('size');
      expect(events[0]).toMatchObject({ type: 'result' });
      if (events[0].type !== 'result') return;
      expect(events[0].images[0]).toMatch(/^data:image\/jpeg;base64,\/9j\//);
    });

    it('answers an empty data list as zero images', async () => {
      upstream.script(MODEL, { kind: 'zero-images' });
      const { events, error } = await run(provider, request());
      expect(error).toBeNull();
      expect(events).toEqual([
        { type: 'result', images: [], generationId: upstream.requests[0].generationId },
      ]);
    });
  });

  describe('streamed (previews asked)', () => {
    it('asks for the previews and yields them in order, then the completed image', async () => {
      upstream.script(MODEL, { kind: 'images', width: 32, height: 32 });
      const { events, error } = await run(provider, request({ partialImages: 3 }));
      expect(error).toBeNull();
      expect(upstream.requests[0].body).toMatchObject({ stream: true, partial_images: 3, n: 1 });
      expect(events.map((e) => (e.type === 'partial' ? e.partialIndex : 'result'))).toEqual([
        0,
        1,
        2,
        'result',
      ]);
      const sizes = events.map((e) => pngSize(e.type === 'partial' ? e.dataUrl : e.images[0]));
      expect(sizes).toEqual([
        [4, 4],
        [8, 8],
        [16, 16],
        [32, 32],
      ]);
      const result = events.at(-1);
      expect(result).toMatchObject({
        type: 'result',
        generationId: upstream.requests[0].generationId,
      });
    });

    it('reads the same events when the upstream writes them in 7-byte pieces', async () => {
      upstream.script(MODEL, { kind: 'images', width: 8, height: 8, splitBytes: 7 });
      const { events, error } = await run(provider, request({ partialImages: 2 }));
      expect(error).toBeNull();
      expect(events.map((e) => e.type)).toEqual(['partial', 'partial', 'result']);
      expect(events.map((e) => pngSize(e.type === 'partial' ? e.dataUrl : e.images[0]))).toEqual([
        [2, 2],
        [4, 4],
        [8, 8],
      ]);
    });

    it('yields no more previews than asked', async () => {
      upstream.script(MODEL, { kind: 'images', partials: 3, width: 8, height: 8 });
      const { events } = await run(provider, request({ partialImages: 1 }));
      expect(events.map((e) => e.type)).toEqual(['partial', 'result']);
    });

    it('fails as stream after a preview when the upstream sends an error event', async () => {
      upstream.script(MODEL, { kind: 'partial-then-error', code: 'moderation_blocked' });
      const { events, error } = await run(provider, request({ partialImages: 2 }));
      expect(events.map((e) => e.type)).toEqual(['partial']);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ kind: 'stream', code: 'moderation_blocked' });
    });

    it('fails as transport when the stream closes before the completed event', async () => {
      upstream.script(MODEL, { kind: 'images', completed: false, width: 8, height: 8 });
      const { events, error } = await run(provider, request({ partialImages: 1 }));
      expect(events.map((e) => e.type)).toEqual(['partial']);
      expect(error).toMatchObject({ kind: 'transport' });
    });

    it('fails as transport when the socket is cut after a preview', async () => {
      upstream.script(MODEL, { kind: 'cut', afterChunks: 1 });
      const { events, error } = await run(provider, request({ partialImages: 2 }));
      expect(events.map((e) => e.type)).toEqual(['partial']);
      expect(error).toMatchObject({ kind: 'transport' });
    });

    it('closes the upstream socket within 100 ms of an abort mid-stream and throws aborted', async () => {
      upstream.script(MODEL, { kind: 'images', delayMs: 2000, width: 8, height: 8 });
      const controller = new AbortController();
      const received = new Promise<void>((resolve) => {
        const off = upstream.onRequest(() => {
          off();
          resolve();
        });
      });
      const pending = run(provider, request({ partialImages: 2, signal: controller.signal }));
      await received;
      // Let the headers arrive, so the abort tears down a streamed body, not a pending request.
      await new Promise((resolve) => setTimeout(resolve, 50));
      const abortedAt = performance.now();
      controller.abort();
      const { events, error } = await pending;
      expect(events).toEqual([]);
      expect(error).toMatchObject({ kind: 'aborted' });
      expect((await upstream.requests[0].socketClosed) - abortedAt).toBeLessThan(100);
      expect(upstream.requests[0].clientAborted).toBe(true);
    });

    it('closes the socket when the consumer stops after the first preview', async () => {
      upstream.script(MODEL, { kind: 'images', delayMs: 300, width: 8, height: 8 });
      for await (const event of provider.generateImage(request({ partialImages: 3 }))) {
        expect(event.type).toBe('partial');
        break;
      }
      const stoppedAt = performance.now();
      expect((await upstream.requests[0].socketClosed) - stoppedAt).toBeLessThan(100);
    });
  });

  describe('failures map to the chat-completions kinds', () => {
    it.each([
      [
        'a non-2xx answer',
        { kind: 'status', status: 400, code: 'invalid_size' },
        0,
        { kind: 'status', status: 400, code: 'invalid_size' },
      ],
      ['a 200 HTML page', { kind: 'html-200' }, 0, { kind: 'malformed' }],
      ['a 200 HTML page to a streamed request', { kind: 'html-200' }, 2, { kind: 'malformed' }],
      ['JSON of another shape', { kind: 'wrong-shape' }, 0, { kind: 'malformed' }],
      [
        'a 200 error body',
        { kind: 'error-chunk', afterChunks: 0, code: 'late' },
        0,
        { kind: 'stream', code: 'late' },
      ],
      ['a body cut in half', { kind: 'cut', afterChunks: 0 }, 0, { kind: 'transport' }],
      ['a reset before any byte', { kind: 'reset' }, 0, { kind: 'transport' }],
    ] as const)('%s', async (_name, step, partialImages, expected) => {
      upstream.script(MODEL, step);
      const { events, error } = await run(provider, request({ partialImages }));
      expect(events).toEqual([]);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject(expected);
    });

    it('returns a non-image b64_json untouched (decoding is the caller’s check)', async () => {
      upstream.script(MODEL, { kind: 'garbage' });
      const { events } = await run(provider, request());
      expect(events[0]).toMatchObject({ type: 'result' });
    });

    it('refuses a reference image without calling the upstream', async () => {
      const { events, error } = await run(
        provider,
        request({ referenceImageUrl: 'https://example.com/ref.png' }),
      );
      expect(events).toEqual([]);
      expect(error).toMatchObject({ kind: 'unsupported', code: 'reference_image_unsupported' });
      expect(upstream.requests).toHaveLength(0);
    });
  });
});
