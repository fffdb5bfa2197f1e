import { HttpException } from '@nestjs/common';
import type { ApiErrorCode } from '../contract/index.js';

/** The JSON body of every error answered before a stream starts (docs/api-reference.md §10). */
export interface ApiErrorBody {
  code: ApiErrorCode;
  message: string;
  user_message?: string;
  [extra: string]: unknown;
}

/**
 * An error with a contract code; the exception filter writes its body as is. Every error the
 * API answers is built by one of the named constructors below: this is the catalogue.
 */
export class ApiError extends HttpException {
  constructor(status: number, body: ApiErrorBody) {
    super(body, status);
  }

  get body(): ApiErrorBody {
    return this.getResponse() as ApiErrorBody;
  }

  static invalidPayload(message: string, details?: string[]): ApiError {
    return new ApiError(400, {
      code: 'invalid_payload',
      message,
      ...(details ? { details } : {}),
    });
  }

  static unauthorized(message = 'A valid Bearer token is required.'): ApiError {
    return new ApiError(401, { code: 'unauthorized', message });
  }

  static forbiddenImage(): ApiError {
    return new ApiError(403, {
      code: 'forbidden',
      message: 'The image URL signature is missing, invalid or expired.',
    });
  }

  static sessionNotFound(): ApiError {
    return new ApiError(404, { code: 'session_not_found', message: 'No such session.' });
  }

  static notFound(message = 'Not found.'): ApiError {
    return new ApiError(404, { code: 'not_found', message });
  }

  static turnNotFound(): ApiError {
    return new ApiError(404, {
      code: 'turn_not_found',
      message: 'No turn with this client_msg_id in this session.',
    });
  }

  static duplicateInProgress(originalUserMessageId: string): ApiError {
    return new ApiError(409, {
      code: 'duplicate_in_progress',
      message: 'A turn with this client_msg_id is still running.',
      original_user_message_id: originalUserMessageId,
    });
  }

  static idempotencyConflict(originalUserMessageId: string): ApiError {
    return new ApiError(409, {
      code: 'idempotency_conflict',
      message: 'This client_msg_id was already used in this session with a different request.',
      original_user_message_id: originalUserMessageId,
    });
  }

  static resumeExpired(): ApiError {
    return new ApiError(410, {
      code: 'resume_expired',
      message:
        'The frames after this id are no longer kept. Send the turn again without Last-Event-ID to replay it.',
    });
  }

  static imageDisabled(): ApiError {
    return new ApiError(422, {
      code: 'image_disabled',
      message: 'Image generation is disabled on this server (IMAGE_MODELS is empty).',
      user_message: 'Pictures are not available right now.',
    });
  }

  static tooManyStreams(max: number): ApiError {
    return new ApiError(429, {
      code: 'rate_limited',
      message: `At most ${max} turns may stream at once per user.`,
      user_message: 'Too many replies are in progress. Wait for one to finish.',
    });
  }

  static shuttingDown(): ApiError {
    return new ApiError(503, {
      code: 'unavailable',
      message: 'The server is shutting down and takes no new turns.',
      user_message: 'The service is restarting. Please try again in a moment.',
    });
  }

  /** The turn's deadline (counted from the request's arrival) passed before it could start. */
  static cannotStartInTime(): ApiError {
    return new ApiError(503, {
      code: 'unavailable',
      message: 'The turn could not start within TURN_TIMEOUT_MS of its arrival; send it again.',
      user_message: 'The service is busy right now. Please try again in a moment.',
    });
  }

  static unavailable(message: string): ApiError {
    return new ApiError(503, { code: 'unavailable', message });
  }

  /** Our own fault: the body never says more than this. */
  static internal(): ApiError {
    return new ApiError(500, { code: 'internal', message: 'Internal error.' });
  }
}
