import { defer, finalize, type MonoTypeOperatorFunction, tap } from 'rxjs';
import type { Frame } from './frames.js';
import type { MetricsService, TurnOutcome } from '../../observability/metrics.service.js';

/**
 * Counts a turn once its producer (or a replay) ends: `final` → final, `error` → error, anything
 * else (torn down: every client left) → cancelled. The action comes from the `meta`/`final` frames, `unknown` before.
 */
export function countTurn(metrics: MetricsService): MonoTypeOperatorFunction<Frame> {
  return (source) =>
    defer(() => {
      let action = 'unknown';
      let outcome: TurnOutcome = 'cancelled';
      return source.pipe(
        tap({
          next: (frame) => {
            if (frame.type === 'meta' || frame.type === 'final') action = frame.action_type;
            if (frame.type === 'final' || frame.type === 'error') outcome = frame.type;
          },
          error: () => (outcome = 'error'),
        }),
        finalize(() => metrics.turnEnded(action, outcome)),
      );
    });
}
