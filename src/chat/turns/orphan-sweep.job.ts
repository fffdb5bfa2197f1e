import {
  type BeforeApplicationShutdown,
  Injectable,
  Logger,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { DatabaseClient } from '../../database/database.client.js';
import { TurnsRepository } from './turns.repository.js';

/** How often a PostgreSQL-backed instance looks for turns whose process died. */
const ORPHAN_SWEEP_MS = 30_000;

/**
 * Turns left running by a process that died are marked interrupted, so their keys run again:
 * at boot, and on PostgreSQL (where several instances may share the database) every
 * {@link ORPHAN_SWEEP_MS}, so a crashed peer's turns are freed without a restart here.
 */
@Injectable()
export class OrphanSweepJob implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(OrphanSweepJob.name);
  private timer: NodeJS.Timeout | null = null;

  constructor(
    private readonly turns: TurnsRepository,
    private readonly database: DatabaseClient,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await this.run();
    if (this.database.kind === 'postgres') {
      this.timer = setInterval(() => void this.run(), ORPHAN_SWEEP_MS).unref();
    }
  }

  beforeApplicationShutdown(): void {
    if (this.timer) clearInterval(this.timer);
  }

  async run(): Promise<void> {
    try {
      const interrupted = await this.turns.interruptOrphaned();
      if (interrupted > 0)
        this.logger.warn(`marked ${interrupted} turn(s) of a dead process as interrupted`);
    } catch (error) {
      this.logger.error(`looking for interrupted turns: ${String(error)}`);
    }
  }
}
