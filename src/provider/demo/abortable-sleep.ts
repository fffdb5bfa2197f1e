import { ProviderError } from '../llm-provider.js';

export function abortedError(): ProviderError {
  return new ProviderError('aborted', 'The request was aborted');
}

/**
 * Waits `ms` (0 → one macrotask, so a zero-delay demo still yields to the event loop) and
 * rejects with an 'aborted' ProviderError as soon as `signal` aborts, clearing its timer.
 */
export function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(abortedError());
      return;
    }
    let cancel: () => void = () => undefined;
    const onAbort = (): void => {
      cancel();
      reject(abortedError());
    };
    const done = (): void => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    };
    if (ms > 0) {
      const timer = setTimeout(done, ms);
      cancel = () => clearTimeout(timer);
    } else {
      const immediate = setImmediate(done);
      cancel = () => clearImmediate(immediate);
    }
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
