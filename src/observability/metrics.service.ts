import { Inject, Injectable } from '@nestjs/common';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { Attempt } from '../contract/index.js';

export type TurnOutcome = 'final' | 'error' | 'cancelled';
export type LatencyKind = 'chat_first_token' | 'chat_total' | 'image_attempt' | 'compose';

/** Seconds: a first token in tens of ms up to an image attempt near its timeout. */
const LATENCY_BUCKETS = [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120];

/**
 * The Prometheus metrics of one app. Each instance has a registry of its own (not prom-client's
 * global one), so several apps in one process do not collide.
 */
@Injectable()
export class MetricsService {
  readonly registry = new Registry();
  /** Model labels are limited to configured models: a request may name any model. */
  private readonly models: ReadonlySet<string>;
  private readOpenStreams = (): number => 0;

  private readonly turns = new Counter({
    name: 'easel_turns_total',
    help: 'Turn streams ended, by action and outcome (final, error, cancelled).',
    labelNames: ['action', 'outcome'] as const,
    registers: [this.registry],
  });

  private readonly imageAttempts = new Counter({
    name: 'easel_image_attempts_total',
    help: 'Image generation attempts, by model and outcome.',
    labelNames: ['model', 'outcome'] as const,
    registers: [this.registry],
  });

  private readonly latency = new Histogram({
    name: 'easel_upstream_latency_seconds',
    help: 'Upstream latency: chat first token and total, each image attempt, prompt composing.',
    labelNames: ['kind', 'model'] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });

  private readonly openStreams: Gauge = new Gauge({
    name: 'easel_open_streams',
    help: 'Turn streams open in this process.',
    registers: [this.registry],
    collect: (): void => this.openStreams.set(this.readOpenStreams()),
  });

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.models = new Set([
      ...config.chatModels,
      ...config.image.models,
      ...(config.image.composeModel === null ? [] : [config.image.composeModel]),
    ]);
    collectDefaultMetrics({ register: this.registry });
  }

  /** The gauge is read at scrape time from `read`. */
  trackOpenStreams(read: () => number): void {
    this.readOpenStreams = read;
  }

  turnEnded(action: string, outcome: TurnOutcome): void {
    this.turns.inc({ action, outcome });
  }

  imageAttempt(attempt: Pick<Attempt, 'model' | 'outcome' | 'ms'>): void {
    this.imageAttempts.inc({ model: this.label(attempt.model), outcome: attempt.outcome });
    this.upstreamLatency('image_attempt', attempt.model, attempt.ms);
  }

  upstreamLatency(kind: LatencyKind, model: string, ms: number): void {
    this.latency.observe({ kind, model: this.label(model) }, ms / 1000);
  }

  /** The Prometheus text exposition of every metric. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  private label(model: string): string {
    return this.models.has(model) ? model : 'other';
  }
}
