import { inflateSync } from 'node:zlib';
import { DEMO_FLAKY_IMAGE_MODEL, DemoProvider } from './demo.provider.js';
import type { AspectRatio, ImageEvent, ImageRequest } from './image-provider.js';
import { ProviderError, type ChatMessage, type ChatRequest } from './llm-provider.js';
import { collect, iterate, textOf } from '../../test/harness/provider-calls.js';

const signal = (): AbortSignal => new AbortController().signal;

function pngSize(dataUrl: string): { width: number; height: number } {
  const prefix = 'data:image/png;base64,';
  expect(dataUrl.startsWith(prefix)).toBe(true);
  const png = Buffer.from(dataUrl.slice(prefix.length), 'base64');
  expect([...png.subarray(0, 8)]).toEqual([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  expect(png.subarray(12, 16).toString('latin1')).toBe('IHDR');
  const width = png.readUInt32BE(16);
  const height = png.readUInt32BE(20);
  // The IDAT must inflate to exactly height rows of (1 filter byte + RGB pixels).
  const idatLength = png.readUInt32BE(33);
  expect(png.subarray(37, 41).toString('latin1')).toBe('IDAT');
  expect(inflateSync(png.subarray(41, 41 + idatLength)).length).toBe((width * 3 + 1) * height);
  return { width, height };
}

async function events(provider: DemoProvider, request: ImageRequest): Promise<ImageEvent[]> {
  const all: ImageEvent[] = [];
  for await (const event of provider.generateImage(request)) all.push(event);
  return all;
}

async function generate(
  provider: DemoProvider,
  request: ImageRequest,
): Promise<Extract<ImageEvent, { type: 'result' }>> {
  const all = await events(provider, request);
  const last = all.at(-1);
  if (last?.type !== 'result' || all.length !== 1) throw new Error('expected one result only');
  return last;
}

/** Mean absolute difference per channel between two same-size PNG data URLs. */
function difference(a: string, b: string): number {
  const pixels = (url: string): Buffer => {
    const png = Buffer.from(url.slice('data:image/png;base64,'.length), 'base64');
    const idatLength = png.readUInt32BE(33);
    return inflateSync(png.subarray(41, 41 + idatLength));
  };
  const pa = pixels(a);
  const pb = pixels(b);
  let sum = 0;
  for (let i = 0; i < pa.length; i++) sum += Math.abs(pa[i] - pb[i]);
  return sum / pa.length;
}

function imageRequest(overrides: Partial<ImageRequest> = {}): ImageRequest {
  return {
    model: 'demo/painter',
    prompt: 'a lighthouse at dusk',
    aspectRatio: null,
    referenceImageUrl: null,
    partialImages: 0,
    signal: signal(),
    ...overrides,
  };
}

describe('DemoProvider', () => {
  const provider = new DemoProvider({ tokenDelayMs: 0, imageDelayMs: 0 });
  const english: ChatMessage[] = [
    { role: 'system', content: 'You are helpful.' },
    { role: 'user', content: 'How do tides work?' },
  ];
  const chat = (messages: ChatMessage[] = english, abort = signal()): ChatRequest => ({
    model: 'demo/chat',
    messages,
    signal: abort,
  });

  describe('streamChat', () => {
    it('streams a deterministic reply that echoes the topic, then one end chunk', async () => {
      const first = await collect(provider.streamChat(chat()));
      const second = await collect(provider.streamChat(chat()));
      expect(second).toEqual(first);
      expect(first.filter((c) => c.type === 'delta').length).toBeGreaterThan(10);
      expect(textOf(first)).toContain('How do tides work');
      const ends = first.filter((c) => c.type === 'end');
      expect(ends).toHaveLength(1);
      expect(first.at(-1)).toBe(ends[0]);
      const end = ends[0];
      if (end.type !== 'end') throw new Error('unreachable');
      expect(end.generationId).toMatch(/^demo-[0-9a-f]{16}$/);
      expect(end.usage).not.toBeNull();
      const usage = end.usage ?? { prompt_tokens: 0, completion_tokens: 0, total_tokens: 0 };
      expect(usage.prompt_tokens).toBeGreaterThan(0);
      expect(usage.completion_tokens).toBe(first.length - 1);
      expect(usage.total_tokens).toBe(usage.prompt_tokens + usage.completion_tokens);
    });

    it('streams word by word', async () => {
      const chunks = await collect(provider.streamChat(chat()));
      for (const chunk of chunks.slice(1, -1)) {
        if (chunk.type === 'delta') expect(chunk.content).toMatch(/^\s?\S+$/);
      }
    });

    it('answers in Chinese when the user writes Chinese', async () => {
      const chunks = await collect(
        provider.streamChat(chat([{ role: 'user', content: '介绍一下长城' }])),
      );
      const text = textOf(chunks);
      expect(text).toContain('长城');
      expect(text).toMatch(/演示模型/);
    });

    it('gives different ids to different conversations', async () => {
      const other = await collect(
        provider.streamChat(chat([{ role: 'user', content: 'Something else' }])),
      );
      const mine = await collect(provider.streamChat(chat()));
      expect(other.at(-1)).not.toEqual(mine.at(-1));
    });

    it('paces tokens by tokenDelayMs', async () => {
      const slow = new DemoProvider({ tokenDelayMs: 20, imageDelayMs: 0 });
      const iterator = iterate(slow.streamChat(chat()));
      const started = performance.now();
      await iterator.next();
      await iterator.next();
      await iterator.next();
      expect(performance.now() - started).toBeGreaterThanOrEqual(55);
      await iterator.return?.();
    });

    it('stops promptly and throws aborted when the signal aborts mid-stream', async () => {
      const slow = new DemoProvider({ tokenDelayMs: 1000, imageDelayMs: 0 });
      const controller = new AbortController();
      const iterator = iterate(slow.streamChat(chat(english, controller.signal)));
      const pending = iterator.next();
      setTimeout(() => controller.abort(), 10);
      const started = performance.now();
      await expect(pending).rejects.toMatchObject({ name: 'ProviderError', kind: 'aborted' });
      expect(performance.now() - started).toBeLessThan(200);
    });

    it('throws aborted at once for an already aborted signal', async () => {
      const controller = new AbortController();
      controller.abort();
      await expect(
        collect(provider.streamChat(chat(english, controller.signal))),
      ).rejects.toMatchObject({ kind: 'aborted' });
    });
  });

  describe('complete', () => {
    it('turns the subject into a deterministic, detailed image prompt', async () => {
      const messages: ChatMessage[] = [
        { role: 'user', content: 'Please draw me a red fox in the snow.' },
      ];
      const prompt = await provider.complete(chat(messages));
      expect(prompt).toMatch(/^A detailed illustration of red fox in the snow, /);
      expect(await provider.complete(chat(messages))).toBe(prompt);
    });

    it('prefers a "Subject:" line when the composer sends one', async () => {
      const prompt = await provider.complete(
        chat([{ role: 'user', content: 'Conversation: …\nSubject: 一只猫\nWrite a prompt.' }]),
      );
      expect(prompt).toContain('一只猫');
    });

    it('reads the subject from the prompt composer’s "Image request:" line', async () => {
      const content =
        'Conversation so far:\nuser: hi\nassistant: hello\n\nImage request: a red kite';
      const prompt = await provider.complete(chat([{ role: 'user', content }]));
      expect(prompt).toMatch(/^A detailed illustration of a red kite,/);
    });

    it('throws aborted for an aborted signal', async () => {
      const controller = new AbortController();
      controller.abort();
      await expect(provider.complete(chat(english, controller.signal))).rejects.toBeInstanceOf(
        ProviderError,
      );
    });
  });

  describe('generateImage', () => {
    const sizes: [AspectRatio | null, number, number][] = [
      [null, 512, 512],
      ['1:1', 512, 512],
      ['3:4', 384, 512],
      ['4:3', 512, 384],
      ['9:16', 288, 512],
      ['16:9', 512, 288],
    ];

    it.each(sizes)(
      'draws a real PNG for aspect ratio %s (%i×%i)',
      async (aspectRatio, width, height) => {
        const result = await generate(provider, imageRequest({ aspectRatio }));
        expect(result.images).toHaveLength(1);
        expect(pngSize(result.images[0])).toEqual({ width, height });
        expect(result.generationId).toMatch(/^demo-img-[0-9a-f]{16}$/);
      },
    );

    it('is deterministic per prompt and differs between prompts', async () => {
      const a = await generate(provider, imageRequest());
      const b = await generate(provider, imageRequest());
      const c = await generate(provider, imageRequest({ prompt: 'a forest of glass trees' }));
      expect(b).toEqual(a);
      expect(c.images[0]).not.toBe(a.images[0]);
    });

    it('fails demo/flaky-painter with a 503 after the delay', async () => {
      const slow = new DemoProvider({ tokenDelayMs: 0, imageDelayMs: 50 });
      const started = performance.now();
      const error: unknown = await generate(
        slow,
        imageRequest({ model: DEMO_FLAKY_IMAGE_MODEL }),
      ).catch((e: unknown) => e);
      expect(performance.now() - started).toBeGreaterThanOrEqual(45);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({
        kind: 'status',
        status: 503,
        code: 'demo_unavailable',
        message: 'demo/flaky-painter is always unavailable (demo of the fallback chain)',
      });
    });

    it('stops waiting and throws aborted when the signal aborts during the delay', async () => {
      const slow = new DemoProvider({ tokenDelayMs: 0, imageDelayMs: 5000 });
      const controller = new AbortController();
      const pending = generate(slow, imageRequest({ signal: controller.signal }));
      setTimeout(() => controller.abort(), 10);
      const started = performance.now();
      await expect(pending).rejects.toMatchObject({ kind: 'aborted' });
      expect(performance.now() - started).toBeLessThan(200);
    });

    it.each([1, 2, 3])(
      'sends %i coarse-to-fine previews of the final picture, then the result',
      async (partialImages) => {
        const all = await events(provider, imageRequest({ partialImages, aspectRatio: '4:3' }));
        expect(all.map((event) => event.type)).toEqual([
          ...new Array<string>(partialImages).fill('partial'),
          'result',
        ]);
        const result = all.at(-1);
        if (result?.type !== 'result') throw new Error('no result');
        const previews = all.flatMap((event) => (event.type === 'partial' ? [event] : []));
        expect(previews.map((p) => p.partialIndex)).toEqual([0, 1, 2].slice(0, partialImages));
        const final = result.images[0];
        const errors = previews.map((p) => {
          expect(pngSize(p.dataUrl)).toEqual({ width: 512, height: 384 });
          return difference(p.dataUrl, final);
        });
        // Each preview is closer to the final picture than the one before, none is identical.
        for (let i = 0; i < errors.length; i++) {
          expect(errors[i]).toBeGreaterThan(0);
          if (i > 0) expect(errors[i]).toBeLessThan(errors[i - 1]);
        }
      },
    );

    it('paints previews from blocks of the coarse scene (1/8 of the size first)', async () => {
      const [first] = await events(provider, imageRequest({ partialImages: 2 }));
      if (first.type !== 'partial') throw new Error('no preview');
      const png = Buffer.from(first.dataUrl.slice('data:image/png;base64,'.length), 'base64');
      const raw = inflateSync(png.subarray(41, 41 + png.readUInt32BE(33)));
      const stride = 512 * 3 + 1;
      // Row 0 of a 1/8 render enlarged: every run of 8 pixels is one colour.
      const row = raw.subarray(1, stride);
      for (let x = 0; x < 512; x += 8) {
        for (let k = 1; k < 8; k++) {
          expect([...row.subarray((x + k) * 3, (x + k) * 3 + 3)]).toEqual([
            ...row.subarray(x * 3, x * 3 + 3),
          ]);
        }
      }
    });

    it('sends no previews when none are asked', async () => {
      const all = await events(provider, imageRequest({ partialImages: 0 }));
      expect(all.map((event) => event.type)).toEqual(['result']);
    });

    it('paces previews and result evenly over imageDelayMs', async () => {
      const slow = new DemoProvider({ tokenDelayMs: 0, imageDelayMs: 90 });
      const started = performance.now();
      const times: number[] = [];
      for await (const event of slow.generateImage(imageRequest({ partialImages: 2 }))) {
        expect(event).toBeDefined();
        times.push(performance.now() - started);
      }
      expect(times[0]).toBeGreaterThanOrEqual(25);
      expect(times[2]).toBeGreaterThanOrEqual(85);
    });

    it('fails demo/flaky-painter right after its first preview', async () => {
      const seen: ImageEvent[] = [];
      let error: unknown = null;
      try {
        for await (const event of provider.generateImage(
          imageRequest({ model: DEMO_FLAKY_IMAGE_MODEL, partialImages: 3 }),
        )) {
          seen.push(event);
        }
      } catch (caught) {
        error = caught;
      }
      expect(seen.map((event) => event.type)).toEqual(['partial']);
      expect(error).toMatchObject({ kind: 'status', status: 503, code: 'demo_unavailable' });
    });
  });
});
