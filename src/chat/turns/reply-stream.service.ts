import { performance } from 'node:perf_hooks';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { fromAbortable } from '../../common/abortable.js';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { Usage } from '../../contract/index.js';
import { MetricsService } from '../../observability/metrics.service.js';
import {
  type ChatMessage,
  LLM_PROVIDER,
  type LlmProvider,
  ProviderError,
} from '../../provider/llm-provider.js';
import { TurnFailure } from './turn-failure.js';

export type ReplyEvent =
  /** The first token arrived from `model`: the fallback chain is settled. */
  | { type: 'start'; model: string }
  | { type: 'delta'; content: string }
  | { type: 'end'; usage: Usage | null; generationId: string | null };

/** Streams one assistant reply, falling back through CHAT_MODELS until one yields a token. */
@Injectable()
export class ReplyStreamService {
  private readonly logger = new Logger(ReplyStreamService.name);

  constructor(
    @Inject(LLM_PROVIDER) private readonly provider: LlmProvider,
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly metrics: MetricsService,
  ) {}

  /** Cold: each subscription is one upstream call chain; unsubscribing aborts it. */
  stream$(messages: readonly ChatMessage[]): Observable<ReplyEvent> {
    return fromAbortable<ReplyEvent>((emit, signal) => this.run(messages, signal, emit));
  }

  /** Tries CHAT_MODELS in order until one yields a token; rejects with a {@link TurnFailure}. */
  private async run(
    messages: readonly ChatMessage[],
    signal: AbortSignal,
    emit: (event: ReplyEvent) => void,
  ): Promise<void> {
    const failures: ProviderError[] = [];
    const maxChars = this.config.replyMaxChars;
    for (const model of this.config.chatModels) {
      let started = false;
      let length = 0;
      const sent = performance.now();
      try {
        for await (const chunk of this.provider.streamChat({ model, messages, signal })) {
          if (chunk.type === 'delta') {
            length += chunk.content.length;
            // Leaving the loop ends the provider's stream, which aborts the upstream call. The
            // delta that would overshoot is dropped, so what is stored never exceeds the cap.
            if (length > maxChars) {
              throw new TurnFailure(
                'upstream_unavailable',
                `${model}'s reply grew past REPLY_MAX_CHARS (${maxChars} characters)`,
              );
            }
            if (!started) {
              this.metrics.upstreamLatency('chat_first_token', model, performance.now() - sent);
              emit({ type: 'start', model });
            }
            started = true;
            emit({ type: 'delta', content: chunk.content });
          } else if (started) {
            this.metrics.upstreamLatency('chat_total', model, performance.now() - sent);
            emit({ type: 'end', usage: chunk.usage, generationId: chunk.generationId });
            return;
          } else {
            throw new ProviderError('stream', `${model} answered with an empty reply`);
          }
        }
        throw new ProviderError('transport', `${model} ended its stream without a final chunk`);
      } catch (error) {
        if (signal.aborted) throw signal.reason;
        if (error instanceof TurnFailure) throw error;
        const failure =
          error instanceof ProviderError
            ? error
            : new ProviderError(
                'transport',
                error instanceof Error ? error.message : String(error),
              );
        if (started) {
          throw new TurnFailure(
            'upstream_unavailable',
            `${model} failed mid-reply: ${failure.message}`,
          );
        }
        this.logger.warn(`chat model ${model} failed before its first token: ${failure.message}`);
        failures.push(failure);
      }
    }
    const rateLimited = failures.length > 0 && failures.every((failure) => failure.status === 429);
    throw new TurnFailure(
      rateLimited ? 'rate_limited' : 'upstream_unavailable',
      `every chat model failed: ${failures.map((failure) => failure.message).join('; ')}`,
    );
  }
}
