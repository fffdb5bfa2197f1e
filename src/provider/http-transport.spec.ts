import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { createHttpTransport, type Fetch } from './http-transport.js';

interface Seen {
  readonly method: string;
  readonly headers: IncomingMessage['headers'];
  readonly body: string;
  readonly socket: Socket;
  /** Resolves when the request's socket closes. */
  readonly closed: Promise<void>;
}

/** A local server whose answer each test scripts; it records what it received. */
async function startServer(
  answer: (res: ServerResponse, seen: Seen) => void,
): Promise<{ url: string; seen: Seen[]; server: Server }> {
  const seen: Seen[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (part: string) => (body += part));
    req.on('end', () => {
      const socket = req.socket;
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      const entry = { method: req.method ?? '', headers: req.headers, body, socket, closed };
      seen.push(entry);
      answer(res, entry);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, seen, server };
}

async function readAll(response: Response): Promise<string[]> {
  const parts: string[] = [];
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return parts;
    parts.push(decoder.decode(value));
  }
}

describe('createHttpTransport', () => {
  let fetch: Fetch;
  const servers: Server[] = [];
  const serve = async (answer: (res: ServerResponse, seen: Seen) => void) => {
    const started = await startServer(answer);
    servers.push(started.server);
    return started;
  };

  beforeEach(() => {
    fetch = createHttpTransport();
  });

  afterEach(async () => {
    for (const server of servers.splice(0)) {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('sends the method, headers and body, and answers status, headers and body', async () => {
    const { url, seen } = await serve((res) => {
      res.writeHead(201, 'Made', { 'content-type': 'application/json', 'x-request-id': 'r-1' });
      res.end('{"ok":true}');
    });
    const response = await fetch(`${url}/v1/things`, {
      method: 'POST',
      headers: new Headers({ authorization: 'Bearer k', 'content-type': 'application/json' }),
      body: '{"a":"é"}',
    });
    expect(seen[0]).toMatchObject({
      method: 'POST',
      body: '{"a":"é"}',
      headers: {
        authorization: 'Bearer k',
        'content-length': String(Buffer.byteLength('{"a":"é"}')),
      },
    });
    expect(response.status).toBe(201);
    expect(response.statusText).toBe('Made');
    expect(response.headers.get('x-request-id')).toBe('r-1');
    expect(await response.json()).toEqual({ ok: true });
  });

  it('hands each body part over as it arrives, before the answer ends', async () => {
    let finish = (): void => undefined;
    const { url } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
      finish = () => res.end('data: [DONE]\n\n');
    });
    const response = await fetch(url, { method: 'POST', body: '{}' });
    const reader = response.body!.getReader();
    const first = await reader.read();
    expect(new TextDecoder().decode(first.value)).toBe('data: 1\n\n');
    finish();
    const second = await reader.read();
    expect(new TextDecoder().decode(second.value)).toBe('data: [DONE]\n\n');
    expect((await reader.read()).done).toBe(true);
  });

  it('keeps the connection for the next request', async () => {
    const { url, seen } = await serve((res) => res.end('ok'));
    await readAll(await fetch(url));
    await readAll(await fetch(url));
    expect(seen).toHaveLength(2);
    expect(seen[1].socket.remotePort).toBe(seen[0].socket.remotePort);
  });

  it('waits for a slow answer past the idle-socket time, then closes the idle socket', async () => {
    fetch = createHttpTransport(50);
    const { url, seen } = await serve((res) => {
      setTimeout(() => res.end('late'), 200);
    });
    expect(await readAll(await fetch(url))).toEqual(['late']);
    await seen[0].closed;
  });

  it('closes the socket and rejects when aborted before the answer', async () => {
    const { url, seen } = await serve(() => undefined);
    const abort = new AbortController();
    const answer = fetch(url, { method: 'POST', body: '{}', signal: abort.signal });
    while (seen.length === 0) await new Promise((resolve) => setTimeout(resolve, 5));
    abort.abort();
    await expect(answer).rejects.toMatchObject({ name: 'AbortError' });
    await seen[0].closed;
  });

  it('closes the socket and fails the body when aborted while the body streams', async () => {
    const { url, seen } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n');
    });
    const abort = new AbortController();
    const response = await fetch(url, { signal: abort.signal });
    const reader = response.body!.getReader();
    await reader.read();
    abort.abort();
    await expect(reader.read()).rejects.toMatchObject({ name: 'AbortError' });
    await seen[0].closed;
  });

  it('rejects at once for a signal that is already aborted, sending nothing', async () => {
    const { url, seen } = await serve((res) => res.end());
    await expect(fetch(url, { signal: AbortSignal.abort() })).rejects.toMatchObject({
      name: 'AbortError',
    });
    expect(seen).toHaveLength(0);
  });

  it('rejects when the connection is refused, and when the answer is cut', async () => {
    const { url, server } = await serve((res) => res.socket?.destroy());
    await expect(fetch(url)).rejects.toThrow(/socket hang up|ECONNRESET/);
    server.close();
    await new Promise((resolve) => setTimeout(resolve, 10));
    await expect(fetch(url)).rejects.toThrow(/ECONNREFUSED/);
  });

  it('fails the body of an answer cut while streaming', async () => {
    const { url } = await serve((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write('data: 1\n\n', () => res.socket?.destroy());
    });
    const response = await fetch(url);
    await expect(readAll(response)).rejects.toThrow();
  });

  it('refuses request bodies it cannot send', async () => {
    const { url, seen } = await serve((res) => res.end());
    const form = new FormData();
    await expect(fetch(url, { method: 'POST', body: form })).rejects.toThrow(TypeError);
    expect(seen).toHaveLength(0);
  });
});
