import {
  ProviderError,
  type ChatChunk,
  type ChatRequest,
  type ImageRequest,
  type ImageResponse,
  type LlmProvider,
} from './llm-provider.js';
import { abortableSleep, abortedError } from './demo/abortable-sleep.js';
import { DEMO_IMAGE_SIZES, drawDemoImage } from './demo/demo-image.js';
import { demoImagePrompt, demoReply, demoUsage, digest, tokenize } from './demo/demo-text.js';

export interface DemoProviderOptions {
  /** Pause before each streamed token; 0 streams as fast as the event loop allows. */
  readonly tokenDelayMs: number;
  /** Pause before each image answer (success or failure). */
  readonly imageDelayMs: number;
}

/** The image model of the demo chain that always fails, so the fallback can be watched. */
export const DEMO_FLAKY_IMAGE_MODEL = 'demo/flaky-painter';

/** Offline, deterministic stand-in for a real vendor: no network, same input → same output. */
export class DemoProvider implements LlmProvider {
  readonly name = 'demo';

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
      finishReason: 'stop',
    };
  }

  async complete(request: ChatRequest): Promise<string> {
    await abortableSleep(0, request.signal);
    return demoImagePrompt(request.messages);
  }

  async generateImage(request: ImageRequest): Promise<ImageResponse> {
    const { model, prompt, aspectRatio, signal } = request;
    await abortableSleep(this.options.imageDelayMs, signal);
    if (model === DEMO_FLAKY_IMAGE_MODEL) {
      throw new ProviderError(
        'status',
        `${DEMO_FLAKY_IMAGE_MODEL} is always unavailable (demo of the fallback chain)`,
        503,
        'demo_unavailable',
      );
    }
    const { width, height } = DEMO_IMAGE_SIZES[aspectRatio ?? '1:1'];
    const png = drawDemoImage(prompt, width, height);
    return {
      images: [`data:image/png;base64,${png.toString('base64')}`],
      generationId: `demo-img-${digest(model, prompt, aspectRatio ?? '1:1')
        .toString('hex')
        .slice(0, 16)}`,
    };
  }
}
