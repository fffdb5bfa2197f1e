import type {
  CreateSessionRequest,
  ListMessagesQuery,
  ListSessionsQuery,
  MessagePage,
  OnDisconnect,
  Session,
  SessionPage,
  StopResult,
  TurnRequest,
} from '../../src/contract/index.js';
import { EaselApiError } from './errors.js';
import {
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_RETRY,
  type RetryPolicy,
  type TurnConnection,
  TurnStream,
} from './turn-stream.js';

export interface EaselClientOptions {
  /** The service's origin, e.g. `http://localhost:3000` (the `/v1` prefix is added). */
  readonly baseUrl: string;
  /** The Bearer JWT, or a function returning it (called for every request, so it may refresh). */
  readonly token?: string | (() => string | Promise<string>);
  /** Defaults to the global `fetch`. */
  readonly fetch?: typeof fetch;
  readonly retry?: Partial<RetryPolicy>;
  /** A turn connection silent this long (no frame, no `: ping`) counts as dropped. */
  readonly idleTimeoutMs?: number;
}

/** A turn to send; `client_msg_id` is made up when absent (read it back from the stream). */
export type TurnInput = Omit<TurnRequest, 'client_msg_id'> & { client_msg_id?: string };

export interface StreamOptions {
  readonly signal?: AbortSignal;
}

export interface ResumeOptions extends StreamOptions {
  /** The last frame id already seen (0 = from the first frame). */
  readonly after?: number;
  /** The turn's mode, when known: with `continue`, aborting `signal` stops the turn. */
  readonly onDisconnect?: OnDisconnect;
}

/** A fresh idempotency key (32 hex characters); works in browsers on plain http too. */
export function newClientMsgId(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (byte) => byte.toString(16).padStart(2, '0')).join('');
}

const segment = encodeURIComponent;

function query(params: Record<string, string | number | undefined>): string {
  const search = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== undefined) search.set(key, String(value));
  }
  const text = search.toString();
  return text ? `?${text}` : '';
}

/**
 * The Easel API: every REST route of docs/api-reference.md §2 and §8a with typed results, errors thrown as
 * EaselApiError (`code` is the contract's union), and turns as self-resuming frame streams.
 * Uses only fetch and ReadableStream, so it runs in browsers and on Node ≥ 20.
 */
export class EaselClient {
  private readonly baseUrl: string;
  private readonly fetcher: typeof fetch;
  private readonly retry: RetryPolicy;
  private readonly idleTimeoutMs: number;

  constructor(private readonly options: EaselClientOptions) {
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    // Bound, so a browser's fetch is not called with the client as `this`.
    this.fetcher = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.retry = { ...DEFAULT_RETRY, ...options.retry };
    this.idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  }

  readonly sessions = {
    create: (body: CreateSessionRequest = {}): Promise<Session> =>
      this.json('POST', '/sessions', body),
    list: (params: ListSessionsQuery = {}): Promise<SessionPage> =>
      this.json('GET', `/sessions${query({ limit: params.limit, cursor: params.cursor })}`),
    get: (sessionId: string): Promise<Session> =>
      this.json('GET', `/sessions/${segment(sessionId)}`),
    delete: (sessionId: string): Promise<void> =>
      this.json('DELETE', `/sessions/${segment(sessionId)}`),
  };

  readonly messages = {
    /** Newest first; pass `next_cursor` as `before` for the next page. */
    list: (sessionId: string, params: ListMessagesQuery = {}): Promise<MessagePage> =>
      this.json(
        'GET',
        `/sessions/${segment(sessionId)}/messages${query({ limit: params.limit, before: params.before })}`,
      ),
    /** Records the app's durable copy of a generated image (idempotent). */
    saveImageCopy: (sessionId: string, messageId: string, url: string): Promise<void> =>
      this.json('POST', `/sessions/${segment(sessionId)}/messages/${segment(messageId)}/image`, {
        url,
      }),
  };

  readonly images = {
    /** Fetches a signed image URL (`GET /v1/images/:id?exp=&sig=`, no token needed). */
    get: async (signedUrl: string, options: StreamOptions = {}): Promise<Blob> => {
      const response = await this.fetcher(new URL(signedUrl, this.baseUrl), {
        signal: options.signal,
      });
      if (!response.ok) throw await EaselApiError.from(response);
      return response.blob();
    },
  };

  readonly turns = {
    /**
     * Sends a turn and streams its frames. Reconnects by itself after a drop (same request plus
     * `Last-Event-ID`, api-reference §8a) and never yields a frame twice. A pre-stream error is thrown as
     * EaselApiError on the first iteration.
     */
    stream: (sessionId: string, input: TurnInput, options: StreamOptions = {}): TurnStream => {
      const request: TurnRequest = {
        ...input,
        client_msg_id: input.client_msg_id ?? newClientMsgId(),
      };
      const body = JSON.stringify(request);
      const connection: TurnConnection = {
        canReplay: true,
        open: async (after, signal) =>
          this.fetcher(this.url(`/sessions/${segment(sessionId)}/turns`), {
            method: 'POST',
            headers: await this.headers({
              'content-type': 'application/json',
              accept: 'text/event-stream',
              ...(after === null ? {} : { 'last-event-id': String(after) }),
            }),
            body,
            signal,
          }),
        stop: () => this.turns.cancel(sessionId, request.client_msg_id),
      };
      return new TurnStream(connection, {
        clientMsgId: request.client_msg_id,
        onDisconnect: request.on_disconnect ?? 'cancel',
        retry: this.retry,
        idleTimeoutMs: this.idleTimeoutMs,
        signal: options.signal,
      });
    },

    /** Attaches to a turn by its key (`GET …/turns/:client_msg_id/events`): frames after `after`. */
    resume: (sessionId: string, clientMsgId: string, options: ResumeOptions = {}): TurnStream => {
      const path = `/sessions/${segment(sessionId)}/turns/${segment(clientMsgId)}/events`;
      const connection: TurnConnection = {
        canReplay: false,
        open: async (after, signal) =>
          this.fetcher(this.url(path), {
            headers: await this.headers({
              accept: 'text/event-stream',
              'last-event-id': String(after ?? options.after ?? 0),
            }),
            signal,
          }),
        stop: () => this.turns.cancel(sessionId, clientMsgId),
      };
      return new TurnStream(connection, {
        clientMsgId,
        onDisconnect: options.onDisconnect ?? 'cancel',
        retry: this.retry,
        idleTimeoutMs: this.idleTimeoutMs,
        signal: options.signal,
        after: options.after ?? 0,
      });
    },

    /** The stop route (api-reference §8a): `cancelling` while running, else the stored status. Idempotent. */
    cancel: (sessionId: string, clientMsgId: string): Promise<StopResult> =>
      this.json('POST', `/sessions/${segment(sessionId)}/turns/${segment(clientMsgId)}/cancel`),
  };

  private url(path: string): string {
    return `${this.baseUrl}/v1${path}`;
  }

  private async headers(extra: Record<string, string> = {}): Promise<Record<string, string>> {
    const { token } = this.options;
    const value = typeof token === 'function' ? await token() : token;
    return value ? { authorization: `Bearer ${value}`, ...extra } : extra;
  }

  private async json<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.fetcher(this.url(path), {
      method,
      headers: await this.headers(body === undefined ? {} : { 'content-type': 'application/json' }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (!response.ok) throw await EaselApiError.from(response);
    if (response.status === 204) return undefined as T;
    return (await response.json()) as T;
  }
}

export function createEaselClient(options: EaselClientOptions): EaselClient {
  return new EaselClient(options);
}
