import { performance } from 'node:perf_hooks';
import { Inject, Injectable, Logger } from '@nestjs/common';
import { Observable } from 'rxjs';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { StoredAttempt } from '../database/schema.js';
import { MetricsService } from '../observability/metrics.service.js';
import { IMAGE_PROVIDER, type ImageEvent, type ImageProvider } from '../provider/image-provider.js';
import { ProviderError } from '../provider/llm-provider.js';
import { DeadlineExceededError, runWithDeadline } from './deadline.js';
import { decodeImageDataUrl, type DecodedImage } from './image-decoder.js';
import type {
  AttemptStart,
  GenerateOptions,
  GeneratedImage,
  ImageGenEvent,
  ImageGenRequest,
  ImageGenResult,
  ImageVariant,
} from './image-gen.types.js';
import { PromptComposer } from './prompt-composer.service.js';

export interface PlannedAttempt extends AttemptStart {
  /** What this attempt sends: the composed prompt for `composed`, the subject otherwise. */
  readonly prompt: string;
}

export interface PlanInput {
  /** The request's own model, tried first. */
  readonly model: string | null;
  /** The configured chain (`IMAGE_MODELS`). */
  readonly models: readonly string[];
  readonly subject: string;
  /** The composer's prompt, or null when composing was off or failed. */
  readonly composedPrompt: string | null;
}

/** The requested model, then the configured chain, each once. */
export function candidateModels(model: string | null, models: readonly string[]): string[] {
  return [...new Set([...(model === null ? [] : [model]), ...models])];
}

/**
 * The whole attempt plan, fixed before the first attempt (so `total` is known): per candidate,
 * `composed` then `original` when the composed prompt says something else than the subject,
 * otherwise one `single`.
 */
export function planAttempts(input: PlanInput): PlannedAttempt[] {
  const composed = input.composedPrompt?.trim() || null;
  const variants: { variant: ImageVariant; prompt: string }[] =
    composed !== null && composed !== input.subject.trim()
      ? [
          { variant: 'composed', prompt: composed },
          { variant: 'original', prompt: input.subject },
        ]
      : [{ variant: 'single', prompt: input.subject }];
  const steps = candidateModels(input.model, input.models).flatMap((model) =>
    variants.map((step) => ({ model, ...step })),
  );
  return steps.map((step, i) => ({ ...step, index: i + 1, total: steps.length }));
}

interface AttemptReport {
  readonly record: StoredAttempt;
  readonly image: (DecodedImage & { readonly generationId: string | null }) | null;
}

/** Draws one image through the fallback chain of image models. */
@Injectable()
export class ImageGenService {
  private readonly logger = new Logger(ImageGenService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(IMAGE_PROVIDER) private readonly provider: ImageProvider,
    @Inject(PromptComposer) private readonly composer: PromptComposer,
    @Inject(MetricsService) private readonly metrics: MetricsService,
  ) {}

  /**
   * Composes the prompt, then walks the plan until an attempt yields a decodable image.
   * Never rejects for upstream failures (they are attempts); rejects with `signal.reason` as soon
   * as `signal` aborts, since then nobody is waiting for a result.
   */
  async generate(request: ImageGenRequest, options: GenerateOptions = {}): Promise<ImageGenResult> {
    const { signal, onAttempt } = options;
    signal?.throwIfAborted();
    if (candidateModels(request.model, this.config.image.models).length === 0) {
      return {
        ok: false,
        reason: 'config_error',
        message: 'No image model is configured.',
        attempts: [],
      };
    }

    const composedPrompt = await this.composer.compose(
      { subject: request.subject, context: request.context },
      signal,
    );
    signal?.throwIfAborted();
    const plan = planAttempts({
      model: request.model,
      models: this.config.image.models,
      subject: request.subject,
      composedPrompt,
    });

    const attempts: StoredAttempt[] = [];
    for (const step of plan) {
      onAttempt?.({
        model: step.model,
        variant: step.variant,
        index: step.index,
        total: step.total,
      });
      const { record, image } = await this.attempt(step, request, signal);
      attempts.push(record);
      this.metrics.imageAttempt(record);
      if (image) {
        const generated: GeneratedImage = {
          bytes: image.bytes,
          mime: image.mime,
          width: image.width,
          height: image.height,
          model: step.model,
          prompt: step.prompt,
          generationId: image.generationId,
        };
        return { ok: true, image: generated, attempts };
      }
    }

    // `zero_images` only when every model answered but drew nothing (likely the prompt was
    // refused, so retrying will not help); any other mix of failures is `chain_exhausted`.
    const reason = attempts.every((a) => a.outcome === 'zero_images')
      ? 'zero_images'
      : 'chain_exhausted';
    return {
      ok: false,
      reason,
      message: `All ${attempts.length} image attempts failed (${attempts
        .map((a) => `${a.model}/${a.variant}: ${a.outcome}`)
        .join(', ')}).`,
      attempts,
    };
  }

  /**
   * `generate` as a stream: one `attempt` event per attempt, then exactly one `done`.
   * Unsubscribing aborts whatever provider call is in flight (composer or image attempt).
   */
  generate$(request: ImageGenRequest): Observable<ImageGenEvent> {
    return new Observable<ImageGenEvent>((subscriber) => {
      const controller = new AbortController();
      let settled = false;
      this.generate(request, {
        signal: controller.signal,
        onAttempt: (attempt) => subscriber.next({ type: 'attempt', ...attempt }),
      }).then(
        (result) => {
          settled = true;
          subscriber.next({ type: 'done', result });
          subscriber.complete();
        },
        (error: unknown) => {
          settled = true;
          subscriber.error(error);
        },
      );
      // Only a consumer that leaves early has a call to abort.
      return () =>
        settled || controller.abort(new ProviderError('aborted', 'Image generation was cancelled'));
    });
  }

  private async attempt(
    step: PlannedAttempt,
    request: ImageGenRequest,
    signal: AbortSignal | undefined,
  ): Promise<AttemptReport> {
    const { model, variant } = step;
    const started = performance.now();
    const record = (fields: OutcomeFields): StoredAttempt => ({
      model,
      variant,
      ...fields,
      ms: Math.round(performance.now() - started),
    });

    let urls: readonly string[];
    let generationId: string | null;
    try {
      ({ images: urls, generationId } = await runWithDeadline(
        signal,
        this.config.image.attemptTimeoutMs,
        (attemptSignal) =>
          resultOf(
            this.provider.generateImage({
              model,
              prompt: step.prompt,
              aspectRatio: request.aspectRatio,
              referenceImageUrl: request.referenceImageUrl,
              partialImages: 0,
              signal: attemptSignal,
            }),
          ),
      ));
    } catch (error) {
      if (signal?.aborted) throw signal.reason;
      const failed = record(classify(error));
      this.logger.warn(
        `Image attempt ${step.index}/${step.total} (${model}, ${variant}) failed: ${failed.outcome}` +
          ` – ${error instanceof Error ? error.message : String(error)}`,
      );
      return { record: failed, image: null };
    }

    if (urls.length === 0) {
      this.logger.warn(`Image attempt ${step.index}/${step.total} (${model}) returned no image`);
      return { record: record({ outcome: 'zero_images' }), image: null };
    }
    // Several images: the first one that decodes wins.
    const errors: string[] = [];
    for (const url of urls) {
      try {
        return {
          record: record({ outcome: 'ok' }),
          image: { ...decodeImageDataUrl(url), generationId },
        };
      } catch (error) {
        errors.push(error instanceof Error ? error.message : String(error));
      }
    }
    this.logger.warn(
      `Image attempt ${step.index}/${step.total} (${model}) returned undecodable data: ${errors.join('; ')}`,
    );
    return { record: record({ outcome: 'decode' }), image: null };
  }
}

/** The attempt's `result` event (previews are not asked for yet). */
async function resultOf(
  events: AsyncIterable<ImageEvent>,
): Promise<Extract<ImageEvent, { type: 'result' }>> {
  for await (const event of events) if (event.type === 'result') return event;
  throw new ProviderError('transport', 'The image provider ended without a result');
}

type OutcomeFields = Pick<StoredAttempt, 'outcome' | 'status' | 'error_code'>;

/** Maps what an attempt threw to the contract's outcome. */
function classify(error: unknown): OutcomeFields {
  if (error instanceof DeadlineExceededError) return { outcome: 'timeout' };
  if (error instanceof ProviderError) {
    const errorCode = error.code === null ? {} : { error_code: error.code };
    if (error.kind === 'status' && error.status !== null) {
      return { outcome: 'status', status: error.status, ...errorCode };
    }
    return { outcome: 'transport', ...errorCode };
  }
  // Not a ProviderError: a provider bug; still a failed attempt, and the chain moves on.
  return { outcome: 'transport' };
}
