import {
  type Frame,
  isTerminalFrame,
  type OnDisconnect,
  type StopResult,
} from '../../src/contract/index.js';
import { EaselApiError, EaselConnectionError, EaselError } from './errors.js';
import { readFrames } from './sse.js';

/** How a dropped stream is resumed: `retries` reconnections per drop, exponential backoff. */
export interface RetryPolicy {
  readonly retries: number;
  readonly baseDelayMs: number;
  readonly maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { retries: 5, baseDelayMs: 250, maxDelayMs: 5000 };

/** Three missed `: ping`s at the server's default SSE_HEARTBEAT_MS (15 s) mean the link is dead. */
export const DEFAULT_IDLE_TIMEOUT_MS = 45_000;

/** What a TurnStream needs from the client: how to (re)open the stream, and how to stop the turn. */
export interface TurnConnection {
  /**
   * Opens the stream. `after` is null for the very first request, else the last frame id seen
   * (sent as `Last-Event-ID`).
   */
  open(after: number | null, signal: AbortSignal): Promise<Response>;
  stop(): Promise<StopResult>;
  /** True when `open(null)` starts over with the v1 replay (a re-POST), so a 410 can fall back. */
  readonly canReplay: boolean;
}

export interface TurnStreamSettings {
  readonly clientMsgId: string;
  readonly onDisconnect: OnDisconnect;
  readonly retry: RetryPolicy;
  readonly idleTimeoutMs: number;
  readonly signal?: AbortSignal;
  /** Frames with an id ≤ this were seen before (a resume). */
  readonly after?: number;
}

/** Statuses worth another try when reconnecting (a restarting or busy server). */
const RETRYABLE_STATUSES = new Set([429, 502, 503, 504]);

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });

/**
 * The frames of one turn, as an async iterable that survives network drops: after a drop it
 * reconnects with `Last-Event-ID` (docs/api-reference.md §8a), skips any frame id it already delivered, and
 * gives up with an EaselConnectionError after `retry.retries` failed reconnections in a row.
 * Aborting `signal` ends the iteration with the signal's reason; for an `on_disconnect:
 * "continue"` turn it first calls the stop route, since leaving would not stop it. Breaking out
 * of the loop only detaches. Iterate it once.
 */
export class TurnStream implements AsyncIterable<Frame> {
  /** The id of the last frame delivered (0 before the first). */
  lastEventId: number;
  readonly clientMsgId: string;
  private started = false;

  constructor(
    private readonly connection: TurnConnection,
    private readonly settings: TurnStreamSettings,
  ) {
    this.clientMsgId = settings.clientMsgId;
    this.lastEventId = settings.after ?? 0;
  }

  [Symbol.asyncIterator](): AsyncIterator<Frame> {
    if (this.started) throw new EaselError('a TurnStream can be iterated only once');
    this.started = true;
    return this.frames();
  }

  private async *frames(): AsyncGenerator<Frame> {
    const outer = this.settings.signal ?? new AbortController().signal;
    // Started as soon as the caller aborts, even while the consumer is busy between frames.
    let stopping: Promise<unknown> = Promise.resolve();
    const onAbort = (): void => {
      if (this.settings.onDisconnect === 'continue') {
        stopping = this.connection.stop().catch(() => undefined);
      }
    };
    outer.addEventListener('abort', onAbort, { once: true });
    const aborted = async (): Promise<never> => {
      await stopping;
      throw outer.reason;
    };

    let first = this.settings.after === undefined;
    let failures = 0;
    const dropped = async (cause: unknown): Promise<void> => {
      failures += 1;
      if (failures > this.settings.retry.retries) {
        throw new EaselConnectionError(
          `the turn stream was lost and ${this.settings.retry.retries} reconnections failed`,
          this.lastEventId,
          failures - 1,
          { cause },
        );
      }
      const { baseDelayMs, maxDelayMs } = this.settings.retry;
      await sleep(Math.min(maxDelayMs, baseDelayMs * 2 ** (failures - 1)), outer);
    };

    try {
      if (outer.aborted) onAbort();
      for (;;) {
        if (outer.aborted) return await aborted();
        const attempt = new AbortController();
        const cut = (): void => attempt.abort(outer.reason);
        outer.addEventListener('abort', cut, { once: true });
        let idle: ReturnType<typeof setTimeout> | undefined;
        const alive = (): void => {
          clearTimeout(idle);
          idle = setTimeout(
            () => attempt.abort(new EaselError('no byte within the idle timeout')),
            this.settings.idleTimeoutMs,
          );
        };
        /** Why this connection ended without the turn's last frame, when it is worth a retry. */
        let drop: unknown = null;
        try {
          alive();
          const after = first ? null : this.lastEventId;
          const response = await this.connection.open(after, attempt.signal);
          if (!response.ok) {
            const error = await EaselApiError.from(response);
            if (first) throw error;
            if (
              error.code === 'resume_expired' &&
              this.lastEventId === 0 &&
              this.connection.canReplay
            ) {
              // Nothing delivered yet, so the v1 replay (a plain re-POST) loses nothing (api-reference §8a).
              first = true;
              continue;
            }
            if (!RETRYABLE_STATUSES.has(response.status)) throw error;
            drop = error;
          } else {
            first = false;
            if (!response.body) throw new EaselError('the turn answered without a body');
            for await (const { id, frame } of readFrames(response.body, alive)) {
              if (id <= this.lastEventId) continue;
              this.lastEventId = id;
              failures = 0;
              yield frame;
              if (isTerminalFrame(frame)) return;
            }
            drop = new EaselError('the stream ended before its final or error frame');
          }
        } catch (error) {
          if (outer.aborted) return await aborted();
          // Our own errors (protocol, API) end the turn; network failures and timeouts are drops.
          if (error instanceof EaselError && !attempt.signal.aborted) throw error;
          drop = error;
        } finally {
          clearTimeout(idle);
          outer.removeEventListener('abort', cut);
          attempt.abort();
        }
        try {
          await dropped(drop);
        } catch (error) {
          if (outer.aborted) return await aborted();
          throw error;
        }
      }
    } finally {
      outer.removeEventListener('abort', onAbort);
    }
  }
}
