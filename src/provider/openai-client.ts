import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import { createHttpTransport } from './http-transport.js';
import { ProviderError } from './provider-error.js';

export interface OpenAiClientOptions {
  /** e.g. `https://openrouter.ai/api/v1`; the API paths are appended. */
  readonly baseUrl: string;
  readonly apiKey: string;
}

export type JsonObject = Record<string, unknown>;

export function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** The official SDK, configured so that retries and fallbacks stay the caller's business. */
export function createOpenAiClient(options: OpenAiClientOptions): OpenAI {
  return new OpenAI({
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
    fetch: createHttpTransport(),
  });
}

/** Upstream codes arrive as strings (OpenAI) or numbers (OpenRouter); we always report a string. */
export function codeOf(error: unknown): string | null {
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
 * reporting an `{"error":…}` chunk → 'stream'; a 2xx body or chunk that is not JSON →
 * 'malformed'; anything else (refused, reset, `TypeError: terminated`, APIConnectionError) →
 * 'transport'.
 */
export function toProviderError(error: unknown, signal: AbortSignal): ProviderError {
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
    return new ProviderError('malformed', `Upstream sent unreadable JSON: ${messageOf(error)}`);
  }
  return new ProviderError('transport', `Upstream connection failed: ${messageOf(error)}`);
}

/** OpenRouter may answer 200 with `{"error":…}` instead of a completion when a provider fails late. */
export function throwIfErrorBody(body: unknown): void {
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

/** A short, printable description of an unexpected body, for error messages and logs. */
export function describeBody(body: unknown): string {
  const text = typeof body === 'string' ? body : JSON.stringify(body);
  const flat = (text ?? String(body)).replace(/\s+/g, ' ').trim();
  return flat.length > 80 ? `${flat.slice(0, 80)}…` : flat;
}
