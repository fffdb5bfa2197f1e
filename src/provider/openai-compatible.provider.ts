import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import {
  ProviderError,
  type ChatChunk,
  type ChatMessage,
  type ChatRequest,
  type ImageRequest,
  type ImageResponse,
  type LlmProvider,
  type Usage,
} from './llm-provider.js';

export interface OpenAiCompatibleOptions {
  /** e.g. `https://openrouter.ai/api/v1`; `/chat/completions` is appended. */
  readonly baseUrl: string;
  readonly apiKey: string;
}

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Upstream codes arrive as strings (OpenAI) or numbers (OpenRouter); we always report a string. */
function codeOf(error: unknown): string | null {
  if (!isObject(error)) return null;
  const code = error['code'];
  return typeof code === 'string' || typeof code === 'number' ? String(code) : null;
}

/** Duck-typed, because errors from Node's own fetch may come from another realm (e.g. under jest). */
function errorField(error: unknown, field: 'message' | 'name'): string | null {
  if (typeof error !== 'object' || error === null || !(field in error)) return null;
  const value: unknown = Reflect.get(error, field);
  return typeof value === 'string' ? value : null;
}

/** The message with its causes (fetch hides the useful part, e.g. ECONNREFUSED, two levels down). */
function messageOf(error: unknown): string {
  const parts: string[] = [];
  let current: unknown = error;
  for (let depth = 0; depth < 4 && current !== undefined && current !== null; depth++) {
    const message = errorField(current, 'message');
    if (message) parts.push(message);
    current = typeof current === 'object' ? Reflect.get(current, 'cause') : undefined;
  }
  return parts.length > 0 ? parts.join(': ') : String(error);
}

/**
 * One place that decides the error kind, in this order: our signal aborted → 'aborted' (whatever
 * the SDK threw on the way out); non-2xx → 'status'; an APIError without a status is the SDK
 * reporting an `{"error":…}` chunk → 'stream'; a chunk that is not JSON → 'stream'; anything else
 * (refused, reset, `TypeError: terminated`, APIConnectionError) → 'transport'.
 */
function toProviderError(error: unknown, signal: AbortSignal): ProviderError {
  if (error instanceof ProviderError) return error;
  if (signal.aborted || error instanceof APIUserAbortError) {
    return new ProviderError('aborted', 'The request was aborted');
  }
  if (error instanceof APIConnectionError) {
    return new ProviderError('transport', `Upstream connection failed: ${messageOf(error)}`);
  }
  if (error instanceof APIError) {
    const code = codeOf(error.error);
    if (typeof error.status === 'number') {
      return new ProviderError('status', `Upstream answered ${error.message}`, error.status, code);
    }
    return new ProviderError('stream', `Upstream stream failed: ${error.message}`, null, code);
  }
  if (errorField(error, 'name') === 'SyntaxError') {
    return new ProviderError('stream', `Upstream sent an unreadable chunk: ${messageOf(error)}`);
  }
  return new ProviderError('transport', `Upstream connection failed: ${messageOf(error)}`);
}

/** OpenRouter may answer 200 with `{"error":…}` instead of a completion when a provider fails late. */
function throwIfErrorBody(body: unknown): void {
  if (isObject(body) && isObject(body['error']) && !Array.isArray(body['choices'])) {
    const message = body['error']['message'];
    throw new ProviderError(
      'stream',
      `Upstream answered with an error: ${typeof message === 'string' ? message : 'no message'}`,
      null,
      codeOf(body['error']),
    );
  }
}

function firstMessage(body: unknown): JsonObject | null {
  if (!isObject(body) || !Array.isArray(body['choices'])) return null;
  const choice: unknown = body['choices'][0];
  return isObject(choice) && isObject(choice['message']) ? choice['message'] : null;
}

function imageUrlsOf(message: JsonObject | null): string[] {
  const images = message?.['images'];
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

/** Any OpenAI-compatible vendor (OpenRouter flavour) through the official SDK. */
export class OpenAiCompatibleProvider implements LlmProvider {
  readonly name = 'openai-compatible';
  private readonly client: OpenAI;

  constructor(options: OpenAiCompatibleOptions) {
    this.client = new OpenAI({
      baseURL: options.baseUrl,
      apiKey: options.apiKey,
      // Retries and fallbacks are the caller's business (model chains, attempt timeouts).
      maxRetries: 0,
      // Explicit nulls stop the SDK from picking up stray OPENAI_* variables from the environment.
      organization: null,
      project: null,
      adminAPIKey: null,
      webhookSecret: null,
      defaultHeaders: { 'X-Title': 'Easel' },
    });
  }

  async *streamChat(request: ChatRequest): AsyncIterable<ChatChunk> {
    const { model, messages, signal } = request;
    let usage: Usage | null = null;
    let generationId: string | null = null;
    let finishReason: string | null = null;
    try {
      const stream = await retryDroppedConnection(signal, () =>
        this.client.chat.completions.create(
          {
            model,
            messages: toSdkMessages(messages),
            stream: true,
            stream_options: { include_usage: true },
          },
          { signal },
        ),
      );
      for await (const chunk of stream) {
        if (generationId === null && typeof chunk.id === 'string' && chunk.id !== '') {
          generationId = chunk.id;
        }
        usage = toUsage(chunk.usage) ?? usage;
        const choice = chunk.choices?.[0];
        if (choice?.finish_reason) finishReason = choice.finish_reason;
        const content = choice?.delta?.content;
        if (typeof content === 'string' && content !== '') yield { type: 'delta', content };
      }
    } catch (error) {
      throw toProviderError(error, signal);
    }
    // The SDK ends the loop quietly when the signal aborts mid-body.
    if (signal.aborted) throw toProviderError(null, signal);
    yield { type: 'end', usage, generationId, finishReason };
  }

  async complete(request: ChatRequest): Promise<string> {
    const { model, messages, signal } = request;
    let body: unknown;
    try {
      body = await retryDroppedConnection(signal, () =>
        this.client.chat.completions.create(
          { model, messages: toSdkMessages(messages), stream: false },
          { signal },
        ),
      );
    } catch (error) {
      throw toProviderError(error, signal);
    }
    throwIfErrorBody(body);
    const content = firstMessage(body)?.['content'];
    return typeof content === 'string' ? content : '';
  }

  async generateImage(request: ImageRequest): Promise<ImageResponse> {
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
    let response: unknown;
    try {
      // The SDK's chat types know neither `modalities` nor `images`, so this goes through `post`.
      response = await this.client.post<unknown>('/chat/completions', { body, signal });
    } catch (error) {
      throw toProviderError(error, signal);
    }
    throwIfErrorBody(response);
    const id = isObject(response) ? response['id'] : null;
    return {
      images: imageUrlsOf(firstMessage(response)),
      generationId: typeof id === 'string' && id !== '' ? id : null,
    };
  }
}
