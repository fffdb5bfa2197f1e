import { Inject, Injectable, Logger } from '@nestjs/common';
import { IntervalJob } from '../common/interval-job.js';
import { ImageStore } from './image-store.js';

/** How often stored bytes are checked against the `images` rows. */
const SWEEP_EVERY_MS = 60 * 60_000;
/**
 * Bytes younger than this are never orphans: they may be between their write and their row's
 * (milliseconds apart; the margin is for a slow database).
 */
export const ORPHAN_GRACE_MS = 10 * 60_000;

/**
 * Removes image bytes whose `images` row is gone: at boot and hourly. Deleting a session removes
 * its bytes at once (SessionsService); this catches the rest: a turn re-run that superseded its
 * replies (rows cascade), a crash between the bytes and the row, a failed removal.
 */
@Injectable()
export class ImageSweepJob extends IntervalJob {
  private readonly logger = new Logger(ImageSweepJob.name);
  private running: Promise<number> | null = null;

  constructor(@Inject(ImageStore) private readonly store: ImageStore) {
    super();
  }

  override onApplicationBootstrap(): void {
    // Not awaited: a large folder must not hold up the boot.
    void this.run();
    this.every(SWEEP_EVERY_MS, () => this.run());
  }

  override async beforeApplicationShutdown(): Promise<void> {
    super.beforeApplicationShutdown();
    await this.running;
  }

  /** One sweep (a sweep already under way is joined); resolves to how many were removed. */
  run(now: number = Date.now()): Promise<number> {
    this.running ??= this.store
      .removeOrphans(new Date(now - ORPHAN_GRACE_MS))
      .then((removed) => {
        if (removed > 0) this.logger.log(`removed ${removed} orphaned image(s)`);
        return removed;
      })
      .catch((error: unknown) => {
        this.logger.error(`sweeping orphaned images: ${String(error)}`);
        return 0;
      })
      .finally(() => {
        this.running = null;
      });
    return this.running;
  }
}
