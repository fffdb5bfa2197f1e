import { API_ERROR_CODES, type ApiErrorBody, type ApiErrorCode } from '../../src/contract/index.js';

/** Base class of everything the client throws on purpose. */
export class EaselError extends Error {
  override name = 'EaselError';
}

/** The server answered an error before any stream (api-reference §10, §8a): `code` is the contract's union. */
export class EaselApiError extends EaselError {
  override name = 'EaselApiError';
  readonly code: ApiErrorCode;
  readonly userMessage: string | undefined;

  constructor(
    readonly status: number,
    readonly body: ApiErrorBody,
  ) {
    super(`${status} ${body.code}: ${body.message}`);
    this.code = body.code;
    this.userMessage = body.user_message;
  }

  /** Builds the error from any HTTP answer, even one whose body is not the contract's JSON. */
  static async from(response: Response): Promise<EaselApiError> {
    const text = await response.text().catch(() => '');
    let parsed: unknown = null;
    try {
      parsed = JSON.parse(text);
    } catch {
      // Not JSON (a proxy's HTML page): described below by status.
    }
    const body = parsed as Partial<ApiErrorBody> | null;
    if (body && typeof body.code === 'string' && isApiErrorCode(body.code)) {
      return new EaselApiError(response.status, {
        ...body,
        code: body.code,
        message: String(body.message ?? response.statusText),
      });
    }
    // A code outside the contract (or no JSON at all, e.g. a proxy's page) keeps its text in
    // `message`; `code` then says only which side failed.
    return new EaselApiError(response.status, {
      code: response.status >= 500 ? 'unavailable' : 'invalid_payload',
      message: `Unexpected ${response.status} answer: ${text.slice(0, 200)}`,
    });
  }
}

/**
 * A turn stream was lost and could not be resumed within the retry budget. `lastEventId` is the
 * last frame delivered: `turns.resume(sessionId, clientMsgId, { after: lastEventId })` picks up
 * from there once the network is back.
 */
export class EaselConnectionError extends EaselError {
  override name = 'EaselConnectionError';

  constructor(
    message: string,
    readonly lastEventId: number,
    readonly attempts: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

export function isApiErrorCode(code: string): code is ApiErrorCode {
  return (API_ERROR_CODES as readonly string[]).includes(code);
}
