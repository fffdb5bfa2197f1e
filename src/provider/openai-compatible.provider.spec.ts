import { createServer } from 'node:net';
import {
  FAKE_DEFAULT_CHUNKS,
  FAKE_DEFAULT_COMPLETION,
  FAKE_PROMPT_TOKENS,
  startFakeUpstream,
  type ChatScript,
  type FakeUpstream,
} from '../../test/harness/fake-upstream.js';
import {
  collect,
  collectUntilError,
  imageRequest,
  iterate,
} from '../../test/harness/provider-calls.js';
import type { ImageEvent, ImageRequest } from './image-provider.js';
import { ProviderError, type ChatChunk, type ChatRequest } from './llm-provider.js';
import { OpenAiCompatibleProvider } from './openai-compatible.provider.js';

const MODEL = 'vendor/chat-model';
const IMAGE_MODEL = 'vendor/image-model';

function deltas(chunks: readonly ChatChunk[]): string[] {
  return chunks.flatMap((c) => (c.type === 'delta' ? [c.content] : []));
}

/** The attempt's events; the last must be its one `result`. */
async function generate(
  provider: OpenAiCompatibleProvider,
  request: ImageRequest,
): Promise<Extract<ImageEvent, { type: 'result' }>> {
  const events: ImageEvent[] = [];
  for await (const event of provider.generateImage(request)) events.push(event);
  const last = events.at(-1);
  expect(events.filter((event) => event.type === 'result')).toHaveLength(1);
  if (last?.type !== 'result') throw new Error('no result event last');
  return last;
}

async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no port');
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return address.port;
}

describe('OpenAiCompatibleProvider against the fake upstream', () => {
  let upstream: FakeUpstream;
  let provider: OpenAiCompatibleProvider;

  const chat = (overrides: Partial<ChatRequest> = {}): ChatRequest => ({
    model: MODEL,
    messages: [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: 'Hi there' },
    ],
    signal: new AbortController().signal,
    ...overrides,
  });

  const image = (overrides: Partial<ImageRequest> = {}): ImageRequest =>
    imageRequest(IMAGE_MODEL, overrides);

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    provider = new OpenAiCompatibleProvider({
      baseUrl: upstream.baseUrl,
      apiKey: 'test-key',
      maxTokens: 256,
    });
  });

  afterAll(async () => {
    await upstream.close();
  });

  beforeEach(() => upstream.reset());

  describe('streamChat', () => {
    /** One chat stream, answered by the steps scripted for the model. */
    const scripted = (...steps: ChatScript[]): AsyncIterable<ChatChunk> => {
      upstream.script(MODEL, ...steps);
      return provider.streamChat(chat());
    };

    it('yields every delta, then one end chunk with usage and generation id', async () => {
      const chunks = await collect(provider.streamChat(chat()));
      expect(deltas(chunks)).toEqual(FAKE_DEFAULT_CHUNKS);
      expect(chunks.filter((c) => c.type === 'end')).toHaveLength(1);
      expect(chunks.at(-1)).toEqual({
        type: 'end',
        usage: {
          prompt_tokens: FAKE_PROMPT_TOKENS,
          completion_tokens: FAKE_DEFAULT_CHUNKS.length,
          total_tokens: FAKE_PROMPT_TOKENS + FAKE_DEFAULT_CHUNKS.length,
        },
        generationId: upstream.requests[0].generationId,
      });
      expect(upstream.requests[0].generationId).toMatch(/^gen-/);
    });

    it('sends a streaming request with usage included, max_tokens and the bearer key', async () => {
      await collect(provider.streamChat(chat()));
      const [request] = upstream.requests;
      expect(request.type).toBe('chat-stream');
      expect(request.model).toBe(MODEL);
      expect(request.authorization).toBe('Bearer test-key');
      expect(request.body).toMatchObject({
        model: MODEL,
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: 256,
        messages: [
          { role: 'system', content: 'Be brief.' },
          { role: 'user', content: 'Hi there' },
        ],
      });
    });

    it('ends with usage null when the upstream sends no usage chunk', async () => {
      const chunks = await collect(
        scripted({ kind: 'stream', chunks: ['a', 'b'], usage: false, processingComments: false }),
      );
      expect(deltas(chunks)).toEqual(['a', 'b']);
      expect(chunks.at(-1)).toMatchObject({ type: 'end', usage: null });
    });

    it('ends normally on [DONE] without a finish reason, and on a finish reason without [DONE]', async () => {
      upstream.script(
        MODEL,
        { kind: 'stream', chunks: ['a'], finishReason: false },
        { kind: 'stream', chunks: ['b'], done: false },
      );
      expect((await collect(provider.streamChat(chat()))).map((c) => c.type)).toEqual([
        'delta',
        'end',
      ]);
      expect((await collect(provider.streamChat(chat()))).map((c) => c.type)).toEqual([
        'delta',
        'end',
      ]);
    });

    it('throws transport, not end, when the stream closes without [DONE] or a finish reason', async () => {
      const { chunks, error } = await collectUntilError(
        scripted({ kind: 'stream', chunks: ['a', 'b'], done: false, finishReason: false }),
      );
      expect(deltas(chunks)).toEqual(['a', 'b']);
      expect(chunks.some((c) => c.type === 'end')).toBe(false);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ kind: 'transport' });
    });

    it('maps a 200 HTML page to malformed', async () => {
      await expect(collect(scripted({ kind: 'html-200' }))).rejects.toMatchObject({
        kind: 'malformed',
      });
    });

    it('maps a non-2xx answer to a status error with the upstream code', async () => {
      const { chunks, error } = await collectUntilError(
        scripted({ kind: 'status', status: 500, code: 'upstream_down', message: 'boom' }),
      );
      expect(chunks).toEqual([]);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ kind: 'status', status: 500, code: 'upstream_down' });
    });

    it('reports a status error without a code as code null', async () => {
      const { error } = await collectUntilError(scripted({ kind: 'status', status: 429 }));
      expect(error).toMatchObject({ kind: 'status', status: 429, code: null });
    });

    it('maps an error chunk mid-stream to a stream error, keeping the deltas before it', async () => {
      const { chunks, error } = await collectUntilError(
        scripted({ kind: 'error-chunk', afterChunks: 2, code: 502, message: 'Provider died' }),
      );
      expect(deltas(chunks)).toEqual(FAKE_DEFAULT_CHUNKS.slice(0, 2));
      expect(chunks.some((c) => c.type === 'end')).toBe(false);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ kind: 'stream', status: null, code: '502' });
    });

    it('maps a socket cut mid-stream to a transport error', async () => {
      const { chunks, error } = await collectUntilError(scripted({ kind: 'cut', afterChunks: 2 }));
      expect(deltas(chunks)).toEqual(FAKE_DEFAULT_CHUNKS.slice(0, 2));
      expect(error).toMatchObject({ kind: 'transport' });
    });

    it('maps a refused connection to a transport error', async () => {
      const port = await closedPort();
      const offline = new OpenAiCompatibleProvider({
        baseUrl: `http://127.0.0.1:${port}/api/v1`,
        apiKey: 'test-key',
      });
      const { error } = await collectUntilError(offline.streamChat(chat()));
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ kind: 'transport', status: null });
    });

    it('sends the request again once when the connection drops before any response byte', async () => {
      const chunks = await collect(scripted({ kind: 'reset' }, { kind: 'stream' }));
      expect(deltas(chunks)).toEqual(FAKE_DEFAULT_CHUNKS);
      expect(upstream.requests).toHaveLength(2);
    });

    it('gives up after one resend and reports transport', async () => {
      const { error } = await collectUntilError(scripted({ kind: 'reset' }));
      expect(error).toMatchObject({ kind: 'transport' });
      expect(upstream.requests).toHaveLength(2);
    });

    it('does not resend once the upstream has answered', async () => {
      const { error } = await collectUntilError(scripted({ kind: 'cut', afterChunks: 0 }));
      expect(error).toMatchObject({ kind: 'transport' });
      expect(upstream.requests).toHaveLength(1);
    });

    it('closes the upstream socket within 100 ms of an abort mid-stream and throws aborted', async () => {
      upstream.script(MODEL, { kind: 'stream', delayMs: 300 });
      const controller = new AbortController();
      const iterator = iterate(provider.streamChat(chat({ signal: controller.signal })));
      expect(await iterator.next()).toEqual({
        done: false,
        value: { type: 'delta', content: 'Hello' },
      });
      const pending = iterator.next();
      const abortedAt = performance.now();
      controller.abort();
      await expect(pending).rejects.toMatchObject({ name: 'ProviderError', kind: 'aborted' });
      const closedAt = await upstream.requests[0].closed;
      expect(closedAt - abortedAt).toBeLessThan(100);
      expect(upstream.requests[0].clientAborted).toBe(true);
    });

    it('throws aborted when aborted while the upstream stalls before any chunk', async () => {
      upstream.script(MODEL, { kind: 'stall' });
      const controller = new AbortController();
      const request = new Promise<void>((resolve) => {
        const off = upstream.onRequest(() => {
          off();
          resolve();
        });
      });
      const result = collectUntilError(provider.streamChat(chat({ signal: controller.signal })));
      await request;
      controller.abort();
      const { chunks, error } = await result;
      expect(chunks).toEqual([]);
      expect(error).toMatchObject({ kind: 'aborted' });
      await upstream.requests[0].closed;
    });

    it('throws aborted for a signal that is already aborted', async () => {
      const controller = new AbortController();
      controller.abort();
      const { error } = await collectUntilError(
        provider.streamChat(chat({ signal: controller.signal })),
      );
      expect(error).toMatchObject({ kind: 'aborted' });
    });

    it('closes the upstream socket when the consumer stops early', async () => {
      for await (const chunk of scripted({ kind: 'stream', delayMs: 300 })) {
        expect(chunk).toEqual({ type: 'delta', content: 'Hello' });
        break;
      }
      const stoppedAt = performance.now();
      expect((await upstream.requests[0].closed) - stoppedAt).toBeLessThan(100);
    });
  });

  describe('complete', () => {
    it('returns the message content of a non-streamed completion', async () => {
      await expect(provider.complete(chat())).resolves.toBe(FAKE_DEFAULT_COMPLETION);
      const [request] = upstream.requests;
      expect(request.type).toBe('completion');
      expect(request.body['stream']).not.toBe(true);
      expect(request.body['max_tokens']).toBe(256);
    });

    it('maps a 200 HTML page or a body without a message to malformed', async () => {
      upstream.script(MODEL, { kind: 'html-200' }, { kind: 'wrong-shape' });
      await expect(provider.complete(chat())).rejects.toMatchObject({ kind: 'malformed' });
      await expect(provider.complete(chat())).rejects.toMatchObject({ kind: 'malformed' });
    });

    it('returns scripted content', async () => {
      upstream.script(MODEL, { kind: 'complete', content: 'A fox, detailed' });
      await expect(provider.complete(chat())).resolves.toBe('A fox, detailed');
    });

    it('maps failures like streamChat does', async () => {
      upstream.script(
        MODEL,
        { kind: 'status', status: 503, code: 'overloaded' },
        { kind: 'cut', afterChunks: 0 },
        { kind: 'error-chunk', afterChunks: 0, code: 'late_failure' },
      );
      await expect(provider.complete(chat())).rejects.toMatchObject({
        kind: 'status',
        status: 503,
        code: 'overloaded',
      });
      await expect(provider.complete(chat())).rejects.toMatchObject({ kind: 'transport' });
      await expect(provider.complete(chat())).rejects.toMatchObject({
        kind: 'stream',
        code: 'late_failure',
      });
    });
  });

  describe('generateImage', () => {
    it('returns the data URLs as-is with the generation id', async () => {
      const result = await generate(provider, image());
      expect(result.generationId).toBe(upstream.requests[0].generationId);
      expect(result.generationId).toMatch(/^gen-img-/);
      expect(result.images).toHaveLength(1);
      const [url] = result.images;
      expect(url.startsWith('data:image/png;base64,')).toBe(true);
      const png = Buffer.from(url.slice('data:image/png;base64,'.length), 'base64');
      expect(png.subarray(1, 4).toString('latin1')).toBe('PNG');
      expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([64, 64]);
    });

    it('sends the prompt as a plain user message, image modalities and no image_config by default', async () => {
      await generate(provider, image());
      const [request] = upstream.requests;
      expect(request.type).toBe('image');
      expect(request.body).toEqual({
        model: IMAGE_MODEL,
        messages: [{ role: 'user', content: 'a red fox in the snow' }],
        modalities: ['image', 'text'],
      });
    });

    it('sends the aspect ratio and the reference image as an image_url part', async () => {
      await generate(
        provider,
        image({ aspectRatio: '16:9', referenceImageUrl: 'https://example.com/ref.png' }),
      );
      expect(upstream.requests[0].body).toEqual({
        model: IMAGE_MODEL,
        messages: [
          {
            role: 'user',
            content: [
              { type: 'text', text: 'a red fox in the snow' },
              { type: 'image_url', image_url: { url: 'https://example.com/ref.png' } },
            ],
          },
        ],
        modalities: ['image', 'text'],
        image_config: { aspect_ratio: '16:9' },
      });
    });

    it('passes JPEG and undecodable data URLs through untouched', async () => {
      upstream.script(
        IMAGE_MODEL,
        { kind: 'image', mime: 'image/jpeg', width: 40, height: 30 },
        { kind: 'garbage' },
      );
      const jpeg = await generate(provider, image());
      expect(jpeg.images[0]).toMatch(/^data:image\/jpeg;base64,\/9j\//);
      const garbage = await generate(provider, image());
      expect(garbage.images).toHaveLength(1);
      expect(garbage.images[0]).toMatch(/^data:image\/png;base64,/);
    });

    it('answers zero images as an empty list, not an error', async () => {
      upstream.script(IMAGE_MODEL, { kind: 'zero-images' });
      const result = await generate(provider, image());
      expect(result.images).toEqual([]);
      expect(result.generationId).toBe(upstream.requests[0].generationId);
    });

    it('sends no preview even when previews are asked', async () => {
      const events: ImageEvent[] = [];
      for await (const event of provider.generateImage(image({ partialImages: 3 }))) {
        events.push(event);
      }
      expect(events.map((event) => event.type)).toEqual(['result']);
    });

    it('maps a 200 HTML page or JSON that is not a completion to malformed, never zero images', async () => {
      upstream.script(IMAGE_MODEL, { kind: 'html-200' }, { kind: 'wrong-shape' });
      await expect(generate(provider, image())).rejects.toMatchObject({ kind: 'malformed' });
      await expect(generate(provider, image())).rejects.toMatchObject({ kind: 'malformed' });
    });

    it('maps a non-2xx answer to a status error', async () => {
      upstream.script(IMAGE_MODEL, { kind: 'status', status: 502, code: 'no_provider' });
      await expect(generate(provider, image())).rejects.toMatchObject({
        kind: 'status',
        status: 502,
        code: 'no_provider',
      });
    });

    it('maps a 200 error body to a stream error', async () => {
      upstream.script(IMAGE_MODEL, { kind: 'error-chunk', afterChunks: 0, code: 'moderation' });
      await expect(generate(provider, image())).rejects.toMatchObject({
        kind: 'stream',
        code: 'moderation',
      });
    });

    it('closes the upstream socket within 100 ms of an abort and throws aborted', async () => {
      upstream.script(IMAGE_MODEL, { kind: 'image', delayMs: 5000 });
      const controller = new AbortController();
      const received = new Promise<void>((resolve) => {
        const off = upstream.onRequest(() => {
          off();
          resolve();
        });
      });
      const pending = generate(provider, image({ signal: controller.signal }));
      await received;
      const abortedAt = performance.now();
      controller.abort();
      await expect(pending).rejects.toMatchObject({ kind: 'aborted' });
      expect((await upstream.requests[0].closed) - abortedAt).toBeLessThan(100);
    });
  });
});
