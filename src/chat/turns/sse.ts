import {
  connect,
  endWith,
  ignoreElements,
  interval,
  map,
  merge,
  type Observable,
  takeUntil,
} from 'rxjs';
import { type Frame, PING, type SseMessage } from './frames.js';

/** Numbers frames `id: 1, 2, …` and interleaves `: ping` comments until the frames end. */
export function toSse(heartbeatMs: number) {
  return (frames$: Observable<Frame>): Observable<SseMessage> =>
    frames$.pipe(
      map((data, index): SseMessage => ({ id: String(index + 1), data })),
      connect((messages$) =>
        merge(
          messages$,
          interval(heartbeatMs).pipe(
            map(() => PING),
            takeUntil(messages$.pipe(ignoreElements(), endWith(null))),
          ),
        ),
      ),
    );
}
