import { Inject, Injectable } from '@nestjs/common';
import { ApiError } from '../../common/api-error.js';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';

/** Gives the slot back; calling it again does nothing. */
export type StartSlot = () => void;

interface Waiter {
  readonly admit: () => void;
}

/**
 * At most TURN_START_CONCURRENCY turns of this instance are in their start (the checks and the
 * first rows, before the stream) at once; the others wait in arrival order. Without it, a burst
 * of arrivals (every client of a gateway at once) runs all of its starts in the same few passes
 * of the event loop, and a client that leaves meanwhile is noticed only after them (issue 12
 * item 8: abort latency). The limit costs no throughput: the statements of a start go through
 * one database connection queue anyway.
 *
 * A freed slot passes to the next waiter on a later pass of the event loop, so that I/O
 * (clients leaving, upstream chunks) is served between starts. A waiter gives up at its
 * deadline (503 `unavailable`, as any turn that cannot start in time) or when its client leaves.
 */
@Injectable()
export class TurnAdmissionService {
  private free: number;
  /** Insertion order is arrival order. */
  private readonly waiting = new Set<Waiter>();

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.free = config.turnStartConcurrency;
  }

  /** Turns waiting for a slot now. */
  get queued(): number {
    return this.waiting.size;
  }

  /**
   * A slot, once one is free; rejects with `cannotStartInTime` at `deadlineAt` (epoch ms), or
   * with the signal's reason when it aborts first.
   */
  enter(deadlineAt: number, signal: AbortSignal): Promise<StartSlot> {
    if (signal.aborted) return Promise.reject(signal.reason as Error);
    if (this.free > 0 && this.waiting.size === 0) {
      this.free -= 1;
      return Promise.resolve(this.slot());
    }
    return new Promise<StartSlot>((resolve, reject) => {
      const leave = (error: unknown): void => {
        this.waiting.delete(waiter);
        stop();
        reject(error);
      };
      const onAbort = (): void => leave(signal.reason);
      const timer = setTimeout(
        () => leave(ApiError.cannotStartInTime()),
        Math.max(0, deadlineAt - Date.now()),
      );
      const stop = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort);
      };
      const waiter: Waiter = {
        admit: () => {
          stop();
          resolve(this.slot());
        },
      };
      signal.addEventListener('abort', onAbort, { once: true });
      this.waiting.add(waiter);
    });
  }

  private slot(): StartSlot {
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      setImmediate(() => this.handOver());
    };
  }

  /** The freed slot goes to the longest waiter still waiting, or back to the pool. */
  private handOver(): void {
    const next = this.waiting.values().next();
    if (next.done === true) {
      this.free += 1;
      return;
    }
    this.waiting.delete(next.value);
    next.value.admit();
  }
}
