import { Observable } from 'rxjs';
import type { LoggedFrame } from './frame-log.js';
import type { Frame } from './frames.js';

/**
 * One SSE event as it goes on the wire, whole: `id:` + `data:` (a frame's JSON, always one line)
 * + the blank line, or a `: ping` comment. Written with one `res.write` each (sse-response.ts).
 */
export type SseEvent = string;

export const PING: SseEvent = ': ping\n\n';

export function sseEvent(id: number, json: string): SseEvent {
  return `id: ${id}\ndata: ${json}\n\n`;
}

/** Numbers frames `id: 1, 2, …` (per subscription) and interleaves `: ping` comments until the frames end. */
export function toSse(heartbeatMs: number) {
  return (frames$: Observable<Frame>): Observable<SseEvent> =>
    events(frames$, heartbeatMs, (frame, index) => sseEvent(index, JSON.stringify(frame)));
}

/** A frame log's frames as they were first numbered and serialised, with `: ping` comments. */
export function loggedToSse(heartbeatMs: number) {
  return (frames$: Observable<LoggedFrame>): Observable<SseEvent> =>
    events(frames$, heartbeatMs, (frame) => sseEvent(frame.id, frame.json));
}

/**
 * `frames$` formatted, with a `: ping` every `heartbeatMs` until it ends: one subscriber per
 * stream where `map` + `connect`/`merge`/`interval`/`takeUntil` took eight (heap per open stream).
 */
function events<T>(
  frames$: Observable<T>,
  heartbeatMs: number,
  format: (frame: T, index: number) => SseEvent,
): Observable<SseEvent> {
  return new Observable<SseEvent>((subscriber) => {
    let index = 0;
    const heartbeat = setInterval(() => subscriber.next(PING), heartbeatMs);
    // Ending either way runs the subscriber's teardown: the timer stops with the frames.
    subscriber.add(() => clearInterval(heartbeat));
    subscriber.add(
      frames$.subscribe({
        next: (frame) => subscriber.next(format(frame, ++index)),
        error: (error: unknown) => subscriber.error(error),
        complete: () => subscriber.complete(),
      }),
    );
  });
}
