import { HttpException } from '@nestjs/common';

/** The JSON body of every error answered before a stream starts (protocol §4). */
export interface ApiErrorBody {
  code: string;
  message: string;
  user_message?: string;
  [extra: string]: unknown;
}

/** An error with a contract code; the exception filter writes its body as is. */
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

  static sessionNotFound(): ApiError {
    return new ApiError(404, { code: 'session_not_found', message: 'No such session.' });
  }

  static notFound(message = 'Not found.'): ApiError {
    return new ApiError(404, { code: 'not_found', message });
  }
}
