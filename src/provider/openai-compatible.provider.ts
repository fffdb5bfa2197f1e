import type OpenAI from 'openai';
import { APIConnectionError } from 'openai';
import {
  createOpenAiClient,
  describeBody,
  isObject,
  throwIfErrorBody,
  toProviderError,
  type JsonObject,
  type OpenAiClientOptions,
} from './openai-client.js';
import type { ImageEvent, ImageProvider, ImageRequest } from './image-provider.js';
import {
  ProviderError,
  type ChatChunk,
  type ChatMessage,
  type ChatRequest,
  type LlmProvider,
  type Usage,
} from './llm-provider.js';
import { SseDecoder } from './sse-decoder.js';

export interface OpenAiCompatibleOptions extends OpenAiClientOptions {
  /** Sent as `max_tokens` with every chat request; null sends none (the upstream's default). */
  readonly maxTokens?: number | null;
}

function firstMessage(body: unknown): JsonObject | null {
  if (!isObject(body) || !Array.isArray(body['choices'])) return null;
  const choice: unknown = body['choices'][0];
  return isObject(choice) && isObject(choice['message']) ? choice['message'] : null;
}

/**
 * One non-streamed `/chat/completions` call: the answer and its first message, or the
 * ProviderError it amounts to. A 200 HTML page or JSON that is not a completion is `malformed`
 * (a broken answer, not an empty one).
 */
async function completion(
  signal: AbortSignal,
  send: () => Promise<unknown>,
): Promise<{ body: unknown; message: JsonObject }> {
  let body: unknown;
  try {
    body = await send();
  } catch (error) {
    throw toProviderError(error, signal);
  }
  throwIfErrorBody(body);
  const message = firstMessage(body);
  if (message === null) {
    throw new ProviderError(
      'malformed',
      `Upstream answered 200 without a completion message: ${describeBody(body)}`,
    );
  }
  return { body, message };
}

function imageUrlsOf(message: JsonObject): string[] {
  const images = message['images'];
  if (!Array.isArray(images)) return [];
  return images.flatMap((image: unknown) => {
    const url = isObject(image) && isObject(image['image_url']) ? image['image_url']['url'] : null;
    return typeof url === 'string' ? [url] : [];
  });
}

function toUsage(usage: unknown): Usage | null {
  if (!isObject(usage)) return null;
  const { prompt_tokens, completion_tokens, total_tokens } = usage;
  if (typeof prompt_tokens !== 'number' || typeof completion_tokens !== 'number') return null;
  return {
    prompt_tokens,
    completion_tokens,
    total_tokens:
      typeof total_tokens === 'number' ? total_tokens : prompt_tokens + completion_tokens,
  };
}

function toSdkMessages(messages: readonly ChatMessage[]): OpenAI.Chat.ChatCompletionMessageParam[] {
  return messages.map(({ role, content }) => ({ role, content }));
}

/**
 * Sends a text request again, once, when the connection failed before any response byte: a
 * keep-alive socket the upstream had already closed fails that way, and the request never
 * reached it. Not used for image attempts, whose chain moves on by itself.
 */
async function retryDroppedConnection<T>(signal: AbortSignal, send: () => Promise<T>): Promise<T> {
  try {
    return await send();
  } catch (error) {
    if (signal.aborted || !(error instanceof APIConnectionError)) throw error;
    return send();
  }
}

/** What one parsed chat chunk contributes. */
interface ChunkFields {
  readonly content: string | null;
  readonly usage: Usage | null;
  readonly id: string | null;
  readonly finished: boolean;
}

function parseChunk(data: string): ChunkFields {
  let chunk: unknown;
  try {
    chunk = JSON.parse(data);
  } catch {
    throw new ProviderError(
      'malformed',
      `Upstream sent an unreadable chunk: ${describeBody(data)}`,
    );
  }
  if (!isObject(chunk)) {
    throw new ProviderError(
      'malformed',
      `Upstream sent an unexpected chunk: ${describeBody(data)}`,
    );
  }
  // The SDK's own rule for streams: any chunk with an `error` is a failure.
  throwIfErrorBody({ error: chunk['error'] });
  const choice: unknown = Array.isArray(chunk['choices']) ? chunk['choices'][0] : null;
  const delta = isObject(choice) && isObject(choice['delta']) ? choice['delta'] : null;
  const content = delta?.['content'];
  const id = chunk['id'];
  return {
    content: typeof content === 'string' && content !== '' ? content : null,
    usage: toUsage(chunk['usage']),
    id: typeof id === 'string' && id !== '' ? id : null,
    finished: isObject(choice) && typeof choice['finish_reason'] === 'string',
  };
}

/**
 * A 2xx answer to a streamed request that is a JSON body (OpenRouter's late `{"error":…}`) or an
 * HTML page instead of an event stream: always throws.
 */
async function refuseNonStream(
  response: Response,
  contentType: string,
  signal: AbortSignal,
): Promise<never> {
  let text: string;
  try {
    text = await response.text();
  } catch (error) {
    throw toProviderError(error, signal);
  }
  if (contentType.includes('json')) {
    try {
      throwIfErrorBody(JSON.parse(text));
    } catch (error) {
      if (error instanceof ProviderError) throw error;
    }
  }
  throw new ProviderError(
    'malformed',
    `Upstream answered a streamed request with ${contentType}: ${describeBody(text)}`,
  );
}

/**
 * Any OpenAI-compatible vendor (OpenRouter flavour) through the official SDK: chat, the composer,
 * and images through `/chat/completions` (the `chat-completions` image flavour, no previews).
 */
export class OpenAiCompatibleProvider implements LlmProvider, ImageProvider {
  private readonly client: OpenAI;
  private readonly maxTokens: { max_tokens?: number };

  constructor(options: OpenAiCompatibleOptions) {
    this.client = createOpenAiClient(options);
    this.maxTokens = options.maxTokens == null ? {} : { max_tokens: options.maxTokens };
  }

  /**
   * The SDK sends the request and maps HTTP errors, but the body is read here: the SDK's stream
   * ends the same way whether or not `data: [DONE]` arrived, and a stream that closes with
   * neither `[DONE]` nor a finish reason is a truncated reply, not a complete one.
   */
  async *streamChat(request: ChatRequest): AsyncIterable<ChatChunk> {
    const { model, messages, signal } = request;
    let response: Response;
    try {
      response = await retryDroppedConnection(signal, () =>
        this.client.chat.completions
          .create(
            {
              model,
              messages: toSdkMessages(messages),
              stream: true,
              stream_options: { include_usage: true },
              ...this.maxTokens,
            },
            { signal },
          )
          .asResponse(),
      );
    } catch (error) {
      throw toProviderError(error, signal);
    }
    if (response.body === null) throw new ProviderError('transport', 'Upstream sent no body');
    const contentType = response.headers.get('content-type') ?? '';
    if (/json|html/i.test(contentType)) await refuseNonStream(response, contentType, signal);
    const reader = response.body.getReader();
    const decoder = new SseDecoder();
    let usage: Usage | null = null;
    let generationId: string | null = null;
    let finished = false;
    let sawDone = false;
    let bodyEnded = false;
    try {
      while (!sawDone) {
        const { value, done } = await reader.read();
        bodyEnded = done;
        for (const message of done ? decoder.end() : decoder.push(value)) {
          if (message.data === '[DONE]') {
            sawDone = true;
            break;
          }
          const chunk = parseChunk(message.data);
          generationId ??= chunk.id;
          usage = chunk.usage ?? usage;
          finished ||= chunk.finished;
          if (chunk.content !== null) yield { type: 'delta', content: chunk.content };
        }
        if (done) break;
      }
    } catch (error) {
      throw toProviderError(error, signal);
    } finally {
      // An early return, an error or [DONE] with bytes left: tear the body (and socket) down.
      if (!bodyEnded) await reader.cancel().catch(() => undefined);
    }
    if (signal.aborted) throw toProviderError(null, signal);
    if (!sawDone && !finished) {
      throw new ProviderError(
        'transport',
        'Upstream closed the stream without [DONE] or a finish reason',
      );
    }
    yield { type: 'end', usage, generationId };
  }

  async complete(request: ChatRequest): Promise<string> {
    const { model, messages, signal } = request;
    const { message } = await completion(signal, () =>
      retryDroppedConnection(signal, () =>
        this.client.chat.completions.create(
          { model, messages: toSdkMessages(messages), stream: false, ...this.maxTokens },
          { signal },
        ),
      ),
    );
    const content = message['content'];
    return typeof content === 'string' ? content : '';
  }

  /** api-reference §7: one non-streamed call; previews are never sent, whatever `partialImages` asks. */
  async *generateImage(request: ImageRequest): AsyncIterable<ImageEvent> {
    const { model, prompt, aspectRatio, referenceImageUrl, signal } = request;
    const content =
      referenceImageUrl === null
        ? prompt
        : [
            { type: 'text', text: prompt },
            { type: 'image_url', image_url: { url: referenceImageUrl } },
          ];
    const body = {
      model,
      messages: [{ role: 'user', content }],
      modalities: ['image', 'text'],
      ...(aspectRatio === null ? {} : { image_config: { aspect_ratio: aspectRatio } }),
    };
    // The SDK's chat types know neither `modalities` nor `images`, so this goes through `post`.
    const { body: response, message } = await completion(signal, () =>
      this.client.post<unknown>('/chat/completions', { body, signal }),
    );
    const id = isObject(response) ? response['id'] : null;
    yield {
      type: 'result',
      images: imageUrlsOf(message),
      generationId: typeof id === 'string' && id !== '' ? id : null,
    };
  }
}
