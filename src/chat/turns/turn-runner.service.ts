import { type BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import {
  catchError,
  concat,
  defer,
  finalize,
  from,
  mergeMap,
  Observable,
  Subject,
  takeUntil,
} from 'rxjs';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { TurnError } from '../../database/schema.js';
import type { MessageValues } from '../sessions/messages.repository.js';
import { errorFrame, finalFrame, type Frame, truncatedFrame } from './frames.js';
import { StreamRegistryService } from './stream-registry.service.js';
import { TurnActionsService } from './turn-actions.service.js';
import { TurnFailure } from './turn-failure.js';
import type { LiveTurn, TurnRun } from './turn-run.js';
import { type TurnEnding, TurnsRepository } from './turns.repository.js';

/** How long a drained turn's last bytes get to leave before the server closes (see shutdown). */
const FLUSH_MS = 100;
/** A turn's terminal write is tried this many times before the status-only fallback. */
const STORE_ATTEMPTS = 2;

/**
 * Runs a live turn as one composed Observable: the action's frames, then `final` once stored;
 * the deadline, the shutdown grace and the stop route end it with an `error` frame; tearing it
 * down (the last client left a `cancel` turn) aborts the provider calls and stores it cancelled.
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

  /**
   * The turn's producer: the action's frames, then `final` once stored. It ends with an `error`
   * frame at the deadline (counted from `control.deadlineAt`, the request's arrival), at the
   * shutdown grace, or when `control.stop$` fires (the stop route). Unsubscribing tears it down
   * (aborting every provider call) and stores what streamed as cancelled.
   */
  producer$(live: LiveTurn, release: () => void, control: TurnControl): Observable<Frame> {
    const { run } = live;
    const settle = (): void => {
      if (!run.abandon()) return release();
      // Every client left: keep what streamed, marked cancelled; the key stays runnable.
      void this.store(run, 'cancelled', run.rows('cancelled'), null).finally(release);
    };
    return defer(() => {
      // The `done` that closes the turn's last message waits for the turn's storage, so that a
      // write that fails can still end the stream `done(truncated) → error`, never `done → error`.
      const hold: { done: Frame | null } = { done: null };
      const action$ = new Observable<Frame>((subscriber) =>
        this.actions.frames$(live).subscribe({
          next: (frame) => {
            if (hold.done) subscriber.next(hold.done);
            hold.done = frame.type === 'done' ? frame : null;
            if (!hold.done) subscriber.next(frame);
          },
          error: (error: unknown) => {
            if (hold.done) subscriber.next(hold.done);
            hold.done = null;
            subscriber.error(error);
          },
          complete: () => subscriber.complete(),
        }),
      );
      return concat(
        action$,
        defer(() => this.final(run, hold.done)).pipe(mergeMap((frames) => from(frames))),
      ).pipe(
        takeUntil(this.deadline$(control)),
        catchError((error: unknown) => this.failure$(run, error, hold.done)),
      );
    }).pipe(finalize(settle));
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

  /**
   * Errors when the turn must stop: its deadline, the shutdown grace, or a stop request. One
   * subscriber for the three (a merge of three piped sources held ~25 closures per open turn).
   */
  private deadline$(control: TurnControl): Observable<never> {
    return new Observable<never>((subscriber) => {
      const deadline = setTimeout(
        () =>
          subscriber.error(
            new TurnFailure('timeout', `the turn took longer than ${this.config.turnTimeoutMs} ms`),
          ),
        Math.max(0, control.deadlineAt - Date.now()),
      );
      subscriber.add(() => clearTimeout(deadline));
      subscriber.add(
        this.shutdown$.subscribe(() =>
          subscriber.error(
            new TurnFailure(
              'upstream_unavailable',
              'The server is shutting down; run the turn again.',
            ),
          ),
        ),
      );
      subscriber.add(
        control.stop$.subscribe(() =>
          subscriber.error(new TurnFailure('cancelled', 'The turn was stopped (stop route).')),
        ),
      );
    });
  }

  /**
   * Stores the finished turn, then says `final` (after the held `done`): a replay can never miss
   * what was streamed. If it cannot be stored, the message that `done` would have closed ends
   * truncated and the turn ends with a retryable `internal` error instead.
   */
  private async final(run: TurnRun, held: Frame | null): Promise<Frame[]> {
    run.finish();
    const stored = await this.store(run, 'completed', run.rows('complete'), null);
    run.end();
    if (stored) {
      const final = finalFrame(run.userMessageId, run.messageIds, run.actionType, false);
      return [...(held ? [held] : []), final];
    }
    const failure = new TurnFailure('internal', 'The reply could not be stored.', true);
    return [
      ...(held && held.type === 'done' ? [truncatedFrame(held.message_id)] : []),
      errorFrame(failure.toStored()),
    ];
  }

  /** `done(truncated)` for a message cut short, then the one `error` frame. */
  private failure$(run: TurnRun, error: unknown, held: Frame | null): Observable<Frame> {
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
      if (failure.code === 'cancelled') {
        await this.store(run, 'cancelled', run.rows('cancelled'), stored);
      } else {
        await this.store(
          run,
          'failed',
          run.rows('failed'),
          orphaned ? { ...stored, image_failed: orphaned } : stored,
        );
      }
      run.end();
      return errorFrame(stored);
    });
    // A `done` still held (the turn was stopped while being stored) closes its message truncated.
    const cut = [...(held?.type === 'done' ? [held.message_id] : []), ...run.openMessageIds()];
    return concat(from(cut.map(truncatedFrame)), error$);
  }

  /**
   * The turn's one terminal write. It must not leave the row `running` whatever the database
   * does: the full write is tried twice, then a status-only update (no text: the key becomes
   * runnable again), and if even that fails the row is handed to the orphan sweep, which ends it
   * once writes work again. True when the full write landed.
   */
  private async store(
    run: TurnRun,
    status: TurnEnding,
    rows: MessageValues[],
    error: TurnError | null,
  ): Promise<boolean> {
    for (let attempt = 1; attempt <= STORE_ATTEMPTS; attempt += 1) {
      try {
        await this.turns.finish(run.turnId, status, rows, error);
        return true;
      } catch (failure) {
        this.logger.error(`storing turn ${run.turnId} (attempt ${attempt}): ${String(failure)}`);
        if (attempt < STORE_ATTEMPTS) await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    try {
      await this.turns.interrupt(run.turnId, error);
    } catch (failure) {
      this.logger.error(`ending turn ${run.turnId} without its messages: ${String(failure)}`);
      this.turns.release(run.turnId);
    }
    return false;
  }
}

/** How a turn is steered from outside its pipeline. */
export interface TurnControl {
  /** Epoch ms: the request's arrival + TURN_TIMEOUT_MS. */
  readonly deadlineAt: number;
  /** Fires when the stop route asks for this turn. */
  readonly stop$: Observable<void>;
}
