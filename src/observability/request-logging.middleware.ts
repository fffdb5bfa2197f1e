import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { requestIdFrom, runWithRequestId } from './request-context.js';

/** `userId` is set by the AuthGuard on authenticated routes. */
type Request = IncomingMessage & { userId?: string };

/**
 * Gives each request an id (echoed as `X-Request-Id`) that every log line written on its behalf
 * carries, and logs one access line when the response closes — for SSE, when the stream ends.
 */
export function requestLogging(log: Logger) {
  return (req: Request, res: ServerResponse, next: () => void): void => {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const started = performance.now();
    // The query is left out: signed image URLs carry their signature there.
    const path = (req.url ?? '/').split('?', 1)[0];
    res.setHeader('X-Request-Id', requestId);
    res.once('close', () => {
      const status = res.statusCode;
      log[status >= 500 ? 'error' : 'info'](
        {
          request_id: requestId,
          method: req.method,
          path,
          status,
          ms: Math.round(performance.now() - started),
          user_id: req.userId,
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    runWithRequestId(requestId, next);
  };
}
