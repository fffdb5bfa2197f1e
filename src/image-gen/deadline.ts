/** Our own time limit ran out (as opposed to the caller aborting). */
export class DeadlineExceededError extends Error {
  constructor(readonly ms: number) {
    super(`Timed out after ${ms} ms`);
    this.name = 'DeadlineExceededError';
  }
}

/**
 * Runs `task` with its own signal, aborted when `outer` aborts (rejecting with `outer.reason`)
 * or after `ms` (rejecting with {@link DeadlineExceededError}). The returned promise settles at
 * the abort itself, so a task that is slow to honour its signal cannot stretch the deadline.
 */
export function runWithDeadline<T>(
  outer: AbortSignal | undefined,
  ms: number,
  task: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (outer?.aborted) {
      reject(outer.reason);
      return;
    }
    const controller = new AbortController();
    const stop = (reason: unknown): void => {
      cleanup();
      controller.abort(reason);
      reject(reason);
    };
    const onOuterAbort = (): void => stop(outer?.reason);
    const timer = setTimeout(() => stop(new DeadlineExceededError(ms)), ms);
    const cleanup = (): void => {
      clearTimeout(timer);
      outer?.removeEventListener('abort', onOuterAbort);
    };
    outer?.addEventListener('abort', onOuterAbort, { once: true });

    let running: Promise<T>;
    try {
      running = task(controller.signal);
    } catch (error) {
      running = Promise.reject(error);
    }
    running.then(
      (value) => {
        cleanup();
        resolve(value);
      },
      (error: unknown) => {
        cleanup();
        reject(error);
      },
    );
  });
}
