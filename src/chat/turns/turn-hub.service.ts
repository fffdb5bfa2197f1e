import {
  Inject,
  Injectable,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { Observable, Subject, type Subscription } from 'rxjs';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { OnDisconnect } from '../../contract/index.js';
import { DatabaseClient } from '../../database/database.client.js';
import { MetricsService } from '../../observability/metrics.service.js';
import { FrameLog, type LoggedFrame } from './frame-log.js';
import { errorFrame, type Frame, truncatedFrame } from './frames.js';
import { TurnFailure } from './turn-failure.js';
import { TurnFramesRepository } from './turn-frames.repository.js';
import { countTurn } from './turn-metrics.js';
import type { TurnRun } from './turn-run.js';

/** The NOTIFY channel of control messages between instances (never frames). */
const CHANNEL = 'easel_turns';
/** Control messages: stop a turn; persist a turn's log because someone elsewhere follows it. */
const CONTROL_OPS = ['stop', 'follow'] as const;
type ControlOp = (typeof CONTROL_OPS)[number];
/** Memory kept for the logs of ended turns (the oldest go first; a resume then gets 410). */
const ENDED_LOGS_BUDGET_CHARS = 128 * 1024 * 1024;

/** A turn running in this process: its producer, its log, and who is attached. */
export class LiveTurnHandle {
  private attached = 0;
  private graceTimer: NodeJS.Timeout | null = null;
  subscription: Subscription | null = null;
  readonly stop$ = new Subject<void>();

  constructor(
    readonly run: TurnRun,
    readonly userId: string,
    readonly onDisconnect: OnDisconnect,
    readonly log: FrameLog,
    private readonly graceMs: number,
    private readonly abandon: () => void,
  ) {}

  /**
   * Takes a place among the attached streams at once (so a producer is not torn down between
   * the request and its subscription) and returns the stream that uses it. `signal` gives the
   * place back if the client leaves before the stream is subscribed.
   */
  attach$(after: number, signal: AbortSignal | null): Observable<LoggedFrame> {
    this.attached += 1;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = null;
    let state: 'reserved' | 'subscribed' | 'gone' = 'reserved';
    const leave = (): void => {
      if (state === 'gone') return;
      state = 'gone';
      this.attached -= 1;
      if (this.attached === 0) this.lastLeft();
    };
    signal?.addEventListener('abort', () => state === 'reserved' && leave(), { once: true });
    // A client that left while the request was still being checked: 'abort' will not fire again.
    if (signal?.aborted) leave();
    return new Observable<LoggedFrame>((subscriber) => {
      if (state === 'gone') return subscriber.complete();
      state = 'subscribed';
      const inner = this.log.follow$(after).subscribe(subscriber);
      return () => {
        inner.unsubscribe();
        leave();
      };
    });
  }

  private lastLeft(): void {
    if (this.onDisconnect !== 'cancel' || this.log.ended) return;
    if (this.graceMs === 0) return this.abandon();
    this.graceTimer = setTimeout(() => {
      this.graceTimer = null;
      if (this.attached === 0) this.abandon();
    }, this.graceMs);
  }
}

/**
 * The live turns of this process and the logs of those that ended recently. A turn's producer
 * runs once, here; HTTP streams attach to its {@link FrameLog}. Other instances reach a turn
 * through NOTIFY control messages (stop, follow) and the `turn_frames` table.
 */
@Injectable()
export class TurnHubService implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly live = new Map<string, LiveTurnHandle>();
  /** Logs of ended turns, oldest first. */
  private readonly ended = new Map<string, FrameLog>();
  private endedChars = 0;
  /** Stops that arrived while the turn was between its first write and its start here. */
  private readonly earlyStops = new Set<string>();
  private unlisten: (() => void) | null = null;

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly database: DatabaseClient,
    private readonly frames: TurnFramesRepository,
    private readonly metrics: MetricsService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    this.unlisten = await this.database.listen(CHANNEL, (payload) => this.onControl(payload));
  }

  onModuleDestroy(): void {
    this.unlisten?.();
  }

  get liveCount(): number {
    return this.live.size;
  }

  /**
   * Starts a turn's producer (`producer$` is built with the returned stop signal). A `continue`
   * turn's log is persisted from the start on PostgreSQL, where another instance may resume it.
   */
  start(
    run: TurnRun,
    userId: string,
    onDisconnect: OnDisconnect,
    build: (stop$: Observable<void>) => Observable<Frame>,
  ): LiveTurnHandle {
    const log = new FrameLog();
    if (onDisconnect === 'continue' && this.database.kind === 'postgres') this.persist(run, log);
    const handle: LiveTurnHandle = new LiveTurnHandle(
      run,
      userId,
      onDisconnect,
      log,
      this.config.disconnectGraceMs,
      () => {
        handle.subscription?.unsubscribe();
        this.abandoned(handle);
      },
    );
    this.forget(run.turnId);
    this.live.set(run.turnId, handle);
    handle.subscription = build(handle.stop$)
      .pipe(countTurn(this.metrics))
      .subscribe({
        next: (frame) => log.append(frame),
        complete: () => this.ended$(handle),
      });
    if (this.earlyStops.delete(run.turnId)) handle.stop$.next();
    return handle;
  }

  /** The live turn, if it runs here. */
  running(turnId: string): LiveTurnHandle | null {
    return this.live.get(turnId) ?? null;
  }

  /** The log of a turn that ended here within RESUME_WINDOW_MS, if still kept. */
  endedLog(turnId: string): FrameLog | null {
    const log = this.ended.get(turnId);
    if (!log) return null;
    if (Date.now() - (log.endedAt ?? 0) > this.config.resumeWindowMs) {
      this.dropEnded(turnId);
      return null;
    }
    return log;
  }

  /**
   * Stops a turn: at once when it runs here, else through NOTIFY to whichever instance runs it.
   * `ownedHere`: the row names this process as owner (the turn may not have reached `start`).
   */
  async stop(turnId: string, ownedHere: boolean): Promise<void> {
    const handle = this.live.get(turnId);
    if (handle) return handle.stop$.next();
    if (ownedHere) {
      this.earlyStops.add(turnId);
      return;
    }
    await this.send('stop', turnId);
  }

  /** Asks the instance running `turnId` to write its log to the table, for a follower here. */
  async requestFollow(turnId: string): Promise<void> {
    await this.send('follow', turnId);
  }

  /** Drops the in-memory logs that left the resume window. */
  pruneEnded(): void {
    for (const [turnId, log] of this.ended) {
      if (Date.now() - (log.endedAt ?? 0) <= this.config.resumeWindowMs) break;
      this.dropEnded(turnId);
    }
  }

  private persist(run: TurnRun, log: FrameLog): void {
    log.persist((batch) => this.frames.append(run.turnId, batch));
  }

  private async send(op: ControlOp, turnId: string): Promise<void> {
    await this.database.notify(CHANNEL, JSON.stringify({ op, turn: turnId }));
  }

  private onControl(payload: string): void {
    let message: { op?: unknown; turn?: unknown };
    try {
      message = JSON.parse(payload) as typeof message;
    } catch {
      return;
    }
    if (typeof message.turn !== 'string' || !CONTROL_OPS.includes(message.op as ControlOp)) return;
    const handle = this.live.get(message.turn);
    if (!handle) return;
    if (message.op === 'stop') handle.stop$.next();
    else if (message.op === 'follow') this.persist(handle.run, handle.log);
  }

  /**
   * The last client left a `cancel` turn: the producer is torn down (its provider calls
   * aborted). A later resume still finds the log closed the way a stop closes it.
   */
  private abandoned(handle: LiveTurnHandle): void {
    const failure = new TurnFailure(
      'cancelled',
      'Every client left the turn (on_disconnect: cancel).',
    );
    for (const id of handle.run.openMessageIds()) handle.log.append(truncatedFrame(id));
    handle.log.append(errorFrame(failure.toStored()));
    this.ended$(handle);
  }

  private ended$(handle: LiveTurnHandle): void {
    const turnId = handle.run.turnId;
    if (this.live.get(turnId) !== handle) return;
    this.live.delete(turnId);
    // A persisted log publishes its terminal frame once written: it may still be pending.
    if (!handle.log.ended && handle.log.length === 0) handle.log.close();
    this.ended.set(turnId, handle.log);
    this.endedChars += handle.log.size;
    while (this.endedChars > ENDED_LOGS_BUDGET_CHARS && this.ended.size > 1) {
      const [oldest] = this.ended.keys();
      this.dropEnded(oldest);
    }
  }

  private dropEnded(turnId: string): void {
    const log = this.ended.get(turnId);
    if (!log) return;
    this.ended.delete(turnId);
    this.endedChars -= log.size;
  }

  /** The same key runs again: its earlier log is not this run's. */
  private forget(turnId: string): void {
    this.dropEnded(turnId);
  }
}
