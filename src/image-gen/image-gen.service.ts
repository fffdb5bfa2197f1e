import { performance } from 'node:perf_hooks';
import { Inject, Injectable, Logger } from '@nestjs/common';
import type { Observable } from 'rxjs';
import { fromAbortable } from '../common/abortable.js';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { Attempt, ImageVariant } from '../contract/index.js';
import { MetricsService } from '../observability/metrics.service.js';
import { IMAGE_PROVIDER, type ImageEvent, type ImageProvider } from '../provider/image-provider.js';
import { ProviderError } from '../provider/llm-provider.js';
import { DeadlineExceededError, runWithDeadline } from './deadline.js';
import { decodeImageDataUrl, type DecodedImage } from './image-decoder.js';
import type {
  AttemptStart,
  GeneratedImage,
  ImageGenEvent,
  ImageGenRequest,
  ImageGenResult,
} from './image-gen.types.js';
import { PromptComposerService } from './prompt-composer.service.js';

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
  readonly record: Attempt;
  readonly image: (DecodedImage & { readonly generationId: string | null }) | null;
}

/** Draws one image through the fallback chain of image models. */
@Injectable()
export class ImageGenService {
  private readonly logger = new Logger(ImageGenService.name);

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    @Inject(IMAGE_PROVIDER) private readonly provider: ImageProvider,
    private readonly composer: PromptComposerService,
    private readonly metrics: MetricsService,
  ) {}

  /**
   * The image chain as a stream: one `attempt` event right before each attempt's provider call,
   * then exactly one `done`. Upstream failures are attempts, never errors. Unsubscribing aborts
   * whatever provider call is in flight (composer or image attempt).
   */
  generate$(request: ImageGenRequest): Observable<ImageGenEvent> {
    return fromAbortable<ImageGenEvent>(
      async (emit, signal) => emit({ type: 'done', result: await this.run(request, emit, signal) }),
      () => new ProviderError('aborted', 'Image generation was cancelled'),
    );
  }

  /** Composes the prompt, then walks the plan until an attempt yields a decodable image. */
  private async run(
    request: ImageGenRequest,
    emit: (event: ImageGenEvent) => void,
    signal: AbortSignal,
  ): Promise<ImageGenResult> {
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
    signal.throwIfAborted();
    const plan = planAttempts({
      model: request.model,
      models: this.config.image.models,
      subject: request.subject,
      composedPrompt,
    });

    const attempts: Attempt[] = [];
    for (const step of plan) {
      emit({
        type: 'attempt',
        model: step.model,
        variant: step.variant,
        index: step.index,
        total: step.total,
      });
      const { record, image } = await this.attempt(step, request, signal, emit);
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
   * Reads one attempt's events: its previews are checked like a final image (sniffed, bounded by
   * IMAGE_PREVIEW_MAX_BYTES) and passed on, a bad one is dropped without failing the attempt;
   * the result is returned.
   */
  private async draw(
    events: AsyncIterable<ImageEvent>,
    step: PlannedAttempt,
    wanted: number,
    emit: (event: ImageGenEvent) => void,
  ): Promise<Extract<ImageEvent, { type: 'result' }>> {
    let sent = 0;
    for await (const event of events) {
      if (event.type === 'result') return event;
      if (sent >= wanted) continue;
      try {
        const preview = decodeImageDataUrl(event.dataUrl, this.config.image.previewMaxBytes);
        emit({
          type: 'partial',
          index: step.index,
          partialIndex: sent,
          mime: preview.mime,
          dataUrl: `data:${preview.mime};base64,${preview.bytes.toString('base64')}`,
        });
        sent += 1;
      } catch (error) {
        this.logger.warn(
          `Image attempt ${step.index}/${step.total} (${step.model}) sent a preview that was dropped: ${String(error)}`,
        );
      }
    }
    throw new ProviderError('transport', 'The image provider ended without a result');
  }

  private async attempt(
    step: PlannedAttempt,
    request: ImageGenRequest,
    signal: AbortSignal,
    emit: (event: ImageGenEvent) => void,
  ): Promise<AttemptReport> {
    const { model, variant } = step;
    const started = performance.now();
    const record = (fields: OutcomeFields): Attempt => ({
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
          this.draw(
            this.provider.generateImage({
              model,
              prompt: step.prompt,
              aspectRatio: request.aspectRatio,
              referenceImageUrl: request.referenceImageUrl,
              partialImages: request.partialImages,
              signal: attemptSignal,
            }),
            step,
            request.partialImages,
            emit,
          ),
      ));
    } catch (error) {
      if (signal.aborted) throw signal.reason;
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
          image: { ...decodeImageDataUrl(url, this.config.image.maxBytes), generationId },
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

type OutcomeFields = Pick<Attempt, 'outcome' | 'status' | 'error_code'>;

/** Maps what an attempt threw to the contract's outcome. */
function classify(error: unknown): OutcomeFields {
  if (error instanceof DeadlineExceededError) return { outcome: 'timeout' };
  if (error instanceof ProviderError) {
    const errorCode = error.code === null ? {} : { error_code: error.code };
    if (error.kind === 'status' && error.status !== null) {
      return { outcome: 'status', status: error.status, ...errorCode };
    }
    // A 2xx that is not the API's answer (an HTML page, the wrong JSON): a broken image answer.
    if (error.kind === 'malformed') return { outcome: 'decode', ...errorCode };
    if (error.kind === 'timeout') return { outcome: 'timeout', ...errorCode };
    return { outcome: 'transport', ...errorCode };
  }
  // Not a ProviderError: a provider bug; still a failed attempt, and the chain moves on.
  return { outcome: 'transport' };
}
