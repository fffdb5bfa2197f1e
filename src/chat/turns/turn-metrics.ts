import { defer, finalize, type MonoTypeOperatorFunction, tap } from 'rxjs';
import type { SseMessage } from './frames.js';
import type { MetricsService, TurnOutcome } from '../../observability/metrics.service.js';

/**
 * Counts a turn stream once it ends: `final` → final, `error` → error, anything else (the client
 * left first) → cancelled. The action comes from the `meta`/`final` frames, `unknown` before.
 */
export function countTurn(metrics: MetricsService): MonoTypeOperatorFunction<SseMessage> {
  return (source) =>
    defer(() => {
      let action = 'unknown';
      let outcome: TurnOutcome = 'cancelled';
      return source.pipe(
        tap({
          next: (message) => {
            if (!('data' in message)) return;
            const frame = message.data;
            if (frame.type === 'meta' || frame.type === 'final') action = frame.action_type;
            if (frame.type === 'final' || frame.type === 'error') outcome = frame.type;
          },
          error: () => (outcome = 'error'),
        }),
        finalize(() => metrics.turnEnded(action, outcome)),
      );
    });
}
