import { NEVER, Observable, concat, of, throwError } from 'rxjs';
import type { Frame } from '../chat/turns/frames.js';
import { loadConfig } from '../config/app-config.js';
import { MetricsService } from './metrics.service.js';
import { countTurn } from '../chat/turns/turn-metrics.js';

const config = loadConfig({
  LLM_BASE_URL: 'http://127.0.0.1:1/api/v1',
  LLM_API_KEY: 'k',
  CHAT_MODELS: 'chat/a',
  IMAGE_MODELS: 'img/a,img/b',
  IMAGE_COMPOSE_MODEL: 'compose/a',
});

async function value(
  metrics: MetricsService,
  name: string,
  labels: Record<string, string> = {},
): Promise<number> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) throw new Error(`no metric ${name}`);
  const { values } = await metric.get();
  const found = values.find((entry) =>
    Object.entries(labels).every(([key, wanted]) => entry.labels[key] === wanted),
  );
  return found?.value ?? 0;
}

const message = (data: Frame): Frame => data;
const meta = message({ type: 'meta', message_id: 'm', action_type: 'reply_text_image' });
const final = message({
  type: 'final',
  user_message_id: 'u',
  message_ids: ['m'],
  action_type: 'reply_text_image',
  replayed: false,
});
const error = message({
  type: 'error',
  code: 'upstream_unavailable',
  retryable: true,
  message: 'x',
  user_message: 'y',
});

describe('MetricsService', () => {
  it('keeps each instance in a registry of its own', async () => {
    const a = new MetricsService(config);
    const b = new MetricsService(config);
    a.turnEnded('reply_text', 'final');
    expect(await value(a, 'easel_turns_total', { action: 'reply_text' })).toBe(1);
    expect(await value(b, 'easel_turns_total', { action: 'reply_text' })).toBe(0);
  });

  it('renders the Prometheus text with its own and the default process metrics', async () => {
    const metrics = new MetricsService(config);
    metrics.imageAttempt({ model: 'img/a', outcome: 'status', ms: 1500 });
    const text = await metrics.render();
    expect(text).toContain('easel_image_attempts_total{model="img/a",outcome="status"} 1');
    expect(text).toContain(
      'easel_upstream_latency_seconds_bucket{le="2.5",kind="image_attempt",model="img/a"} 1',
    );
    expect(text).toContain('# TYPE easel_open_streams gauge');
    expect(text).toContain('process_cpu_user_seconds_total');
  });

  it('labels models that are not configured as other', async () => {
    const metrics = new MetricsService(config);
    metrics.imageAttempt({ model: 'someone/anything', outcome: 'ok', ms: 10 });
    metrics.upstreamLatency('chat_first_token', 'chat/a', 10);
    expect(await value(metrics, 'easel_image_attempts_total', { model: 'other' })).toBe(1);
    expect(await metrics.render()).toContain(
      'easel_upstream_latency_seconds_count{kind="chat_first_token",model="chat/a"} 1',
    );
  });

  it('reads open streams at scrape time', async () => {
    const metrics = new MetricsService(config);
    let open = 2;
    metrics.trackOpenStreams(() => open);
    expect(await value(metrics, 'easel_open_streams')).toBe(2);
    open = 0;
    expect(await value(metrics, 'easel_open_streams')).toBe(0);
  });
});

describe('countTurn', () => {
  async function outcome(frames$: Observable<Frame>, unsubscribeEarly = false) {
    const metrics = new MetricsService(config);
    const subscription = frames$.pipe(countTurn(metrics)).subscribe({ error: () => undefined });
    if (unsubscribeEarly) subscription.unsubscribe();
    const metric = metrics.registry.getSingleMetric('easel_turns_total');
    const { values } = (await metric?.get()) ?? { values: [] };
    return values.map((entry) => [entry.labels.action, entry.labels.outcome, entry.value]);
  }

  it('counts final, error and cancelled with the action seen so far', async () => {
    expect(await outcome(of(meta, final))).toEqual([['reply_text_image', 'final', 1]]);
    expect(await outcome(of(meta, error))).toEqual([['reply_text_image', 'error', 1]]);
    expect(await outcome(of(error))).toEqual([['unknown', 'error', 1]]);
    expect(await outcome(concat(of(meta), NEVER), true)).toEqual([
      ['reply_text_image', 'cancelled', 1],
    ]);
    expect(await outcome(NEVER, true)).toEqual([['unknown', 'cancelled', 1]]);
    expect(await outcome(throwError(() => new Error('bug')))).toEqual([['unknown', 'error', 1]]);
  });

  it('counts nothing until subscribed', async () => {
    const metrics = new MetricsService(config);
    of(final).pipe(countTurn(metrics));
    expect(await metrics.render()).not.toMatch(/^easel_turns_total\{/m);
  });
});
