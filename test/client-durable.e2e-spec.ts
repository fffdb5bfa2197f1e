import {
  EaselClient,
  type EaselClientOptions,
  type Frame,
  reduceFrames,
} from '../client/src/index.js';
import { turnBody } from './harness/api.js';
import { useUpstream, wordChunks } from './harness/app.js';
import { buildClient, spawnChat } from './harness/client-cli.js';
import { eventually } from './harness/sse-client.js';

/**
 * The client's durable-turn behaviour (docs/api-reference.md §8a) against the real server: resuming after the
 * connection is cut, and stopping through the stop route (library and CLI).
 */

const CHUNKS = wordChunks(12);
const REPLY = CHUNKS.join('');

beforeAll(buildClient, 120_000);
const suite = useUpstream({
  CHAT_MODELS: 'chat',
  IMAGE_MODELS: 'p1',
  TURN_TIMEOUT_MS: '10000',
  SSE_HEARTBEAT_MS: '200',
});

/** A client of the suite's user, over `fetch` unless told otherwise. */
const easelClient = (options: Partial<EaselClientOptions> = {}): EaselClient =>
  new EaselClient({ baseUrl: suite.baseUrl, token: suite.token, ...options });

interface Sent {
  url: string;
  method: string;
  lastEventId: string | null;
}

/**
 * A fetch that records requests and, for the first turn POST, cuts the connection for real
 * (aborts the request, so the server sees its socket close) after `cutAfter` frames arrived.
 */
function cuttingFetch(cutAfter: number, sent: Sent[]): typeof fetch {
  let cut = false;
  return async (input, init) => {
    const url = String(input);
    const headers = new Headers(init?.headers);
    sent.push({ url, method: init?.method ?? 'GET', lastEventId: headers.get('last-event-id') });
    if (cut || !url.endsWith('/turns') || init?.method !== 'POST') return fetch(input, init);
    cut = true;
    const controller = new AbortController();
    init.signal?.addEventListener('abort', () => controller.abort());
    const response = await fetch(input, { ...init, signal: controller.signal });
    const reader = response.body!.getReader();
    let frames = 0;
    const body = new ReadableStream<Uint8Array>({
      async pull(stream) {
        const { value, done } = await reader.read();
        if (done) return stream.close();
        stream.enqueue(value);
        frames += new TextDecoder().decode(value).split('\n\n').length - 1;
        if (frames >= cutAfter) {
          controller.abort();
          stream.error(new TypeError('network connection lost'));
        }
      },
    });
    return new Response(body, { status: response.status, headers: response.headers });
  };
}

describe('resume after a cut connection', () => {
  it('reconnects with Last-Event-ID and delivers every frame exactly once', async () => {
    suite.upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 40 });
    const sent: Sent[] = [];
    const easel = easelClient({ fetch: cuttingFetch(4, sent), retry: { baseDelayMs: 50 } });
    const session = await easel.sessions.create();
    const stream = easel.turns.stream(
      session.id,
      turnBody('count slowly', { on_disconnect: 'continue' }),
    );
    const frames: Frame[] = [];
    for await (const frame of stream) frames.push(frame);

    const turns = sent.filter((request) => request.url.endsWith('/turns'));
    expect(turns.length).toBeGreaterThanOrEqual(2);
    expect(turns[0].lastEventId).toBeNull();
    expect(Number(turns[1].lastEventId)).toBeGreaterThanOrEqual(3);

    const state = reduceFrames(frames);
    expect(state.status).toBe('complete');
    expect(state.messages[0].text).toBe(REPLY);
    expect(stream.lastEventId).toBe(frames.length);
    const [assistant] = (await easel.messages.list(session.id)).items;
    expect([assistant.content, assistant.status]).toEqual([REPLY, 'complete']);
  });

  it('resume() after the end replays the same frames from the log', async () => {
    const easel = easelClient();
    const session = await easel.sessions.create();
    const body = turnBody('hi');
    const first: Frame[] = [];
    for await (const frame of easel.turns.stream(session.id, body)) first.push(frame);
    const again: Frame[] = [];
    for await (const frame of easel.turns.resume(session.id, body.client_msg_id, { after: 1 }))
      again.push(frame);
    expect(again).toEqual(first.slice(1));
  });
});

describe('stop', () => {
  it('aborting a continue-mode stream calls the stop route; the turn is stored cancelled', async () => {
    suite.upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 100 });
    const easel = easelClient();
    const session = await easel.sessions.create();
    const controller = new AbortController();
    const body = turnBody('long', { on_disconnect: 'continue' });
    const stream = easel.turns.stream(session.id, body, { signal: controller.signal });
    await expect(
      (async () => {
        for await (const frame of stream) if (frame.type === 'delta') controller.abort();
      })(),
    ).rejects.toMatchObject({ name: 'AbortError' });

    const stored = await eventually(async () => {
      const [assistant] = (await easel.messages.list(session.id)).items;
      return assistant?.role === 'assistant' && assistant.status === 'cancelled' && assistant;
    });
    expect(REPLY.startsWith(stored.content)).toBe(true);
    expect(await easel.turns.cancel(session.id, body.client_msg_id)).toEqual({
      status: 'cancelled',
    });
  });

  it('Ctrl-C in the CLI stops the turn through the stop route', async () => {
    suite.upstream.script('chat', { kind: 'stream', chunks: CHUNKS, delayMs: 150 });
    const child = spawnChat(suite.token, ['--url', suite.baseUrl, 'tell me more']);
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', resolve));
    await new Promise<void>((resolve) =>
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        resolve();
      }),
    );
    child.kill('SIGINT');

    expect(await exited).toBe(130);
    // The server's own `error{cancelled}` frame arrived (not just a local abort).
    expect(stderr).toMatch(/^stopped: .+/m);
    expect(REPLY.startsWith(stdout.trim())).toBe(true);
    const sessionId = /^session: (\S+)/m.exec(stderr)![1];
    const [assistant] = (await easelClient().messages.list(sessionId)).items;
    expect(assistant.status).toBe('cancelled');
  });
});
