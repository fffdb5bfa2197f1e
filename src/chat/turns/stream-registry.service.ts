import { Injectable } from '@nestjs/common';
import { BehaviorSubject, filter, firstValueFrom, map } from 'rxjs';
import { MetricsService } from '../../observability/metrics.service.js';

/**
 * Open turn streams of this process, per user. A slot is taken before any database write, so
 * the MAX_STREAMS_PER_USER check and the reservation are one synchronous step (no race). A slot
 * is held until the turn's last write, so "idle" means nothing is left to store.
 */
@Injectable()
export class StreamRegistryService {
  private readonly perUser = new Map<string, number>();
  private readonly open$ = new BehaviorSubject(0);

  constructor(metrics: MetricsService) {
    metrics.trackOpenStreams(() => this.open);
  }

  get open(): number {
    return this.open$.value;
  }

  /** Takes a slot, or returns null when the user already has `max` open streams. */
  acquire(userId: string, max: number): (() => void) | null {
    const current = this.perUser.get(userId) ?? 0;
    if (current >= max) return null;
    this.perUser.set(userId, current + 1);
    this.open$.next(this.open$.value + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.perUser.get(userId) ?? 1) - 1;
      if (left <= 0) this.perUser.delete(userId);
      else this.perUser.set(userId, left);
      this.open$.next(this.open$.value - 1);
    };
  }

  /** Resolves once no stream is open. */
  whenIdle(): Promise<void> {
    return firstValueFrom(
      this.open$.pipe(
        filter((open) => open === 0),
        map(() => undefined),
      ),
    );
  }
}
