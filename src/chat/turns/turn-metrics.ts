import { type MonoTypeOperatorFunction, Observable } from 'rxjs';
import type { Frame } from './frames.js';
import type { MetricsService, TurnOutcome } from '../../observability/metrics.service.js';

/**
 * Counts a turn once its producer (or a replay) ends: `final` → final, `error` → error, anything
 * else (torn down: every client left) → cancelled. The action comes from the `meta`/`final` frames, `unknown` before.
 */
export function countTurn(metrics: MetricsService): MonoTypeOperatorFunction<Frame> {
  // One subscriber (not defer + tap + finalize): it sees every frame of every open turn.
  return (source) =>
    new Observable<Frame>((subscriber) => {
      let action = 'unknown';
      let outcome: TurnOutcome = 'cancelled';
      subscriber.add(
        source.subscribe({
          next: (frame) => {
            if (frame.type === 'meta' || frame.type === 'final') action = frame.action_type;
            if (frame.type === 'final' || frame.type === 'error') outcome = frame.type;
            subscriber.next(frame);
          },
          error: (error: unknown) => {
            outcome = 'error';
            subscriber.error(error);
          },
          complete: () => subscriber.complete(),
        }),
      );
      // Added after the source: counted once it is torn down, however the turn ended.
      subscriber.add(() => metrics.turnEnded(action, outcome));
    });
}
