import { TextSanitizer, sanitizeText } from '../common/text.js';
import {
  ProviderError,
  type ChatChunk,
  type ChatRequest,
  type LlmProvider,
} from './llm-provider.js';

export interface ChatTimeLimits {
  /** From the call to the first chunk; for `complete`, to the whole (non-streamed) answer. */
  readonly firstTokenTimeoutMs: number;
  /** Longest gap between two chunks of a stream. */
  readonly idleTimeoutMs: number;
}

/** An AbortController that also aborts when `outer` does; `dispose` unhooks it from `outer`. */
function linkedController(outer: AbortSignal): { controller: AbortController; dispose(): void } {
  const controller = new AbortController();
  const onAbort = (): void => controller.abort(outer.reason);
  if (outer.aborted) onAbort();
  else outer.addEventListener('abort', onAbort, { once: true });
  return { controller, dispose: () => outer.removeEventListener('abort', onAbort) };
}

/**
 * Settles like `promise`, unless `ms` pass first: then `controller` is aborted (closing the
 * upstream call) and the result rejects with a 'timeout' ProviderError. The late settlement of
 * `promise` is absorbed.
 */
function withinTime<T>(
  promise: Promise<T>,
  ms: number,
  controller: AbortController,
  message: () => string,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => {
      const error = new ProviderError('timeout', message());
      reject(error);
      controller.abort(error);
    }, ms);
    promise.then(
      (value) => {
        clearTimeout(timer);
        resolve(value);
      },
      (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      },
    );
  });
}

/**
 * What every chat provider gets on its way out, whatever the vendor: time limits (a hung model
 * becomes a 'timeout' failure, so the caller can fall back) and storable text (NULs removed,
 * lone surrogates replaced with U+FFFD) in every delta and in the composer's answer.
 */
export class GuardedLlmProvider implements LlmProvider {
  constructor(
    private readonly inner: LlmProvider,
    private readonly limits: ChatTimeLimits,
  ) {}

  async *streamChat(request: ChatRequest): AsyncIterable<ChatChunk> {
    const { firstTokenTimeoutMs, idleTimeoutMs } = this.limits;
    const { controller, dispose } = linkedController(request.signal);
    const stream = this.inner.streamChat({ ...request, signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    const sanitizer = new TextSanitizer();
    let received = false;
    let ended = false;
    try {
      for (;;) {
        const next = await withinTime(
          iterator.next(),
          received ? idleTimeoutMs : firstTokenTimeoutMs,
          controller,
          () =>
            received
              ? `${request.model} sent nothing for ${idleTimeoutMs} ms (CHAT_IDLE_TIMEOUT_MS)`
              : `${request.model} sent no first token within ${firstTokenTimeoutMs} ms (CHAT_FIRST_TOKEN_TIMEOUT_MS)`,
        );
        if (next.done) return;
        received = true;
        const chunk = next.value;
        if (chunk.type === 'delta') {
          const content = sanitizer.push(chunk.content);
          if (content !== '') yield { type: 'delta', content };
          continue;
        }
        const rest = sanitizer.flush();
        if (rest !== '') yield { type: 'delta', content: rest };
        ended = true;
        yield chunk;
        return;
      }
    } finally {
      dispose();
      // Leaving early (timeout, error, a consumer that stops): the upstream call goes too.
      if (!ended) controller.abort(new ProviderError('aborted', 'The chat stream was left'));
      void iterator.return?.().catch(() => undefined);
    }
  }

  async complete(request: ChatRequest): Promise<string> {
    const { firstTokenTimeoutMs } = this.limits;
    const { controller, dispose } = linkedController(request.signal);
    try {
      // Non-streamed: the answer is its own first token, so it gets the first-token limit whole.
      const text = await withinTime(
        this.inner.complete({ ...request, signal: controller.signal }),
        firstTokenTimeoutMs,
        controller,
        () =>
          `${request.model} did not answer within ${firstTokenTimeoutMs} ms (CHAT_FIRST_TOKEN_TIMEOUT_MS)`,
      );
      return sanitizeText(text);
    } finally {
      dispose();
    }
  }
}
