import { clientMsgId, createSession } from './harness/api.js';
import { type FakeUpstream } from './harness/fake-upstream.js';
import { closeAll, startWithUpstream, type TestApp } from './harness/app.js';
import { eventually, postTurn, types } from './harness/sse-client.js';

let upstream: FakeUpstream;
let app: TestApp;
let token: string;

/** `name{label="value",…}` (labels sorted) → value, from the Prometheus text format. */
type Samples = Map<string, number>;

function sampleKey(name: string, labels: Record<string, string> = {}): string {
  const pairs = Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([label, value]) => `${label}="${value}"`);
  return pairs.length === 0 ? name : `${name}{${pairs.join(',')}}`;
}

function parse(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    const match = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match) continue;
    const labels = Object.fromEntries(
      [...(match[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => [k, v]),
    );
    samples.set(sampleKey(match[1], labels), Number(match[3]));
  }
  return samples;
}

async function scrape(): Promise<Samples> {
  const response = await fetch(`${app.baseUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parse(await response.text());
}

/** How much each sample moved between two scrapes (absent counts as 0). */
function delta(before: Samples, after: Samples, name: string, labels: Record<string, string> = {}) {
  const id = sampleKey(name, labels);
  return (after.get(id) ?? 0) - (before.get(id) ?? 0);
}

const newSession = (): Promise<string> => createSession(app.baseUrl, token);

beforeAll(async () => {
  ({ upstream, app, token } = await startWithUpstream({
    CHAT_MODELS: 'chat/a',
    IMAGE_MODELS: 'img/a,img/b',
    IMAGE_COMPOSE_MODEL: 'compose/a',
    IMAGE_ATTEMPT_TIMEOUT_MS: '5000',
  }));
});

afterAll(() => closeAll(app, upstream));

it('echoes a sane X-Request-Id and replaces any other', async () => {
  const echoed = await fetch(`${app.baseUrl}/healthz`, { headers: { 'x-request-id': 'trace-42' } });
  expect(echoed.headers.get('x-request-id')).toBe('trace-42');
  const replaced = await fetch(`${app.baseUrl}/healthz`, {
    headers: { 'x-request-id': 'x'.repeat(65) },
  });
  expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
});

it('keeps /metrics out of the API docs', async () => {
  const document = (await (await fetch(`${app.baseUrl}/docs/openapi.json`)).json()) as {
    paths: Record<string, unknown>;
  };
  expect(Object.keys(document.paths)).not.toContain('/metrics');
});

it('counts turns, image attempts, latencies and open streams as turns run', async () => {
  const sessionId = await newSession();
  const before = await scrape();
  expect(before.get('easel_open_streams')).toBe(0);
  expect(before.has('process_cpu_user_seconds_total')).toBe(true);

  // A text turn, read raw to see the SSE response's own headers.
  const text = await fetch(`${app.baseUrl}/v1/sessions/${sessionId}/turns`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'x-request-id': 'turn-text-1',
    },
    body: JSON.stringify({ content: 'hello', client_msg_id: clientMsgId('metrics') }),
  });
  expect(text.headers.get('x-request-id')).toBe('turn-text-1');
  expect(await text.text()).toContain('"type":"final"');

  // A forced image turn: img/a answers 500 to both of its attempts (composed, original), img/b
  // draws on its first.
  upstream.script('img/a', { kind: 'status', status: 500 });
  const image = await postTurn(app.baseUrl, sessionId, token, {
    content: 'a lighthouse',
    client_msg_id: clientMsgId('metrics'),
    image: { force: true },
  });
  expect(types(image)).toContain('image');
  expect(types(image).at(-1)).toBe('final');

  // A turn whose client leaves mid-reply, while it is counted as open.
  upstream.script('chat/a', { kind: 'stream', delayMs: 500 });
  const client: { leave?: () => void } = {};
  const left = postTurn(
    app.baseUrl,
    sessionId,
    token,
    { content: 'a slow one', client_msg_id: clientMsgId('metrics') },
    { onFrame: (_frame, disconnect) => (client.leave ??= disconnect) },
  );
  await eventually(
    async () => client.leave !== undefined && (await scrape()).get('easel_open_streams') === 1,
    10_000,
  );
  client.leave?.();
  expect(types(await left)).not.toContain('done');

  // The slot is released once the cancelled turn is stored, just after the stream ends.
  const after = await eventually(async () => {
    const samples = await scrape();
    const cancelled = delta(before, samples, 'easel_turns_total', {
      action: 'reply_text',
      outcome: 'cancelled',
    });
    return samples.get('easel_open_streams') === 0 && cancelled === 1 ? samples : null;
  }, 10_000);

  const turns = (action: string, outcome: string) =>
    delta(before, after, 'easel_turns_total', { action, outcome });
  expect(turns('reply_text', 'final')).toBe(1);
  expect(turns('reply_text_image', 'final')).toBe(1);
  expect(turns('reply_text', 'cancelled')).toBe(1);
  expect(turns('reply_text', 'error')).toBe(0);

  const attempts = (model: string, outcome: string) =>
    delta(before, after, 'easel_image_attempts_total', { model, outcome });
  expect(attempts('img/a', 'status')).toBe(2);
  expect(attempts('img/b', 'ok')).toBe(1);
  expect(attempts('img/a', 'ok')).toBe(0);

  const observed = (kind: string, model: string) =>
    delta(before, after, 'easel_upstream_latency_seconds_count', { kind, model });
  // Three chat replies got a first token; the one that was left never got its total.
  expect(observed('chat_first_token', 'chat/a')).toBe(3);
  expect(observed('chat_total', 'chat/a')).toBe(2);
  expect(observed('image_attempt', 'img/a')).toBe(2);
  expect(observed('image_attempt', 'img/b')).toBe(1);
  expect(observed('compose', 'compose/a')).toBe(1);
  expect(
    delta(before, after, 'easel_upstream_latency_seconds_bucket', {
      kind: 'image_attempt',
      le: '+Inf',
      model: 'img/a',
    }),
  ).toBe(2);
});
