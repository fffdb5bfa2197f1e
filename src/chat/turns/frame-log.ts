import { Observable } from 'rxjs';
import type { Frame } from './frames.js';

/** A frame as the log keeps it: numbered and serialised once, so every path sends these bytes. */
export interface LoggedFrame {
  readonly id: number;
  readonly json: string;
  /** `final` or `error`: the last frame of the turn. */
  readonly terminal: boolean;
}

/** Where a persisted log goes (the `turn_frames` table); called with the frames not yet written. */
export type LogWriter = (frames: readonly LoggedFrame[]) => Promise<void>;

const TERMINAL_TYPES: ReadonlySet<Frame['type']> = new Set(['final', 'error']);

export function isTerminal(frame: Frame): boolean {
  return TERMINAL_TYPES.has(frame.type);
}

/**
 * How long frames wait to be written together once a log is persisted (one INSERT a batch). At
 * a brisk model's 20 ms a chunk, 50 ms puts ~3 frames in a batch (25 ms: ~2, so ~1.6× the
 * INSERTs); a follower elsewhere reads every 50 ms anyway, and the terminal frame never waits.
 */
export const PERSIST_BATCH_MS = 50;

/**
 * The frames of one turn, in order, in memory. Followers subscribe through {@link follow$}:
 * the frames after their cursor, then the live ones, then the stream completes after the
 * terminal frame. Once {@link persist} is called the log is also written to the database, in
 * batches, and the terminal frame is only published after everything before it (and itself)
 * is written: a client on another instance can then never see less than a local one.
 */
export class FrameLog {
  private readonly frames: LoggedFrame[] = [];
  private readonly followers = new Set<(frame: LoggedFrame) => void>();
  private readonly closers = new Set<() => void>();
  private writer: LogWriter | null = null;
  private written = 0;
  private flushing: Promise<void> = Promise.resolve();
  private batchTimer: NodeJS.Timeout | null = null;
  /** Frames numbered but held until persisted (only the terminal frame of a persisted log). */
  private pending: LoggedFrame | null = null;
  private closed = false;
  /** Sum of the JSON lengths, for the memory budget of ended logs. */
  size = 0;
  endedAt: number | null = null;

  /** The number of frames numbered so far (the id of the last one). */
  get length(): number {
    return this.frames.length + (this.pending ? 1 : 0);
  }

  get ended(): boolean {
    return this.closed;
  }

  get persisted(): boolean {
    return this.writer !== null;
  }

  /** Numbers and serialises `frame`; publishes it at once, or after the write of a persisted log. */
  append(frame: Frame): void {
    if (this.closed || this.pending) return;
    const logged: LoggedFrame = {
      id: this.length + 1,
      json: JSON.stringify(frame),
      terminal: isTerminal(frame),
    };
    this.size += logged.json.length;
    if (logged.terminal && this.writer) {
      this.pending = logged;
      void this.flush().finally(() => this.publish(logged));
      return;
    }
    this.publish(logged);
    if (this.writer) this.scheduleFlush();
  }

  /** Starts writing the log (everything so far at once, then in batches). Idempotent. */
  persist(writer: LogWriter): void {
    if (this.writer) return;
    this.writer = writer;
    if (this.frames.length > 0) void this.flush();
  }

  /** The frames with id > `after`, then the live ones; completes after the terminal frame. */
  follow$(after: number): Observable<LoggedFrame> {
    return new Observable<LoggedFrame>((subscriber) => {
      for (const frame of this.frames.slice(Math.max(0, after))) subscriber.next(frame);
      if (this.closed) {
        subscriber.complete();
        return undefined;
      }
      const next = (frame: LoggedFrame): void => {
        if (frame.id > after) subscriber.next(frame);
      };
      const close = (): void => subscriber.complete();
      this.followers.add(next);
      this.closers.add(close);
      return () => {
        this.followers.delete(next);
        this.closers.delete(close);
      };
    });
  }

  /** Ends the log without a terminal frame (nothing more will come). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.endedAt = Date.now();
    if (this.batchTimer) clearTimeout(this.batchTimer);
    for (const close of [...this.closers]) close();
    this.followers.clear();
    this.closers.clear();
  }

  private publish(frame: LoggedFrame): void {
    this.pending = null;
    this.frames.push(frame);
    for (const follower of [...this.followers]) follower(frame);
    if (frame.terminal) this.close();
  }

  private scheduleFlush(): void {
    this.batchTimer ??= setTimeout(() => {
      this.batchTimer = null;
      void this.flush();
    }, PERSIST_BATCH_MS);
  }

  /** Writes what is not written yet (the pending terminal frame included); batches never overlap. */
  private flush(): Promise<void> {
    this.flushing = this.flushing.then(async () => {
      const writer = this.writer;
      // The held terminal frame comes right after the published ones: count it in the same order.
      const numbered = this.pending ? [...this.frames, this.pending] : this.frames;
      const batch = numbered.slice(this.written);
      if (!writer || batch.length === 0) return;
      try {
        await writer(batch);
        this.written += batch.length;
      } catch {
        // The owner still serves its own followers; a peer's follower sees the gap close on the
        // next batch (writes are idempotent), or the owner-lost error if the owner dies first.
      }
    });
    return this.flushing;
  }
}
