import { performance } from 'node:perf_hooks';
import { firstValueFrom, lastValueFrom, tap, toArray } from 'rxjs';
import {
  FAKE_DEFAULT_COMPLETION,
  type FakeUpstream,
  type RecordedRequest,
  startFakeUpstream,
} from '../../test/harness/fake-upstream.js';
import { loadConfig } from '../config/app-config.js';
import { MetricsService } from '../observability/metrics.service.js';
import { OpenAiCompatibleProvider } from '../provider/openai-compatible.provider.js';
import { ImageGenService, planAttempts } from './image-gen.service.js';
import type {
  AttemptStart,
  ImageGenEvent,
  ImageGenRequest,
  ImageGenResult,
} from './image-gen.types.js';
import { PromptComposerService } from './prompt-composer.service.js';

const COMPOSER = 'composer/model';

/** Runs the chain to its end: the attempts as announced (into `starts`), then the result. */
async function generate(
  service: ImageGenService,
  req: ImageGenRequest,
  onAttempt: (attempt: AttemptStart) => void = () => undefined,
): Promise<ImageGenResult> {
  let result: ImageGenResult | null = null;
  // Announced attempts are seen as they happen (before their HTTP call), not after the chain.
  await lastValueFrom(
    service.generate$(req).pipe(
      tap((event) => {
        if (event.type === 'done') result = event.result;
        else if (event.type === 'attempt')
          onAttempt({
            model: event.model,
            variant: event.variant,
            index: event.index,
            total: event.total,
          });
      }),
    ),
  );
  if (!result) throw new Error('generate$ completed without a done event');
  return result;
}

function request(overrides: Partial<ImageGenRequest> = {}): ImageGenRequest {
  return {
    subject: 'a red fox in the snow',
    context: [],
    model: null,
    aspectRatio: null,
    referenceImageUrl: null,
    partialImages: 0,
    ...overrides,
  };
}

describe('planAttempts', () => {
  const subject = 'a fox';
  const shape = (models: string[], composedPrompt: string | null, model: string | null = null) =>
    planAttempts({ model, models, subject, composedPrompt }).map((s) => [
      s.model,
      s.variant,
      s.index,
      s.total,
    ]);

  it.each([1, 2, 3])('plans composed then original for each of %i models', (n) => {
    const models = ['a', 'b', 'c'].slice(0, n);
    expect(shape(models, 'a detailed fox')).toEqual(
      models.flatMap((m, i) => [
        [m, 'composed', 2 * i + 1, 2 * n],
        [m, 'original', 2 * i + 2, 2 * n],
      ]),
    );
  });

  it.each([1, 2, 3])('plans one single attempt for each of %i models without a prompt', (n) => {
    const models = ['a', 'b', 'c'].slice(0, n);
    expect(shape(models, null)).toEqual(models.map((m, i) => [m, 'single', i + 1, n]));
  });

  it('treats a composed prompt equal to the subject (or blank) as no composed prompt', () => {
    expect(shape(['a', 'b'], ` ${subject} `)).toEqual([
      ['a', 'single', 1, 2],
      ['b', 'single', 2, 2],
    ]);
    expect(shape(['a'], '   ')).toEqual([['a', 'single', 1, 1]]);
  });

  it('puts the requested model first and does not repeat it', () => {
    expect(shape(['a', 'b'], null, 'b')).toEqual([
      ['b', 'single', 1, 2],
      ['a', 'single', 2, 2],
    ]);
    expect(shape(['a'], null, 'x')).toEqual([
      ['x', 'single', 1, 2],
      ['a', 'single', 2, 2],
    ]);
  });

  it('sends the composed prompt for composed and the subject for original', () => {
    const plan = planAttempts({ model: null, models: ['a'], subject, composedPrompt: 'detailed' });
    expect(plan.map((s) => s.prompt)).toEqual(['detailed', subject]);
  });

  it('is empty without candidates', () => {
    expect(planAttempts({ model: null, models: [], subject, composedPrompt: 'x' })).toEqual([]);
  });
});

describe('ImageGenService against the fake upstream', () => {
  let upstream: FakeUpstream;

  beforeAll(async () => {
    upstream = await startFakeUpstream();
  });
  afterEach(() => upstream.reset());
  afterAll(() => upstream.close());

  function service(env: Record<string, string> = {}): ImageGenService {
    const config = loadConfig({
      LLM_BASE_URL: upstream.baseUrl,
      LLM_API_KEY: 'k',
      IMAGE_MODELS: 'a,b',
      IMAGE_COMPOSE_MODEL: 'off',
      IMAGE_ATTEMPT_TIMEOUT_MS: '5000',
      ...env,
    });
    const provider = new OpenAiCompatibleProvider({ baseUrl: upstream.baseUrl, apiKey: 'k' });
    const metrics = new MetricsService(config);
    return new ImageGenService(
      config,
      provider,
      new PromptComposerService(config, provider, metrics),
      metrics,
    );
  }

  const imageRequests = (): RecordedRequest[] =>
    upstream.requests.filter((r) => r.type === 'image');

  /** Waits for the first upstream request of `type`. */
  function nextRequest(type: RecordedRequest['type']): Promise<RecordedRequest> {
    return new Promise((resolve) => {
      const off = upstream.onRequest((r) => {
        if (r.type !== type) return;
        off();
        resolve(r);
      });
    });
  }

  it('answers config_error with no attempts and no upstream call when the chain is empty', async () => {
    const result = await generate(
      service({ IMAGE_MODELS: '', IMAGE_COMPOSE_MODEL: COMPOSER }),
      request(),
    );
    expect(result).toEqual(
      expect.objectContaining({ ok: false, reason: 'config_error', attempts: [] }),
    );
    expect(upstream.requests).toHaveLength(0);
  });

  it('composes, then wins on the first attempt with the composed prompt', async () => {
    const starts: AttemptStart[] = [];
    const result = await generate(
      service({ IMAGE_COMPOSE_MODEL: COMPOSER }),
      request({
        context: [{ role: 'user', content: 'I love foxes' }],
        aspectRatio: '16:9',
        referenceImageUrl: 'https://example.com/ref.png',
      }),
      (attempt) => starts.push(attempt),
    );

    expect(starts).toEqual([{ model: 'a', variant: 'composed', index: 1, total: 4 }]);
    if (!result.ok) throw new Error(result.message);
    expect(result.image).toEqual(
      expect.objectContaining({
        mime: 'image/png',
        width: 64,
        height: 64,
        model: 'a',
        prompt: FAKE_DEFAULT_COMPLETION,
        generationId: imageRequests()[0].generationId,
      }),
    );
    expect(result.image.bytes.subarray(1, 4).toString('latin1')).toBe('PNG');
    expect(result.attempts).toEqual([
      { model: 'a', variant: 'composed', outcome: 'ok', ms: expect.any(Number) },
    ]);
    const [composing, drawing] = upstream.requests;
    expect(composing).toEqual(expect.objectContaining({ type: 'completion', model: COMPOSER }));
    expect(JSON.stringify(composing.body)).toContain('I love foxes');
    expect(drawing.body).toEqual(
      expect.objectContaining({
        model: 'a',
        modalities: ['image', 'text'],
        image_config: { aspect_ratio: '16:9' },
      }),
    );
    expect(JSON.stringify(drawing.body)).toContain('https://example.com/ref.png');
    expect(JSON.stringify(drawing.body)).toContain(FAKE_DEFAULT_COMPLETION);
  });

  it('fires onAttempt total times, each before its HTTP request, and records every 500', async () => {
    for (const model of ['a', 'b', 'c']) {
      upstream.script(model, { kind: 'status', status: 500, code: 'upstream_down' });
    }
    const starts: { attempt: AttemptStart; at: number }[] = [];
    const seenBeforeRequest: number[] = [];
    const off = upstream.onRequest((r) => {
      if (r.type === 'image') seenBeforeRequest.push(starts.length);
    });

    const result = await generate(
      service({ IMAGE_MODELS: 'a,b,c', IMAGE_COMPOSE_MODEL: COMPOSER }),
      request(),
      (attempt) => starts.push({ attempt, at: performance.now() }),
    ).finally(off);

    expect(starts.map((s) => s.attempt)).toEqual(
      ['a', 'b', 'c'].flatMap((model, i) => [
        { model, variant: 'composed', index: 2 * i + 1, total: 6 },
        { model, variant: 'original', index: 2 * i + 2, total: 6 },
      ]),
    );
    // The n-th image request arrives after exactly n onAttempt calls.
    expect(seenBeforeRequest).toEqual([1, 2, 3, 4, 5, 6]);
    imageRequests().forEach((r, i) => expect(starts[i].at).toBeLessThan(r.receivedAt));
    expect(imageRequests().map((r) => r.model)).toEqual(['a', 'a', 'b', 'b', 'c', 'c']);
    expect(result).toEqual({
      ok: false,
      reason: 'chain_exhausted',
      message: expect.any(String),
      attempts: starts.map(({ attempt }) => ({
        model: attempt.model,
        variant: attempt.variant,
        outcome: 'status',
        status: 500,
        error_code: 'upstream_down',
        ms: expect.any(Number),
      })),
    });
  });

  it('moves on past zero images, garbage and a cut connection to a JPEG', async () => {
    upstream.script('a', { kind: 'zero-images' });
    upstream.script('b', { kind: 'garbage' });
    upstream.script('c', { kind: 'cut', afterChunks: 0 });
    upstream.script('d', { kind: 'image', mime: 'image/jpeg', width: 40, height: 30 });

    const result = await generate(service({ IMAGE_MODELS: 'a,b,c,d' }), request());

    if (!result.ok) throw new Error(result.message);
    expect(result.attempts.map((a) => [a.model, a.variant, a.outcome])).toEqual([
      ['a', 'single', 'zero_images'],
      ['b', 'single', 'decode'],
      ['c', 'single', 'transport'],
      ['d', 'single', 'ok'],
    ]);
    expect(result.image).toEqual(
      expect.objectContaining({ mime: 'image/jpeg', width: 40, height: 30, model: 'd' }),
    );
    expect(result.image.prompt).toBe(request().subject);
  });

  it('answers zero_images when every attempt drew nothing, chain_exhausted for a mix', async () => {
    upstream.script('a', { kind: 'zero-images' });
    upstream.script('b', { kind: 'zero-images' });
    const allEmpty = await generate(service(), request());
    expect(allEmpty).toEqual(expect.objectContaining({ ok: false, reason: 'zero_images' }));

    upstream.script('b', { kind: 'garbage' });
    const mixed = await generate(service(), request());
    expect(mixed).toEqual(expect.objectContaining({ ok: false, reason: 'chain_exhausted' }));
    expect(mixed.attempts.map((a) => a.outcome)).toEqual(['zero_images', 'decode']);
  });

  it('times an attempt out after IMAGE_ATTEMPT_TIMEOUT_MS, closes its socket and moves on', async () => {
    upstream.script('a', { kind: 'image', delayMs: 60_000 });

    const result = await generate(service({ IMAGE_ATTEMPT_TIMEOUT_MS: '300' }), request());

    if (!result.ok) throw new Error(result.message);
    const [timedOut, ok] = result.attempts;
    expect(timedOut).toEqual({
      model: 'a',
      variant: 'single',
      outcome: 'timeout',
      ms: expect.any(Number),
    });
    expect(timedOut.ms).toBeGreaterThanOrEqual(290);
    expect(timedOut.ms).toBeLessThan(1000);
    expect(ok).toEqual(expect.objectContaining({ model: 'b', outcome: 'ok' }));
    await expect(imageRequests()[0].closed).resolves.toEqual(expect.any(Number));
  });

  it('falls back to single attempts when the composer fails or stalls', async () => {
    upstream.script(COMPOSER, { kind: 'status', status: 503 });
    const failed = await generate(service({ IMAGE_COMPOSE_MODEL: COMPOSER }), request());
    expect(failed.attempts).toEqual([expect.objectContaining({ model: 'a', variant: 'single' })]);

    upstream.script(COMPOSER, { kind: 'stall' });
    const started = performance.now();
    const stalled = await generate(
      service({
        IMAGE_COMPOSE_MODEL: COMPOSER,
        IMAGE_ATTEMPT_TIMEOUT_MS: '700',
      }),
      request(),
    );
    expect(performance.now() - started).toBeLessThan(2000);
    expect(stalled.attempts).toEqual([expect.objectContaining({ model: 'a', variant: 'single' })]);
  });

  describe('generate$', () => {
    it('emits one attempt event per attempt, then exactly one done', async () => {
      upstream.script('a', { kind: 'status', status: 502 });

      const events = await firstValueFrom(service().generate$(request()).pipe(toArray()));

      expect(events.map((e) => e.type)).toEqual(['attempt', 'attempt', 'done']);
      expect(events.slice(0, 2)).toEqual([
        { type: 'attempt', model: 'a', variant: 'single', index: 1, total: 2 },
        { type: 'attempt', model: 'b', variant: 'single', index: 2, total: 2 },
      ]);
      const done = events[2] as Extract<ImageGenEvent, { type: 'done' }>;
      expect(done.result.ok).toBe(true);
      expect(done.result.attempts.map((a) => a.outcome)).toEqual(['status', 'ok']);
    });

    it('does nothing until subscribed', async () => {
      service().generate$(request());
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(upstream.requests).toHaveLength(0);
    });

    it.each([
      ['an image attempt', 'image', 'a', { kind: 'image', delayMs: 60_000 }],
      ['the prompt composer', 'completion', COMPOSER, { kind: 'stall' }],
    ] as const)(
      'closes the upstream socket within 100 ms when unsubscribed during %s',
      async (_label, type, model, step) => {
        upstream.script(model, step);
        const events: ImageGenEvent[] = [];
        let failed: unknown = null;
        const subscription = service({ IMAGE_COMPOSE_MODEL: COMPOSER })
          .generate$(request())
          .subscribe({
            next: (event) => events.push(event),
            error: (error: unknown) => (failed = error),
          });

        const inFlight = await nextRequest(type);
        const unsubscribedAt = performance.now();
        subscription.unsubscribe();
        const closedAt = await inFlight.closed;

        expect(closedAt - unsubscribedAt).toBeLessThan(100);
        expect(inFlight.clientAborted).toBe(true);
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(upstream.requests).toHaveLength(type === 'image' ? 2 : 1);
        expect(events.every((e) => e.type === 'attempt')).toBe(true);
        expect(failed).toBeNull();
      },
    );
  });
});
