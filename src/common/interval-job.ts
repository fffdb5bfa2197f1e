import type { BeforeApplicationShutdown, OnApplicationBootstrap } from '@nestjs/common';

/**
 * A named background job: it starts at boot and repeats on timers until shutdown. The timers are
 * unref'd so a job never keeps the process alive; a tick logs its own errors.
 */
export abstract class IntervalJob implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly timers: NodeJS.Timeout[] = [];

  abstract onApplicationBootstrap(): Promise<void> | void;

  /** Runs `tick` every `ms` from now until shutdown. */
  protected every(ms: number, tick: () => Promise<unknown>): void {
    this.timers.push(setInterval(() => void tick(), ms).unref());
  }

  /** False until the first timer is set, so a job can tell its boot run from the repeats. */
  protected get scheduled(): boolean {
    return this.timers.length > 0;
  }

  beforeApplicationShutdown(): void {
    for (const timer of this.timers) clearInterval(timer);
  }
}
