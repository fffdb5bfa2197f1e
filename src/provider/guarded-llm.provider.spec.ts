import { startFakeUpstream, type FakeUpstream } from '../../test/harness/fake-upstream.js';
import { collectUntilError, textOf } from '../../test/harness/provider-calls.js';
import { hasUnstorableText } from '../common/text.js';
import { GuardedLlmProvider } from './guarded-llm.provider.js';
import { ProviderError, type ChatRequest } from './llm-provider.js';
import { OpenAiCompatibleProvider } from './openai-compatible.provider.js';

const MODEL = 'vendor/chat-model';
const FIRST_TOKEN_MS = 150;
const IDLE_MS = 120;

describe('GuardedLlmProvider over the openai-compatible provider and the fake upstream', () => {
  let upstream: FakeUpstream;
  let provider: GuardedLlmProvider;

  const chat = (overrides: Partial<ChatRequest> = {}): ChatRequest => ({
    model: MODEL,
    messages: [{ role: 'user', content: 'Hi' }],
    signal: new AbortController().signal,
    ...overrides,
  });

  beforeAll(async () => {
    upstream = await startFakeUpstream();
    provider = new GuardedLlmProvider(
      new OpenAiCompatibleProvider({ baseUrl: upstream.baseUrl, apiKey: 'k', maxTokens: 64 }),
      { firstTokenTimeoutMs: FIRST_TOKEN_MS, idleTimeoutMs: IDLE_MS },
    );
  });

  afterAll(async () => {
    await upstream.close();
  });

  beforeEach(() => upstream.reset());

  describe('time limits', () => {
    it('passes a stream whose chunks come within the idle limit through unchanged', async () => {
      // A generous first-token limit: the suite's first request also pays for connecting.
      const patient = new GuardedLlmProvider(
        new OpenAiCompatibleProvider({ baseUrl: upstream.baseUrl, apiKey: 'k', maxTokens: 64 }),
        { firstTokenTimeoutMs: 5000, idleTimeoutMs: IDLE_MS },
      );
      upstream.script(MODEL, { kind: 'stream', chunks: ['a', 'b', 'c'], delayMs: IDLE_MS / 3 });
      const { chunks, error } = await collectUntilError(patient.streamChat(chat()));
      expect(error).toBeNull();
      expect(chunks.map((c) => c.type)).toEqual(['delta', 'delta', 'delta', 'end']);
      expect(upstream.requests[0].body['max_tokens']).toBe(64);
    });

    it('fails as timeout and closes the socket when no first token comes (processing comments do not count)', async () => {
      upstream.script(MODEL, { kind: 'hang', commentEveryMs: 20 });
      const started = performance.now();
      const { chunks, error } = await collectUntilError(provider.streamChat(chat()));
      const failedAt = performance.now();
      expect(chunks).toEqual([]);
      expect(error).toBeInstanceOf(ProviderError);
      expect(error).toMatchObject({ kind: 'timeout' });
      expect((error as Error).message).toContain('CHAT_FIRST_TOKEN_TIMEOUT_MS');
      expect(failedAt - started).toBeGreaterThanOrEqual(FIRST_TOKEN_MS - 5);
      expect((await upstream.requests[0].socketClosed) - failedAt).toBeLessThan(100);
      expect(upstream.requests[0].clientAborted).toBe(true);
    });

    it('fails as timeout and closes the socket when the stream stalls mid-reply', async () => {
      upstream.script(MODEL, { kind: 'stall', afterChunks: 2 });
      const { chunks, error } = await collectUntilError(provider.streamChat(chat()));
      const failedAt = performance.now();
      expect(textOf(chunks)).toBe('Hello from');
      expect(error).toMatchObject({ kind: 'timeout' });
      expect((error as Error).message).toContain('CHAT_IDLE_TIMEOUT_MS');
      expect((await upstream.requests[0].socketClosed) - failedAt).toBeLessThan(100);
    });

    it('reports the caller’s abort as aborted, not timeout', async () => {
      upstream.script(MODEL, { kind: 'hang', commentEveryMs: 20 });
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 30);
      const { error } = await collectUntilError(
        provider.streamChat(chat({ signal: controller.signal })),
      );
      expect(error).toMatchObject({ kind: 'aborted' });
    });

    it('closes the socket of an endless stream when the consumer stops', async () => {
      upstream.script(MODEL, { kind: 'endless' });
      let received = 0;
      for await (const chunk of provider.streamChat(chat())) {
        expect(chunk.type).toBe('delta');
        if (++received === 50) break;
      }
      // The endless writer shares this process, so only "it closes" is asserted, not how fast.
      await expect(upstream.requests[0].socketClosed).resolves.toEqual(expect.any(Number));
      expect(upstream.requests[0].clientAborted).toBe(true);
    });

    it('bounds a composer call by the first-token limit and closes its socket', async () => {
      upstream.script(MODEL, { kind: 'stall' });
      const error: unknown = await provider.complete(chat()).catch((e: unknown) => e);
      const failedAt = performance.now();
      expect(error).toMatchObject({ kind: 'timeout' });
      expect((await upstream.requests[0].socketClosed) - failedAt).toBeLessThan(100);
      expect(upstream.requests[0].body['max_tokens']).toBe(64);
    });
  });

  describe('sanitising', () => {
    it('removes NULs and replaces lone surrogates in deltas, keeping pairs split across chunks', async () => {
      upstream.script(MODEL, {
        kind: 'stream',
        chunks: ['a\u0000b', 'c\uD83D', '\uDE00d', 'e\uDE00', 'f\uD83D'],
      });
      const { chunks, error } = await collectUntilError(provider.streamChat(chat()));
      expect(error).toBeNull();
      expect(textOf(chunks)).toBe('abc\uD83D\uDE00de\uFFFDf\uFFFD');
      expect(chunks.at(-1)?.type).toBe('end');
      for (const chunk of chunks) {
        if (chunk.type === 'delta') expect(hasUnstorableText(chunk.content)).toBe(false);
      }
    });

    it('sanitises the composer’s answer', async () => {
      upstream.script(MODEL, { kind: 'complete', content: 'fox\u0000 in \uDE00 snow' });
      await expect(provider.complete(chat())).resolves.toBe('fox in \uFFFD snow');
    });
  });
});
