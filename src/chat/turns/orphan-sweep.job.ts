import { Inject, Injectable, Logger } from '@nestjs/common';
import { IntervalJob } from '../../common/interval-job.js';
import { DatabaseClient } from '../../database/database.client.js';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import { TurnFramesRepository } from './turn-frames.repository.js';
import { TurnHubService } from './turn-hub.service.js';
import { TurnsRepository } from './turns.repository.js';

/** How often a PostgreSQL-backed instance looks for turns whose process died. */
const ORPHAN_SWEEP_MS = 30_000;
/** How often turns this process released (their terminal write failed) are tried again. */
const RELEASED_SWEEP_MS = 1_000;

/**
 * Turns left running by a process that died are marked interrupted, so their keys run again:
 * at boot, and on PostgreSQL (where several instances may share the database) every
 * {@link ORPHAN_SWEEP_MS}, so a crashed peer's turns are freed without a restart here. Turns
 * this process released because it could not end them are retried every
 * {@link RELEASED_SWEEP_MS}; frame logs past RESUME_WINDOW_MS are dropped (memory and table).
 */
@Injectable()
export class OrphanSweepJob extends IntervalJob {
  private readonly logger = new Logger(OrphanSweepJob.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly turns: TurnsRepository,
    private readonly frames: TurnFramesRepository,
    private readonly hub: TurnHubService,
    private readonly database: DatabaseClient,
  ) {
    super();
  }

  override async onApplicationBootstrap(): Promise<void> {
    await this.run();
    this.every(ORPHAN_SWEEP_MS, () => this.run());
    this.every(RELEASED_SWEEP_MS, () => this.endReleased());
  }

  /** Ends the turns this process gave up (no statement at all while there are none). */
  async endReleased(): Promise<void> {
    if (this.turns.releasedCount === 0) return;
    try {
      const ended = await this.turns.interruptReleased();
      this.logger.warn(`ended ${ended} turn(s) whose terminal write had failed`);
    } catch (error) {
      this.logger.error(`ending released turns: ${String(error)}`);
    }
  }

  async run(): Promise<void> {
    this.hub.pruneEnded();
    try {
      // Only PostgreSQL holds frame logs (PGlite writes none) or other processes' turns.
      if (this.database.kind === 'postgres') {
        await this.frames.deleteExpired(this.config.resumeWindowMs);
      } else if (this.scheduled) {
        return;
      }
      const interrupted = await this.turns.interruptOrphaned();
      if (interrupted > 0)
        this.logger.warn(`marked ${interrupted} turn(s) of a dead process as interrupted`);
    } catch (error) {
      this.logger.error(`looking for interrupted turns: ${String(error)}`);
    }
  }
}
