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
import type { LoggedFrame } from './frame-log.js';
import { type Frame, PING, type SseMessage } from './frames.js';

/** Numbers frames `id: 1, 2, …` and interleaves `: ping` comments until the frames end. */
export function toSse(heartbeatMs: number) {
  return (frames$: Observable<Frame>): Observable<SseMessage> =>
    frames$.pipe(
      map((data, index): SseMessage => ({ id: String(index + 1), data })),
      withPings(heartbeatMs),
    );
}

/** A frame log's frames as they were first numbered and serialised, with `: ping` comments. */
export function loggedToSse(heartbeatMs: number) {
  return (frames$: Observable<LoggedFrame>): Observable<SseMessage> =>
    frames$.pipe(
      map((frame): SseMessage => ({ id: String(frame.id), data: frame.json })),
      withPings(heartbeatMs),
    );
}

function withPings(heartbeatMs: number) {
  return (messages: Observable<SseMessage>): Observable<SseMessage> =>
    messages.pipe(
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
