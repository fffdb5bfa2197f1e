import { performance } from 'node:perf_hooks';
import { type FakeUpstream, startFakeUpstream } from '../../test/harness/fake-upstream.js';
import { loadConfig } from '../config/app-config.js';
import { MetricsService } from '../observability/metrics.service.js';
import type { ChatMessage } from '../provider/llm-provider.js';
import { OpenAiCompatibleProvider } from '../provider/openai-compatible.provider.js';
import { MAX_COMPOSED_PROMPT_CHARS, PromptComposerService } from './prompt-composer.service.js';

const COMPOSER = 'composer/model';

describe('PromptComposerService against the fake upstream', () => {
  let upstream: FakeUpstream;

  beforeAll(async () => {
    upstream = await startFakeUpstream();
  });
  afterEach(() => upstream.reset());
  afterAll(() => upstream.close());

  function composer(env: Record<string, string> = {}): PromptComposerService {
    const config = loadConfig({
      LLM_BASE_URL: upstream.baseUrl,
      LLM_API_KEY: 'k',
      IMAGE_COMPOSE_MODEL: COMPOSER,
      IMAGE_ATTEMPT_TIMEOUT_MS: '5000',
      ...env,
    });
    return new PromptComposerService(
      config,
      new OpenAiCompatibleProvider({ baseUrl: upstream.baseUrl, apiKey: 'k' }),
      new MetricsService(config),
    );
  }

  const input = { subject: 'the same, but at night', context: [] };

  it('is off without a compose model: null and no upstream call', async () => {
    await expect(composer({ IMAGE_COMPOSE_MODEL: 'off' }).compose(input)).resolves.toBeNull();
    expect(upstream.requests).toHaveLength(0);
  });

  it('sends one completion with the instruction, the recent conversation and the subject', async () => {
    upstream.script(COMPOSER, { kind: 'complete', content: '  A lighthouse at night.\n' });
    const context: ChatMessage[] = [
      { role: 'system', content: 'SESSION SYSTEM PROMPT' },
      ...Array.from({ length: 8 }, (_, i): ChatMessage => ({
        role: i % 2 === 0 ? 'user' : 'assistant',
        content: `message ${i}`,
      })),
    ];

    await expect(composer().compose({ ...input, context })).resolves.toBe('A lighthouse at night.');

    expect(upstream.requests).toHaveLength(1);
    const [sent] = upstream.requests;
    expect(sent).toEqual(expect.objectContaining({ type: 'completion', model: COMPOSER }));
    const messages = sent.body['messages'] as ChatMessage[];
    expect(messages.map((m) => m.role)).toEqual(['system', 'user']);
    expect(messages[0].content).toMatch(/prompt only/i);
    const text = messages[1].content;
    expect(text).toContain('the same, but at night');
    expect(text).not.toContain('SESSION SYSTEM PROMPT');
    expect(text).not.toContain('message 1');
    for (let i = 2; i < 8; i++) expect(text).toContain(`message ${i}`);
  });

  it(`caps the prompt at ${MAX_COMPOSED_PROMPT_CHARS} characters`, async () => {
    upstream.script(COMPOSER, { kind: 'complete', content: `\n${'x'.repeat(2500)}` });
    await expect(composer().compose(input)).resolves.toBe('x'.repeat(MAX_COMPOSED_PROMPT_CHARS));
  });

  it.each([
    ['a blank answer', { kind: 'complete', content: '  \n ' }],
    ['a 500', { kind: 'status', status: 500 }],
    ['a cut connection', { kind: 'cut', afterChunks: 0 }],
  ] as const)('answers null on %s', async (_name, step) => {
    upstream.script(COMPOSER, step);
    await expect(composer().compose(input)).resolves.toBeNull();
  });

  it('gives up after IMAGE_ATTEMPT_TIMEOUT_MS and closes the call', async () => {
    upstream.script(COMPOSER, { kind: 'stall' });
    const started = performance.now();
    await expect(composer({ IMAGE_ATTEMPT_TIMEOUT_MS: '200' }).compose(input)).resolves.toBeNull();
    expect(performance.now() - started).toBeLessThan(1000);
    await upstream.requests[0].closed;
  });

  it('rejects with the abort reason and closes the call when the signal aborts', async () => {
    upstream.script(COMPOSER, { kind: 'stall' });
    const controller = new AbortController();
    const reason = new Error('gone');
    let abortedAt = 0;
    const off = upstream.onRequest(() => {
      abortedAt = performance.now();
      controller.abort(reason);
    });

    await expect(composer().compose(input, controller.signal)).rejects.toBe(reason);
    off();
    expect((await upstream.requests[0].closed) - abortedAt).toBeLessThan(100);
  });
});
