import { HttpException } from '@nestjs/common';
import type { ApiErrorCode } from '../contract/index.js';

/** The JSON body of every error answered before a stream starts (docs/api-reference.md §10). */
export interface ApiErrorBody {
  code: ApiErrorCode;
  message: string;
  user_message?: string;
  [extra: string]: unknown;
}

/** Each code's HTTP status: a code always answers with the same one. */
const STATUS: Readonly<Record<ApiErrorCode, number>> = {
  invalid_payload: 400,
  unauthorized: 401,
  forbidden: 403,
  session_not_found: 404,
  not_found: 404,
  turn_not_found: 404,
  method_not_allowed: 405,
  duplicate_in_progress: 409,
  idempotency_conflict: 409,
  resume_expired: 410,
  payload_too_large: 413,
  unsupported_media_type: 415,
  image_disabled: 422,
  rate_limited: 429,
  internal: 500,
  unavailable: 503,
};

/**
 * The errors that say the same every time, by constructor name. `user_message` is what a client
 * may show its user as is.
 */
const FIXED = {
  forbiddenImage: {
    code: 'forbidden',
    message: 'The image URL signature is missing, invalid or expired.',
  },
  sessionNotFound: { code: 'session_not_found', message: 'No such session.' },
  turnNotFound: {
    code: 'turn_not_found',
    message: 'No turn with this client_msg_id in this session.',
  },
  resumeExpired: {
    code: 'resume_expired',
    message:
      'The frames after this id are no longer kept. Send the turn again without Last-Event-ID to replay it.',
  },
  imageDisabled: {
    code: 'image_disabled',
    message: 'Image generation is disabled on this server (IMAGE_MODELS is empty).',
    user_message: 'Pictures are not available right now.',
  },
  shuttingDown: {
    code: 'unavailable',
    message: 'The server is shutting down and takes no new turns.',
    user_message: 'The service is restarting. Please try again in a moment.',
  },
  // The turn's deadline (counted from the request's arrival) passed before it could start.
  cannotStartInTime: {
    code: 'unavailable',
    message: 'The turn could not start within TURN_TIMEOUT_MS of its arrival; send it again.',
    user_message: 'The service is busy right now. Please try again in a moment.',
  },
  // Our own fault: the body never says more than this.
  internal: { code: 'internal', message: 'Internal error.' },
} as const satisfies Record<string, ApiErrorBody>;

/**
 * An error with a contract code; the exception filter writes its body as is, with its code's
 * status. Every error the API answers is built by one of the named constructors below: this is
 * the catalogue.
 */
export class ApiError extends HttpException {
  private constructor(body: ApiErrorBody) {
    super(body, STATUS[body.code]);
  }

  get body(): ApiErrorBody {
    return this.getResponse() as ApiErrorBody;
  }

  static invalidPayload(message: string, details?: string[]): ApiError {
    return new ApiError({ code: 'invalid_payload', message, ...(details ? { details } : {}) });
  }

  static unauthorized(message = 'A valid Bearer token is required.'): ApiError {
    return new ApiError({ code: 'unauthorized', message });
  }

  static forbiddenImage(): ApiError {
    return new ApiError(FIXED.forbiddenImage);
  }

  static sessionNotFound(): ApiError {
    return new ApiError(FIXED.sessionNotFound);
  }

  static notFound(message = 'Not found.'): ApiError {
    return new ApiError({ code: 'not_found', message });
  }

  static turnNotFound(): ApiError {
    return new ApiError(FIXED.turnNotFound);
  }

  static duplicateInProgress(originalUserMessageId: string): ApiError {
    return new ApiError({
      code: 'duplicate_in_progress',
      message: 'A turn with this client_msg_id is still running.',
      original_user_message_id: originalUserMessageId,
    });
  }

  static idempotencyConflict(originalUserMessageId: string): ApiError {
    return new ApiError({
      code: 'idempotency_conflict',
      message: 'This client_msg_id was already used in this session with a different request.',
      original_user_message_id: originalUserMessageId,
    });
  }

  static resumeExpired(): ApiError {
    return new ApiError(FIXED.resumeExpired);
  }

  static imageDisabled(): ApiError {
    return new ApiError(FIXED.imageDisabled);
  }

  static tooManyStreams(max: number): ApiError {
    return new ApiError({
      code: 'rate_limited',
      message: `At most ${max} turns may stream at once per user.`,
      user_message: 'Too many replies are in progress. Wait for one to finish.',
    });
  }

  static shuttingDown(): ApiError {
    return new ApiError(FIXED.shuttingDown);
  }

  static cannotStartInTime(): ApiError {
    return new ApiError(FIXED.cannotStartInTime);
  }

  static unavailable(message: string): ApiError {
    return new ApiError({ code: 'unavailable', message });
  }

  static internal(): ApiError {
    return new ApiError(FIXED.internal);
  }
}
