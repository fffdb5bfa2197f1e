import { turnBody } from './harness/api.js';
import { useUpstream } from './harness/app.js';
import { eventually, types } from './harness/sse-client.js';

const suite = useUpstream({
  CHAT_MODELS: 'chat/a',
  IMAGE_MODELS: 'img/a,img/b',
  IMAGE_COMPOSE_MODEL: 'compose/a',
  IMAGE_ATTEMPT_TIMEOUT_MS: '5000',
});

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
  const response = await fetch(`${suite.baseUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parse(await response.text());
}

/** How much each sample moved between two scrapes (absent counts as 0). */
function delta(before: Samples, after: Samples, name: string, labels: Record<string, string> = {}) {
  const id = sampleKey(name, labels);
  return (after.get(id) ?? 0) - (before.get(id) ?? 0);
}

it('echoes a sane X-Request-Id and replaces any other', async () => {
  const echoed = await fetch(`${suite.baseUrl}/healthz`, {
    headers: { 'x-request-id': 'trace-42' },
  });
  expect(echoed.headers.get('x-request-id')).toBe('trace-42');
  const replaced = await fetch(`${suite.baseUrl}/healthz`, {
    headers: { 'x-request-id': 'x'.repeat(65) },
  });
  expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
});

it('keeps /metrics out of the API docs', async () => {
  const document = (await (await fetch(`${suite.baseUrl}/docs/openapi.json`)).json()) as {
    paths: Record<string, unknown>;
  };
  expect(Object.keys(document.paths)).not.toContain('/metrics');
});

it('counts turns, image attempts, latencies and open streams as turns run', async () => {
  const sessionId = await suite.session();
  const before = await scrape();
  expect(before.get('easel_open_streams')).toBe(0);
  expect(before.has('process_cpu_user_seconds_total')).toBe(true);

  // A text turn, read raw to see the SSE response's own headers.
  const text = await fetch(`${suite.baseUrl}/v1/sessions/${sessionId}/turns`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${suite.token}`,
      'content-type': 'application/json',
      'x-request-id': 'turn-text-1',
    },
    body: JSON.stringify(turnBody('hello')),
  });
  expect(text.headers.get('x-request-id')).toBe('turn-text-1');
  expect(await text.text()).toContain('"type":"final"');

  // A forced image turn: img/a answers 500 to both of its attempts (composed, original), img/b
  // draws on its first.
  suite.upstream.script('img/a', { kind: 'status', status: 500 });
  const image = await suite.turn(sessionId, turnBody('a lighthouse', { image: { force: true } }));
  expect(types(image)).toContain('image');
  expect(types(image).at(-1)).toBe('final');

  // A turn whose client leaves mid-reply, while it is counted as open.
  suite.upstream.script('chat/a', { kind: 'stream', delayMs: 500 });
  const client: { leave?: () => void } = {};
  const left = suite.turn(sessionId, turnBody('a slow one'), {
    onFrame: (_frame, disconnect) => (client.leave ??= disconnect),
  });
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

  // How much each sample moved, by metric: [labels, delta].
  const expected: Record<string, [Record<string, string>, number][]> = {
    easel_turns_total: [
      [{ action: 'reply_text', outcome: 'final' }, 1],
      [{ action: 'reply_text_image', outcome: 'final' }, 1],
      [{ action: 'reply_text', outcome: 'cancelled' }, 1],
      [{ action: 'reply_text', outcome: 'error' }, 0],
    ],
    easel_image_attempts_total: [
      [{ model: 'img/a', outcome: 'status' }, 2],
      [{ model: 'img/b', outcome: 'ok' }, 1],
      [{ model: 'img/a', outcome: 'ok' }, 0],
    ],
    // Three chat replies got a first token; the one that was left never got its total.
    easel_upstream_latency_seconds_count: [
      [{ kind: 'chat_first_token', model: 'chat/a' }, 3],
      [{ kind: 'chat_total', model: 'chat/a' }, 2],
      [{ kind: 'image_attempt', model: 'img/a' }, 2],
      [{ kind: 'image_attempt', model: 'img/b' }, 1],
      [{ kind: 'compose', model: 'compose/a' }, 1],
    ],
    easel_upstream_latency_seconds_bucket: [
      [{ kind: 'image_attempt', le: '+Inf', model: 'img/a' }, 2],
    ],
  };
  const moved = Object.fromEntries(
    Object.entries(expected).map(([name, rows]) => [
      name,
      rows.map(([labels]) => [labels, delta(before, after, name, labels)]),
    ]),
  );
  expect(moved).toEqual(expected);
});
