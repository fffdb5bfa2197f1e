import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { Readable } from 'node:stream';

/** `fetch` as the openai SDK calls it. */
export type Fetch = (input: string | URL | Request, init?: RequestInit) => Promise<Response>;

/** Idle keep-alive sockets close after this long (undici's default), or sooner if told to. */
const IDLE_SOCKET_MS = 4000;

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('This operation was aborted', 'AbortError');
}

function headersOf(response: IncomingMessage): Headers {
  const headers = new Headers();
  const raw = response.rawHeaders;
  for (let index = 0; index < raw.length; index += 2) headers.append(raw[index], raw[index + 1]);
  return headers;
}

/**
 * The SDK's HTTP transport: `fetch` over `node:http(s)` with keep-alive agents.
 *
 * Why: Node's built-in fetch (undici) cost about 2 ms of event-loop CPU per upstream request in
 * the fault-load profile — a third of the loop's time under load, the loop that relays every
 * stream and notices clients leave. This does the same exchange with a plain client request.
 *
 * What the SDK needs and gets: a string (or bytes) request body, the SDK's headers as sent, the
 * status and headers of the answer, its body as a stream, and `signal` closing the socket at
 * once (before the answer, and while its body streams: the body then fails with the abort). Not
 * done, as the SDK's calls here do not need them: redirects, compression (none is asked for),
 * proxies from the environment (Node's fetch does not read them either).
 */
export function createHttpTransport(idleSocketMs = IDLE_SOCKET_MS): Fetch {
  // The agents' `timeout` closes sockets idle in their pool; a request waiting on a slow answer
  // only gets a 'timeout' event nobody acts on (time limits are the caller's signal).
  const agents = {
    'http:': new HttpAgent({ keepAlive: true, timeout: idleSocketMs, scheduling: 'lifo' }),
    'https:': new HttpsAgent({ keepAlive: true, timeout: idleSocketMs, scheduling: 'lifo' }),
  };
  return (input, init = {}) =>
    new Promise<Response>((resolve, reject) => {
      const url = new URL(input instanceof Request ? input.url : input);
      const { signal, body } = init;
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        return reject(new TypeError(`Unsupported protocol ${url.protocol}`));
      }
      if (body != null && typeof body !== 'string' && !(body instanceof Uint8Array)) {
        return reject(new TypeError('Only string and byte request bodies are supported'));
      }
      if (signal?.aborted) return reject(abortReason(signal));
      const headers: Record<string, string> = {};
      new Headers(init.headers).forEach((value, name) => (headers[name] = value));
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const request = send(url, {
        method: init.method ?? 'GET',
        headers,
        agent: agents[url.protocol],
      });
      let answer: IncomingMessage | null = null;
      const onAbort = (): void => {
        const reason = signal ? (abortReason(signal) as Error) : undefined;
        // The body, if it streams, fails with the abort itself (as fetch's does).
        answer?.destroy(reason);
        request.destroy(reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      request.once('close', () => signal?.removeEventListener('abort', onAbort));
      // Kept for the request's life: an error after the answer is the body's, and is a no-op here.
      request.on('error', reject);
      request.once('response', (response) => {
        answer = response;
        const status = response.statusCode ?? 0;
        const empty = status === 204 || status === 304 || request.method === 'HEAD';
        try {
          const stream = empty ? null : (Readable.toWeb(response) as ReadableStream<Uint8Array>);
          resolve(
            new Response(stream, {
              status,
              statusText: response.statusMessage,
              headers: headersOf(response),
            }),
          );
        } catch (error) {
          // A status fetch cannot represent (below 200, above 599): a broken answer.
          request.destroy();
          reject(error as Error);
        }
      });
      request.end(body ?? undefined);
    });
}
