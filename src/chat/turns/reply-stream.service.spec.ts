import { lastValueFrom, take, toArray } from 'rxjs';
import { loadConfig } from '../../config/app-config.js';
import { MetricsService } from '../../observability/metrics.service.js';
import {
  type ChatChunk,
  type ChatRequest,
  type LlmProvider,
  ProviderError,
} from '../../provider/llm-provider.js';
import { ReplyStreamService } from './reply-stream.service.js';
import { TurnFailure } from './turn-failure.js';

/**
 * The chat fallback chain against a provider double (the provider itself is tested against the
 * fake upstream): which model answers, what a failure becomes, and that leaving aborts the call.
 */
type Script = (request: ChatRequest) => AsyncIterable<ChatChunk>;

function service(models: string, scripts: Record<string, Script>) {
  const config = loadConfig({ CHAT_MODELS: models });
  const calls: ChatRequest[] = [];
  const provider: LlmProvider = {
    streamChat: (request) => {
      calls.push(request);
      return scripts[request.model](request);
    },
    complete: () => Promise.reject(new Error('not used')),
  };
  return { reply: new ReplyStreamService(provider, config, new MetricsService(config)), calls };
}

const answers = (...pieces: string[]): Script =>
  async function* () {
    for (const content of pieces) yield { type: 'delta', content };
    yield { type: 'end', usage: null, generationId: 'gen' };
  };

const fails = (error: ProviderError, afterPieces: string[] = []): Script =>
  async function* () {
    for (const content of afterPieces) yield { type: 'delta', content };
    throw error;
  };

const context = [{ role: 'user' as const, content: 'hi' }];

describe('ReplyStreamService', () => {
  it('falls back to the next model on a failure before the first token', async () => {
    const { reply, calls } = service('a,b', {
      a: fails(new ProviderError('status', 'down', 503)),
      b: answers('Hi', '!'),
    });
    const events = await lastValueFrom(reply.stream$(context).pipe(toArray()));
    expect(events).toEqual([
      { type: 'start', model: 'b' },
      { type: 'delta', content: 'Hi' },
      { type: 'delta', content: '!' },
      { type: 'end', usage: null, generationId: 'gen' },
    ]);
    expect(calls.map((call) => call.model)).toEqual(['a', 'b']);
  });

  it('a failure after the first token ends the reply as upstream_unavailable (no fallback)', async () => {
    const { reply, calls } = service('a,b', {
      a: fails(new ProviderError('transport', 'cut'), ['par']),
      b: answers('never'),
    });
    const failure = await lastValueFrom(reply.stream$(context)).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(TurnFailure);
    expect(failure).toEqual(expect.objectContaining({ code: 'upstream_unavailable' }));
    expect(calls).toHaveLength(1);
  });

  it('all models answering 429 is rate_limited; any other mix is upstream_unavailable', async () => {
    const limited = service('a,b', {
      a: fails(new ProviderError('status', 'slow down', 429)),
      b: fails(new ProviderError('status', 'slow down', 429)),
    });
    await expect(lastValueFrom(limited.reply.stream$(context))).rejects.toEqual(
      expect.objectContaining({ code: 'rate_limited' }),
    );
    const mixed = service('a,b', {
      a: fails(new ProviderError('status', 'slow down', 429)),
      b: fails(new ProviderError('timeout', 'no first token')),
    });
    await expect(lastValueFrom(mixed.reply.stream$(context))).rejects.toEqual(
      expect.objectContaining({ code: 'upstream_unavailable' }),
    );
  });

  it('an empty reply is a failure of that model', async () => {
    const { reply, calls } = service('a,b', { a: answers(), b: answers('ok') });
    const events = await lastValueFrom(reply.stream$(context).pipe(toArray()));
    expect(events[0]).toEqual({ type: 'start', model: 'b' });
    expect(calls).toHaveLength(2);
  });

  it('aborts the provider call when the subscriber leaves mid-reply', async () => {
    let signal: AbortSignal | undefined;
    const { reply } = service('a', {
      a: async function* (request) {
        signal = request.signal;
        yield { type: 'delta', content: 'first' };
        await new Promise((resolve) => request.signal.addEventListener('abort', resolve));
      },
    });
    await lastValueFrom(reply.stream$(context).pipe(take(2)));
    expect(signal?.aborted).toBe(true);
  });
});
