import { Observable } from 'rxjs';

/**
 * An Observable over an async producer that owns an AbortController. The producer emits through
 * `emit` and settles its promise to complete (or fail); a subscriber that leaves before then
 * aborts the signal, so whatever HTTP call the producer has in flight closes at once.
 */
export function fromAbortable<T>(
  produce: (emit: (value: T) => void, signal: AbortSignal) => Promise<void>,
  abortReason?: () => unknown,
): Observable<T> {
  return new Observable<T>((subscriber) => {
    const controller = new AbortController();
    let settled = false;
    produce((value) => subscriber.next(value), controller.signal).then(
      () => {
        settled = true;
        subscriber.complete();
      },
      (error: unknown) => {
        settled = true;
        subscriber.error(error);
      },
    );
    // Only a consumer that leaves early has a call to abort (an abort builds a DOMException).
    return () => {
      if (!settled) controller.abort(abortReason?.());
    };
  });
}
