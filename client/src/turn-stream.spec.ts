import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Frame } from '../../src/contract/index.js';
import { EaselClient } from './client.js';
import { EaselApiError, EaselConnectionError } from './errors.js';

/** What the test server saw of one request. */
interface Seen {
  method: string;
  url: string;
  lastEventId: string | null;
  body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, seen: Seen, count: number) => void;

let server: Server;
let baseUrl: string;
let seen: Seen[];
let handler: Handler;

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk: Buffer) => (body += chunk.toString()));
    req.on('end', () => {
      const header = req.headers['last-event-id'];
      const record = {
        method: req.method ?? '',
        url: req.url ?? '',
        lastEventId: typeof header === 'string' ? header : null,
        body,
      };
      seen.push(record);
      handler(req, res, record, seen.length);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

beforeEach(() => {
  seen = [];
});

const client = (idleTimeoutMs = 5000): EaselClient =>
  new EaselClient({
    baseUrl,
    token: 'T',
    retry: { retries: 2, baseDelayMs: 10, maxDelayMs: 20 },
    idleTimeoutMs,
  });

/** The frames of a small reply_text turn; ids 1..n. */
const TURN: Frame[] = [
  { type: 'meta', message_id: 'a1', action_type: 'reply_text' },
  { type: 'delta', message_id: 'a1', content: 'one ' },
  { type: 'delta', message_id: 'a1', content: 'two ' },
  { type: 'delta', message_id: 'a1', content: 'three' },
  { type: 'done', message_id: 'a1', truncated: false, usage: null, generation_id: null },
  {
    type: 'final',
    user_message_id: 'u1',
    message_ids: ['a1'],
    action_type: 'reply_text',
    replayed: false,
  },
];

const sse = (id: number, frame: unknown): string => `id: ${id}\ndata: ${JSON.stringify(frame)}\n\n`;

function openStream(res: ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
}

/** Writes frames `from..to` (1-based ids) of TURN. */
function writeFrames(res: ServerResponse, from: number, to: number): void {
  for (let id = from; id <= to; id++) res.write(sse(id, TURN[id - 1]));
}

function sendError(res: ServerResponse, status: number, code: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ code, message: `${code}!` }));
}

async function collect(iterable: AsyncIterable<Frame>): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const frame of iterable) frames.push(frame);
  return frames;
}

describe('TurnStream over a real socket', () => {
  it('re-POSTs with Last-Event-ID after the socket is cut and yields no duplicate', async () => {
    handler = (_req, res, _seen, count) => {
      openStream(res);
      if (count === 1) {
        writeFrames(res, 1, 3);
        // Let the frames reach the client, then cut the socket mid-turn.
        setTimeout(() => res.socket?.destroy(), 30);
        return;
      }
      // The resumed stream overlaps what was already delivered: the client must skip 2 and 3.
      writeFrames(res, 2, TURN.length);
      res.end();
    };
    const stream = client().turns.stream('s1', {
      content: 'count',
      client_msg_id: 'key-000001',
      on_disconnect: 'continue',
    });
    const frames = await collect(stream);

    expect(frames).toEqual(TURN);
    expect(stream.lastEventId).toBe(TURN.length);
    expect(seen.map((item) => [item.method, item.url, item.lastEventId])).toEqual([
      ['POST', '/v1/sessions/s1/turns', null],
      ['POST', '/v1/sessions/s1/turns', '3'],
    ]);
    expect(seen[1].body).toBe(seen[0].body);
    expect(JSON.parse(seen[0].body)).toEqual({
      content: 'count',
      client_msg_id: 'key-000001',
      on_disconnect: 'continue',
    });
  });

  it('resumes when the stream ends cleanly before its final frame', async () => {
    handler = (_req, res, _seen, count) => {
      openStream(res);
      if (count === 1) writeFrames(res, 1, 2);
      else writeFrames(res, 3, TURN.length);
      res.end();
    };
    const stream = client().turns.stream('s1', { content: 'x', client_msg_id: 'key-000002' });
    expect(await collect(stream)).toEqual(TURN);
    expect(seen.map((item) => item.lastEventId)).toEqual([null, '2']);
  });

  it('treats a silent connection as dropped (idle timeout)', async () => {
    handler = (_req, res, _seen, count) => {
      openStream(res);
      if (count === 1) {
        writeFrames(res, 1, 1);
        return; // then silence
      }
      writeFrames(res, 1, TURN.length);
      res.end();
    };
    const frames = await collect(
      client(150).turns.stream('s1', { content: 'x', client_msg_id: 'key-000003' }),
    );
    expect(frames).toEqual(TURN);
    expect(seen.map((item) => item.lastEventId)).toEqual([null, '1']);
  });

  it('gives up with an EaselConnectionError after the bounded retries', async () => {
    handler = (_req, res, _seen, count) => {
      if (count === 1) {
        openStream(res);
        writeFrames(res, 1, 1);
        setTimeout(() => res.socket?.destroy(), 30);
        return;
      }
      res.socket?.destroy();
    };
    const stream = client().turns.stream('s1', { content: 'x', client_msg_id: 'key-000004' });
    const frames: Frame[] = [];
    const failure = await (async () => {
      try {
        for await (const frame of stream) frames.push(frame);
      } catch (error) {
        return error;
      }
      return null;
    })();
    expect(frames).toEqual([TURN[0]]);
    expect(failure).toBeInstanceOf(EaselConnectionError);
    expect((failure as EaselConnectionError).lastEventId).toBe(1);
    // One first request and two reconnections (retries: 2), each carrying Last-Event-ID: 1.
    expect(seen.map((item) => item.lastEventId)).toEqual([null, '1', '1']);
  });

  it('throws a typed EaselApiError for a pre-stream error', async () => {
    handler = (_req, res) => sendError(res, 404, 'session_not_found');
    const stream = client().turns.stream('nope', { content: 'x', client_msg_id: 'key-000005' });
    await expect(collect(stream)).rejects.toMatchObject({
      name: 'EaselApiError',
      status: 404,
      code: 'session_not_found',
    });
    expect(seen).toHaveLength(1);
  });

  it('falls back to the v1 replay when the log expired before anything was delivered', async () => {
    handler = (_req, res, record, count) => {
      if (count === 1) {
        openStream(res);
        res.write(': ping\n\n');
        setTimeout(() => res.socket?.destroy(), 30);
      } else if (record.lastEventId !== null) {
        sendError(res, 410, 'resume_expired');
      } else {
        openStream(res);
        writeFrames(res, 1, TURN.length);
        res.end();
      }
    };
    const frames = await collect(
      client().turns.stream('s1', { content: 'x', client_msg_id: 'key-000006' }),
    );
    expect(frames).toEqual(TURN);
    expect(seen.map((item) => item.lastEventId)).toEqual([null, '0', null]);
  });

  it('skips frame types it does not know', async () => {
    handler = (_req, res) => {
      openStream(res);
      res.write(sse(1, TURN[0]));
      res.write(sse(2, { type: 'from_the_future', x: 1 }));
      for (let id = 2; id <= TURN.length; id++) res.write(sse(id + 1, TURN[id - 1]));
      res.end();
    };
    const frames = await collect(
      client().turns.stream('s1', { content: 'x', client_msg_id: 'key-000007' }),
    );
    expect(frames).toEqual(TURN);
  });

  it('on abort of a continue turn: calls the stop route, then rejects with the abort reason', async () => {
    handler = (req, res) => {
      if (req.url?.endsWith('/cancel')) {
        res.writeHead(202, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ status: 'cancelling' }));
        return;
      }
      openStream(res);
      writeFrames(res, 1, 2);
    };
    const controller = new AbortController();
    const stream = client().turns.stream(
      's1',
      { content: 'x', client_msg_id: 'key-000008', on_disconnect: 'continue' },
      { signal: controller.signal },
    );
    const frames: Frame[] = [];
    await expect(
      (async () => {
        for await (const frame of stream) {
          frames.push(frame);
          if (frames.length === 2) controller.abort();
        }
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(frames).toEqual(TURN.slice(0, 2));
    expect(seen.map((item) => [item.method, item.url])).toEqual([
      ['POST', '/v1/sessions/s1/turns'],
      ['POST', '/v1/sessions/s1/turns/key-000008/cancel'],
    ]);
  });

  it('on abort of a cancel-mode turn: just leaves (the server cancels on disconnect)', async () => {
    handler = (_req, res) => {
      openStream(res);
      writeFrames(res, 1, 1);
    };
    const controller = new AbortController();
    const stream = client().turns.stream(
      's1',
      { content: 'x', client_msg_id: 'key-000009' },
      { signal: controller.signal },
    );
    await expect(
      (async () => {
        for await (const frame of stream) if (frame.type === 'meta') controller.abort();
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });
    expect(seen.map((item) => item.url)).toEqual(['/v1/sessions/s1/turns']);
  });

  it('resume(): GET …/events with Last-Event-ID = after', async () => {
    handler = (_req, res, record) => {
      openStream(res);
      writeFrames(res, Number(record.lastEventId) + 1, TURN.length);
      res.end();
    };
    const stream = client().turns.resume('s1', 'key-000010', { after: 4 });
    expect(await collect(stream)).toEqual(TURN.slice(4));
    expect(seen.map((item) => [item.method, item.url, item.lastEventId])).toEqual([
      ['GET', '/v1/sessions/s1/turns/key-000010/events', '4'],
    ]);
  });
});

describe('REST errors', () => {
  it('carries the contract code and extras', async () => {
    handler = (_req, res) => {
      res.writeHead(409, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          code: 'duplicate_in_progress',
          message: 'running',
          original_user_message_id: 'u9',
        }),
      );
    };
    const failure = await client()
      .sessions.get('s1')
      .catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(EaselApiError);
    expect(failure).toMatchObject({ status: 409, code: 'duplicate_in_progress' });
    expect((failure as EaselApiError).body.original_user_message_id).toBe('u9');
    expect(seen[0].url).toBe('/v1/sessions/s1');
  });
});
