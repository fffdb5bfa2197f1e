import { type ImageEvent, type ImageProvider, type ImageRequest } from './image-provider.js';
import {
  ProviderError,
  type ChatChunk,
  type ChatRequest,
  type LlmProvider,
} from './llm-provider.js';
import { abortableSleep, abortedError } from './demo/abortable-sleep.js';
import { DEMO_IMAGE_SIZES, drawDemoImage, drawDemoPreview } from './demo/demo-image.js';
import { demoImagePrompt, demoReply, demoUsage, digest, tokenize } from './demo/demo-text.js';

export interface DemoProviderOptions {
  /** Pause before each streamed token; 0 streams as fast as the event loop allows. */
  readonly tokenDelayMs: number;
  /** Time to draw one image (success or failure), shared out evenly between its previews. */
  readonly imageDelayMs: number;
}

/** The image model of the demo chain that always fails, so the fallback can be watched. */
export const DEMO_FLAKY_IMAGE_MODEL = 'demo/flaky-painter';

/**
 * Previews are the final scene painted at 1/8, then 1/4, then 1/2 of its size and enlarged:
 * `partialImages` = n sends the first n of them, coarse to fine.
 */
export const DEMO_PREVIEW_DIVISORS = [8, 4, 2] as const;

function pngDataUrl(png: Buffer): string {
  return `data:image/png;base64,${png.toString('base64')}`;
}

/** Offline, deterministic stand-in for a real vendor: no network, same input → same output. */
export class DemoProvider implements LlmProvider, ImageProvider {
  constructor(private readonly options: DemoProviderOptions) {}

  async *streamChat(request: ChatRequest): AsyncIterable<ChatChunk> {
    const { model, messages, signal } = request;
    const tokens = tokenize(demoReply(messages));
    for (const token of tokens) {
      await abortableSleep(this.options.tokenDelayMs, signal);
      yield { type: 'delta', content: token };
    }
    if (signal.aborted) throw abortedError();
    yield {
      type: 'end',
      usage: demoUsage(messages, tokens.length),
      generationId: `demo-${digest(model, JSON.stringify(messages)).toString('hex').slice(0, 16)}`,
    };
  }

  async complete(request: ChatRequest): Promise<string> {
    await abortableSleep(0, request.signal);
    return demoImagePrompt(request.messages);
  }

  /**
   * Waits `imageDelayMs` in equal steps with a preview after each but the last; the flaky model
   * fails right after its first preview (or after the whole delay when none was asked), so a
   * client also sees a preview that the next attempt makes stale.
   */
  async *generateImage(request: ImageRequest): AsyncIterable<ImageEvent> {
    const { model, prompt, aspectRatio, partialImages, signal } = request;
    const { width, height } = DEMO_IMAGE_SIZES[aspectRatio ?? '1:1'];
    const divisors = DEMO_PREVIEW_DIVISORS.slice(0, Math.max(0, partialImages));
    const step = Math.round(this.options.imageDelayMs / (divisors.length + 1));
    for (const [partialIndex, divisor] of divisors.entries()) {
      await abortableSleep(step, signal);
      yield {
        type: 'partial',
        partialIndex,
        dataUrl: pngDataUrl(drawDemoPreview(prompt, width, height, divisor)),
      };
      if (model === DEMO_FLAKY_IMAGE_MODEL) break;
    }
    if (model === DEMO_FLAKY_IMAGE_MODEL) {
      if (divisors.length === 0) await abortableSleep(step, signal);
      if (signal.aborted) throw abortedError();
      throw new ProviderError(
        'status',
        `${DEMO_FLAKY_IMAGE_MODEL} is always unavailable (demo of the fallback chain)`,
        503,
        'demo_unavailable',
      );
    }
    await abortableSleep(step, signal);
    yield {
      type: 'result',
      images: [pngDataUrl(drawDemoImage(prompt, width, height))],
      generationId: `demo-img-${digest(model, prompt, aspectRatio ?? '1:1')
        .toString('hex')
        .slice(0, 16)}`,
    };
  }
}
