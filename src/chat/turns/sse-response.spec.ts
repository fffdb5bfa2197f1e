import { once } from 'node:events';
import {
  createServer,
  type IncomingMessage,
  request,
  type Server,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Request, Response } from 'express';
import { Observable, of, throwError } from 'rxjs';
import type { SseEvent } from './sse.js';
import { sendSse } from './sse-response.js';

type Open = (signal: AbortSignal) => Promise<Observable<SseEvent>>;

/** A server whose every request is answered by `sendSse(open)`; a throw is answered as 500. */
async function serve(open: Open, maxPendingChars = 1024 * 1024) {
  const outcomes: Array<Promise<unknown>> = [];
  const responses: ServerResponse[] = [];
  const server: Server = createServer((req, res) => {
    responses.push(res);
    const outcome = sendSse(req as Request, res as Response, open, maxPendingChars).then(
      () => 'ok',
      (error: unknown) => {
        res.statusCode = 500;
        res.end('answered by the filter');
        return error;
      },
    );
    outcomes.push(outcome);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  return {
    outcomes,
    responses,
    send: (method = 'GET') => {
      const call = request({ host: '127.0.0.1', port, method, path: '/' });
      call.end();
      return call;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

async function body(response: IncomingMessage): Promise<string> {
  let text = '';
  response.setEncoding('utf8');
  for await (const chunk of response) text += chunk as string;
  return text;
}

describe('sendSse', () => {
  it('sends the event-stream headers, an empty line, then each event as given; ends with them', async () => {
    const server = await serve(() =>
      Promise.resolve(of('id: 1\ndata: {"type":"meta"}\n\n', ': ping\n\n', 'id: 2\ndata: {}\n\n')),
    );
    const [response] = (await once(server.send(), 'response')) as [IncomingMessage];
    expect(response.statusCode).toBe(200);
    expect(response.headers).toMatchObject({
      'content-type': 'text/event-stream',
      connection: 'keep-alive',
      'cache-control': 'private, no-cache, no-store, must-revalidate, max-age=0, no-transform',
      pragma: 'no-cache',
      expires: '0',
      'x-accel-buffering': 'no',
    });
    expect(await body(response)).toBe(
      '\nid: 1\ndata: {"type":"meta"}\n\n: ping\n\nid: 2\ndata: {}\n\n',
    );
    expect(await server.outcomes[0]).toBe('ok');
    await server.close();
  });

  it('leaves a refusal (a throw from open, or a failure at subscription) unanswered for the filters', async () => {
    const refused = new Error('refused');
    const failed = new Error('failed at once');
    const answers = [Promise.reject(refused), Promise.resolve(throwError(() => failed))];
    const server = await serve(() => answers.shift()!);
    for (const expected of [refused, failed]) {
      const [response] = (await once(server.send(), 'response')) as [IncomingMessage];
      expect(response.statusCode).toBe(500);
      expect(await body(response)).toBe('answered by the filter');
      expect(await server.outcomes.at(-1)).toBe(expected);
    }
    await server.close();
  });

  it('a client leaving aborts the signal and tears the events down', async () => {
    let signal: AbortSignal | undefined;
    let tornDown = false;
    const server = await serve((given) => {
      signal = given;
      return Promise.resolve(
        new Observable<SseEvent>((subscriber) => {
          subscriber.next('id: 1\ndata: {}\n\n');
          return () => (tornDown = true);
        }),
      );
    });
    const call = server.send();
    const [response] = (await once(call, 'response')) as [IncomingMessage];
    response.once('data', () => call.destroy());
    expect(await server.outcomes[0]).toBe('ok');
    expect(signal?.aborted).toBe(true);
    expect(tornDown).toBe(true);
    await server.close();
  });

  describe('a client that does not read', () => {
    const event = `data: ${'x'.repeat(64 * 1024)}\n\n`;
    const LIMIT = 4 * 1024 * 1024;

    it('is dropped once more than the limit waits for it; its events are torn down', async () => {
      let tornDown = false;
      const server = await serve(
        () =>
          Promise.resolve(
            new Observable<SseEvent>((subscriber) => {
              const timer = setInterval(() => subscriber.next(event), 1);
              return () => {
                clearInterval(timer);
                tornDown = true;
              };
            }),
          ),
        LIMIT,
      );
      const call = server.send();
      const [response] = (await once(call, 'response')) as [IncomingMessage];
      response.pause();
      // The client, not reading, does not see its socket close: the server's side tells.
      expect(await server.outcomes[0]).toBe('ok');
      expect(server.responses[0].destroyed).toBe(true);
      expect(tornDown).toBe(true);
      call.destroy();
      await server.close();
    });

    it('is not dropped while it keeps up, though more than the limit passes while backed up', async () => {
      // Bursts of 3 MiB (the socket backs up on each), 100 ms apart: 12 MiB in all.
      const burst = Array.from({ length: 48 }, () => event);
      const server = await serve(
        () =>
          Promise.resolve(
            new Observable<SseEvent>((subscriber) => {
              let sent = 0;
              const timer = setInterval(() => {
                for (const item of burst) subscriber.next(item);
                if (++sent === 4) subscriber.complete();
              }, 100);
              return () => clearInterval(timer);
            }),
          ),
        LIMIT,
      );
      const [response] = (await once(server.send(), 'response')) as [IncomingMessage];
      expect((await body(response)).length).toBe(1 + 4 * burst.length * event.length);
      expect(await server.outcomes[0]).toBe('ok');
      await server.close();
    });
  });

  it('answers HEAD with the headers alone, never subscribing, and gives back what open reserved', async () => {
    let signal: AbortSignal | undefined;
    let subscribed = false;
    const server = await serve((given) => {
      signal = given;
      return Promise.resolve(
        new Observable<SseEvent>(() => {
          subscribed = true;
        }),
      );
    });
    const [response] = (await once(server.send('HEAD'), 'response')) as [IncomingMessage];
    expect(response.headers['content-type']).toBe('text/event-stream');
    expect(await body(response)).toBe('');
    expect(await server.outcomes[0]).toBe('ok');
    expect(subscribed).toBe(false);
    expect(signal?.aborted).toBe(true);
    await server.close();
  });

  it('ends a stream that fails after its headers without writing anything for the failure', async () => {
    const server = await serve(() =>
      Promise.resolve(
        new Observable<SseEvent>((subscriber) => {
          subscriber.next('id: 1\ndata: {}\n\n');
          setTimeout(() => subscriber.error(new Error('storage failed')), 5);
        }),
      ),
    );
    const [response] = (await once(server.send(), 'response')) as [IncomingMessage];
    expect(await body(response)).toBe('\nid: 1\ndata: {}\n\n');
    expect(await server.outcomes[0]).toBe('ok');
    await server.close();
  });
});
