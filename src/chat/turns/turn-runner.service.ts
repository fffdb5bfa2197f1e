import { type BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import {
  catchError,
  concat,
  defer,
  finalize,
  from,
  merge,
  type Observable,
  Subject,
  takeUntil,
  tap,
  timer,
} from 'rxjs';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import { errorFrame, finalFrame, type Frame, type SseMessage, truncatedFrame } from './frames.js';
import { toSse } from './sse.js';
import { StreamRegistryService } from './stream-registry.service.js';
import { TurnActionsService } from './turn-actions.service.js';
import { TurnFailure } from './turn-failure.js';
import type { LiveTurn, TurnRun } from './turn-run.js';
import { TurnsRepository } from './turns.repository.js';

/** How long a drained turn's last bytes get to leave before the server closes (see shutdown). */
const FLUSH_MS = 100;

/**
 * Runs a live turn as one composed Observable: the action's frames, then `final` once stored;
 * the deadline and the shutdown grace end it with an `error` frame; a client that leaves
 * tears it down (aborting the provider calls) and the turn is stored as cancelled.
 */
@Injectable()
export class TurnRunnerService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(TurnRunnerService.name);
  /** Fires when the shutdown grace period ends: every live turn ends with a retryable error. */
  private readonly shutdown$ = new Subject<void>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly turns: TurnsRepository,
    private readonly registry: StreamRegistryService,
    private readonly actions: TurnActionsService,
  ) {}

  run$(live: LiveTurn, release: () => void, signal: AbortSignal): Observable<SseMessage> {
    const { run } = live;
    let subscribed = false;
    const settle = (): void => {
      if (!run.abandon()) return release();
      // The client left: keep what streamed, marked cancelled; the key stays runnable.
      void this.turns
        .finish(run.turnId, 'cancelled', run.rows('cancelled'), null)
        .catch((error: unknown) =>
          this.logger.error(`storing cancelled turn ${run.turnId}: ${String(error)}`),
        )
        .finally(release);
    };
    signal.addEventListener('abort', () => subscribed || settle(), { once: true });

    const frames$ = concat(
      this.actions.frames$(live),
      defer(() => this.final(run)),
    ).pipe(
      takeUntil(this.deadline$()),
      catchError((error: unknown) => this.failure$(run, error)),
      finalize(settle),
    );
    return defer(() => {
      subscribed = true;
      return frames$;
    }).pipe(toSse(this.config.sseHeartbeatMs));
  }

  /**
   * SIGTERM: new turns are refused (the lifecycle says draining); open ones get
   * SHUTDOWN_GRACE_MS to finish, then end with a retryable `error` frame, and their rows are
   * written before the database closes (after this hook).
   */
  async beforeApplicationShutdown(): Promise<void> {
    if (this.registry.open === 0) return;
    this.logger.log(`draining ${this.registry.open} open turn(s)`);
    const idle = this.registry.whenIdle();
    const grace = new Promise<'grace'>((resolve) =>
      setTimeout(() => resolve('grace'), this.config.shutdownGraceMs).unref(),
    );
    if ((await Promise.race([idle, grace])) === 'grace') {
      this.shutdown$.next();
      await idle;
    }
    // The last frames are still being flushed; once they are, the keep-alive connections are
    // idle and the server's close() ends them instead of waiting for the client's timeout.
    await new Promise((resolve) => setTimeout(resolve, FLUSH_MS));
  }

  /** Errors when the turn must stop: TURN_TIMEOUT_MS passed, or the shutdown grace ended. */
  private deadline$(): Observable<never> {
    return merge(
      timer(this.config.turnTimeoutMs).pipe(
        tap(() => {
          throw new TurnFailure(
            'timeout',
            `the turn took longer than ${this.config.turnTimeoutMs} ms`,
          );
        }),
      ),
      this.shutdown$.pipe(
        tap(() => {
          throw new TurnFailure(
            'upstream_unavailable',
            'The server is shutting down; run the turn again.',
          );
        }),
      ),
    ) as Observable<never>;
  }

  /** Stores the finished turn, then says `final`: a replay can never miss what was streamed. */
  private async final(run: TurnRun): Promise<Frame> {
    run.finish();
    await this.turns.finish(run.turnId, 'completed', run.rows('complete'), null);
    run.end();
    return finalFrame(run.userMessageId, run.messageIds, run.actionType, false);
  }

  /** `done(truncated)` for a message cut short, then the one `error` frame. */
  private failure$(run: TurnRun, error: unknown): Observable<Frame> {
    const failure =
      error instanceof TurnFailure
        ? error
        : new TurnFailure('internal', 'The turn failed unexpectedly.');
    if (!(error instanceof TurnFailure)) {
      this.logger.error(
        `turn ${run.turnId} failed: ${error instanceof Error ? error.stack : String(error)}`,
      );
    }
    const stored = failure.toStored();
    const orphaned = run.orphanedImageFailure;
    const error$ = defer(async (): Promise<Frame> => {
      run.finish();
      try {
        await this.turns.finish(
          run.turnId,
          'failed',
          run.rows('failed'),
          orphaned ? { ...stored, image_failed: orphaned } : stored,
        );
      } catch (persistError) {
        this.logger.error(`storing failed turn ${run.turnId}: ${String(persistError)}`);
      }
      run.end();
      return errorFrame(stored);
    });
    return concat(from(run.openMessageIds().map(truncatedFrame)), error$);
  }
}
