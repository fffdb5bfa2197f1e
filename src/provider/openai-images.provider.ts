import type OpenAI from 'openai';
import {
  createOpenAiClient,
  describeBody,
  isObject,
  throwIfErrorBody,
  toProviderError,
  type OpenAiClientOptions,
} from './openai-client.js';
import type { ImageEvent, ImageProvider, ImageRequest } from './image-provider.js';
import { closestImageSize } from './image-size.js';
import { ProviderError } from './provider-error.js';

const OUTPUT_FORMATS = ['png', 'jpeg', 'webp'] as const;

/** `data:` URL of a base64 image; the API's default format is PNG. */
function dataUrl(b64: string, format: unknown): string {
  const known = OUTPUT_FORMATS.find((candidate) => candidate === format) ?? 'png';
  return `data:image/${known};base64,${b64}`;
}

function b64Of(value: unknown): string | null {
  const b64 = isObject(value) ? value['b64_json'] : null;
  return typeof b64 === 'string' && b64 !== '' ? b64 : null;
}

/**
 * The `images` flavour (`IMAGE_API=images`): the OpenAI Images API through the official SDK,
 * `POST {IMAGE_BASE_URL}/images/generations`, streamed with `partial_images` when previews are
 * asked, one JSON answer otherwise. The generation id is the upstream's `x-request-id`.
 *
 * A reference image is refused (`unsupported`, code `reference_image_unsupported`) without a call:
 * the edit route takes the image's bytes, so Easel would have to download a client-supplied URL
 * itself, which the chat-completions flavour leaves to the upstream on purpose.
 */
export class OpenAiImagesProvider implements ImageProvider {
  private readonly client: OpenAI;

  constructor(options: OpenAiClientOptions) {
    this.client = createOpenAiClient(options);
  }

  async *generateImage(request: ImageRequest): AsyncIterable<ImageEvent> {
    const { model, prompt, aspectRatio, referenceImageUrl, partialImages, signal } = request;
    if (signal.aborted) throw toProviderError(null, signal);
    if (referenceImageUrl !== null) {
      throw new ProviderError(
        'unsupported',
        'The Images API upstream (IMAGE_API=images) does not take a reference image',
        null,
        'reference_image_unsupported',
      );
    }
    const size = closestImageSize(aspectRatio);
    const params = { model, prompt, n: 1, ...(size === null ? {} : { size }) };
    if (partialImages > 0) {
      yield* this.streamed(params, partialImages, signal);
    } else {
      yield await this.single(params, signal);
    }
  }

  private async single(
    params: OpenAI.Images.ImageGenerateParamsNonStreaming,
    signal: AbortSignal,
  ): Promise<ImageEvent> {
    let body: unknown;
    let requestId: string | null;
    try {
      ({ data: body, request_id: requestId } = await this.client.images
        .generate(params, { signal })
        .withResponse());
    } catch (error) {
      throw toProviderError(error, signal);
    }
    throwIfErrorBody(body);
    // The SDK hands a non-JSON body (an HTML page) over as a string.
    const entries: unknown = isObject(body) ? body['data'] : null;
    if (!isObject(body) || !Array.isArray(entries)) {
      throw new ProviderError(
        'malformed',
        `Upstream answered 200 without data: ${describeBody(body)}`,
      );
    }
    const images = entries.flatMap((entry: unknown) => {
      const b64 = b64Of(entry);
      return b64 === null ? [] : [dataUrl(b64, body['output_format'])];
    });
    if (images.length === 0 && entries.length > 0) {
      throw new ProviderError('malformed', 'Upstream answered images without b64_json');
    }
    return { type: 'result', images, generationId: requestId };
  }

  private async *streamed(
    params: OpenAI.Images.ImageGenerateParamsNonStreaming,
    partialImages: number,
    signal: AbortSignal,
  ): AsyncIterable<ImageEvent> {
    let stream: AsyncIterable<unknown> & { controller: AbortController };
    let requestId: string | null;
    let response: Response;
    try {
      ({
        data: stream,
        request_id: requestId,
        response,
      } = await this.client.images
        .generate({ ...params, stream: true, partial_images: partialImages }, { signal })
        .withResponse());
    } catch (error) {
      throw toProviderError(error, signal);
    }
    const contentType = response.headers.get('content-type') ?? '';
    if (!contentType.includes('text/event-stream')) {
      // Nothing reads this body: abort so its socket closes now.
      stream.controller.abort();
      throw new ProviderError(
        'malformed',
        `Upstream answered a streamed request with ${contentType || 'no content type'}`,
      );
    }
    let partialIndex = 0;
    let result: ImageEvent | null = null;
    try {
      // Leaving this loop early (break, a throw, the consumer returning) aborts the SDK's fetch.
      for await (const event of stream) {
        if (!isObject(event)) continue;
        const type = event['type'];
        if (type === 'image_generation.partial_image') {
          const b64 = b64Of(event);
          // Previews are best effort: a bad one is skipped, never the attempt's failure.
          if (b64 === null || partialIndex >= partialImages) continue;
          yield { type: 'partial', partialIndex, dataUrl: dataUrl(b64, event['output_format']) };
          partialIndex += 1;
        } else if (type === 'image_generation.completed') {
          const b64 = b64Of(event);
          if (b64 === null) {
            throw new ProviderError('malformed', 'Upstream completed the image without b64_json');
          }
          const images = [dataUrl(b64, event['output_format'])];
          result = { type: 'result', images, generationId: requestId };
          break;
        }
      }
    } catch (error) {
      throw toProviderError(error, signal);
    }
    // The SDK ends the loop quietly when the signal aborts mid-body.
    if (signal.aborted) throw toProviderError(null, signal);
    if (result === null) {
      throw new ProviderError(
        'transport',
        'Upstream closed the stream before image_generation.completed',
      );
    }
    yield result;
  }
}
