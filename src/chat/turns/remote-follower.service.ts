import { Injectable, Logger } from '@nestjs/common';
import { Observable } from 'rxjs';
import { DatabaseClient } from '../../database/database.client.js';
import type { LoggedFrame } from './frame-log.js';
import { errorFrame } from './frames.js';
import { TurnFailure } from './turn-failure.js';
import { TurnFramesRepository } from './turn-frames.repository.js';
import { TurnHubService } from './turn-hub.service.js';
import { type TurnRow, TurnsRepository } from './turns.repository.js';

/** How often a follower reads the log table again (no NOTIFY per frame batch: see architecture). */
const POLL_MS = 50;
/**
 * How often a follower checks that the turn's owner still lives (its advisory lock) and asks it
 * again to persist the log: an owner killed mid-turn is reported well within the 10 s of docs/api-reference.md §8a.
 */
const LIVENESS_MS = 2_000;

/**
 * Serves a turn that runs on (or was persisted by) another instance, from the `turn_frames`
 * table: the rows after the cursor, read again every {@link POLL_MS}, until the terminal frame.
 * If the owner dies first, the follower ends the log itself with a retryable
 * `upstream_unavailable` error (written to the table, so every follower sends the same frame)
 * and the sweep ends the row.
 */
@Injectable()
export class RemoteFollowerService {
  private readonly logger = new Logger(RemoteFollowerService.name);

  constructor(
    private readonly database: DatabaseClient,
    private readonly frames: TurnFramesRepository,
    private readonly turns: TurnsRepository,
    private readonly hub: TurnHubService,
  ) {}

  follow$(turn: TurnRow, after: number): Observable<LoggedFrame> {
    return new Observable<LoggedFrame>((subscriber) => {
      let cursor = after;
      let closed = false;
      let timer: NodeJS.Timeout | null = null;
      let checkedAt = Date.now();

      /** Emits the stored rows after the cursor; true once the terminal frame went out. */
      const drain = async (): Promise<boolean> => {
        for (;;) {
          const rows = await this.frames.after(turn.id, cursor);
          for (const row of rows) {
            if (closed) return true;
            subscriber.next(row);
            cursor = row.id;
            if (row.terminal) return true;
          }
          if (rows.length === 0) return false;
        }
      };

      const tick = async (): Promise<void> => {
        if (await drain()) return subscriber.complete();
        if (Date.now() - checkedAt >= LIVENESS_MS) {
          checkedAt = Date.now();
          const row = await this.turns.findById(turn.id);
          const ended = !row || row.status !== 'running';
          if (ended || !(await this.database.isAlive(row.owner))) {
            // The log can still have been completed meanwhile; else the owner is lost.
            if (await drain()) return subscriber.complete();
            await this.ownerLost(turn.id, cursor);
            if (await drain()) return subscriber.complete();
            return subscriber.complete();
          }
          await this.hub.requestFollow(turn.id);
        }
        if (!closed) timer = setTimeout(() => void run(), POLL_MS);
      };
      const run = (): Promise<void> =>
        tick().catch((error: unknown) => {
          this.logger.error(`following turn ${turn.id}: ${String(error)}`);
          if (!closed) timer = setTimeout(() => void run(), LIVENESS_MS);
        });
      void run();
      return () => {
        closed = true;
        if (timer) clearTimeout(timer);
      };
    });
  }

  /**
   * The owner died (or ended the turn without completing its log): the log gets a retryable
   * error as its terminal frame, and the dead owner's rows are ended by the sweep.
   */
  private async ownerLost(turnId: string, cursor: number): Promise<void> {
    const failure = new TurnFailure(
      'upstream_unavailable',
      'The server running this turn stopped; run the turn again.',
    );
    const json = JSON.stringify(errorFrame(failure.toStored()));
    await this.frames.append(turnId, [{ id: cursor + 1, json, terminal: true }]);
    await this.turns.interruptOrphaned();
  }
}
