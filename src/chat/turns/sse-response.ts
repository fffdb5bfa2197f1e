import { Logger } from '@nestjs/common';
import type { Request, Response } from 'express';
import type { Observable, Subscription } from 'rxjs';
import type { SseEvent } from './sse.js';

/** The headers of a turn stream (those Nest's `@Sse` sent, in the same order). */
const SSE_HEADERS = {
  'Content-Type': 'text/event-stream',
  Connection: 'keep-alive',
  'Cache-Control': 'private, no-cache, no-store, must-revalidate, max-age=0, no-transform',
  Pragma: 'no-cache',
  Expires: '0',
  'X-Accel-Buffering': 'no',
};

const logger = new Logger('SseResponse');

/**
 * Answers an SSE route: `open(signal)` makes every check first (a throw is answered as JSON by
 * the exception filters) and returns the events, each written whole with one `res.write` (Nest's
 * `@Sse` passed every event through a Transform stream and a promise, for the same bytes).
 *
 * `signal` aborts when the client leaves, also while `open` runs; a stream whose client left
 * before it was subscribed is never subscribed. Leaving unsubscribes the events (their teardown
 * aborts what they started). A client that does not read costs only its own memory: events wait
 * in its response, and once more than `maxPendingChars` characters of them wait beyond the
 * socket's buffer (as Nest's `maxPendingDataLength` counted), its connection is dropped (it
 * resumes by id). A client gone on a paused socket is noticed at the next write, which the
 * events' `: ping` comments guarantee.
 */
export async function sendSse(
  request: Request,
  response: Response,
  open: (signal: AbortSignal) => Promise<Observable<SseEvent>>,
  maxPendingChars: number,
): Promise<void> {
  const abort = new AbortController();
  let subscription: Subscription | null = null;
  let ended = false;
  let settle = (): void => undefined;
  const leave = (): void => {
    if (ended) return;
    ended = true;
    abort.abort();
    subscription?.unsubscribe();
    settle();
  };
  response.once('close', leave);
  if (request.socket.destroyed) leave();

  let events$: Observable<SseEvent>;
  try {
    events$ = await open(abort.signal);
  } catch (error) {
    // Nobody is left to answer.
    if (ended) return;
    response.off('close', leave);
    throw error;
  }
  if (ended) return;

  // No socket tuning: Nest's SSE set TCP keep-alive (its first probe after the OS's 2 h idle,
  // while pings come every SSE_HEARTBEAT_MS; 0.09 ms a stream in the profile), and no-delay and
  // no timeout, which the server's sockets have already.
  let headersSent = false;
  /** Characters of events written while the socket was backed up, not yet taken by it. */
  let pending = 0;
  const sendHeaders = (): void => {
    headersSent = true;
    response.writeHead(response.statusCode, SSE_HEADERS);
    response.write('\n');
  };
  const finish = (): void => {
    ended = true;
    response.off('close', leave);
    subscription?.unsubscribe();
    if (!headersSent) sendHeaders();
    response.end();
    settle();
  };
  const done = new Promise<void>((resolve) => (settle = resolve));

  // A HEAD answer has no body: it is complete with its headers (the signal gives back what
  // `open` reserved for the stream).
  if (request.method === 'HEAD') {
    abort.abort();
    finish();
    return done;
  }
  // Declared wide: it is set inside `subscribe`, which TypeScript's narrowing does not see.
  let failure = null as { error: unknown } | null;
  subscription = events$.subscribe({
    next: (event) => {
      if (ended) return;
      if (!headersSent) sendHeaders();
      if (!response.writableNeedDrain) {
        response.write(event);
        return;
      }
      const length = event.length;
      pending += length;
      if (pending > maxPendingChars) {
        logger.warn(`A client is not reading its stream: ${pending} characters wait for it.`);
        response.destroy();
        return leave();
      }
      response.write(event, () => (pending -= length));
    },
    error: (error: unknown) => {
      if (ended) return;
      if (!headersSent) {
        failure = { error };
        ended = true;
        response.off('close', leave);
        return;
      }
      // No status can be answered any more: the stream ends without a terminal frame.
      logger.error(error);
      finish();
    },
    complete: () => {
      if (!ended) finish();
    },
  });
  // The events may have ended (or the client left) during `subscribe`, before it returned.
  if (ended) subscription.unsubscribe();
  // Failed before anything was sent: the exception filters answer it, as a throw from `open`.
  if (failure) throw failure.error;
  if (!ended && !headersSent) sendHeaders();
  return done;
}
