import type { StreamErrorCode } from '../../contract/index.js';
import type { TurnError } from '../../database/schema.js';

const USER_MESSAGES: Record<StreamErrorCode, string> = {
  upstream_unavailable: 'The assistant is unavailable right now. Please try again in a moment.',
  rate_limited: 'The assistant is busy right now. Please try again in a moment.',
  timeout: 'The assistant took too long to answer. Please try again.',
  internal: 'Something went wrong on our side. Please try again.',
  cancelled: 'You stopped this reply.',
};

/** Why a turn ended in an `error` frame; carries exactly what the frame and the turn row store. */
export class TurnFailure extends Error {
  constructor(
    readonly code: StreamErrorCode,
    message: string,
    readonly retryable: boolean = code !== 'internal' && code !== 'cancelled',
  ) {
    super(message);
    this.name = 'TurnFailure';
  }

  toStored(): TurnError {
    return {
      code: this.code,
      retryable: this.retryable,
      message: this.message,
      user_message: USER_MESSAGES[this.code],
    };
  }
}
