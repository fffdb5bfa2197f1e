import {
  type ArgumentsHost,
  Catch,
  type ExceptionFilter,
  HttpException,
  Logger,
} from '@nestjs/common';
import type { Response } from 'express';
import type { ApiErrorCode } from '../contract/index.js';
import { ApiError, type ApiErrorBody } from './api-error.js';

/** Errors raised by Nest or Express themselves get the contract code of their status. */
const CODES: Partial<Record<number, ApiErrorCode>> = {
  400: 'invalid_payload',
  401: 'unauthorized',
  403: 'forbidden',
  404: 'not_found',
  405: 'method_not_allowed',
  413: 'payload_too_large',
  415: 'unsupported_media_type',
  429: 'rate_limited',
  503: 'unavailable',
};

/** Body-parser errors carry their HTTP status and a `type` (e.g. `entity.parse.failed`). */
interface ParserError {
  status: number;
  type: string;
  message: string;
}

function isParserError(error: unknown): error is ParserError {
  return (
    error instanceof Error &&
    typeof (error as Partial<ParserError>).status === 'number' &&
    typeof (error as Partial<ParserError>).type === 'string'
  );
}

/** Every error leaves as `{ code, message, user_message? }`; a 500 is only ever our own fault. */
@Catch()
export class ApiExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('ApiExceptionFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    const response = host.switchToHttp().getResponse<Response>();
    const [status, body] = this.describe(exception);
    if (response.headersSent) {
      response.end();
      return;
    }
    response.status(status).json(body);
  }

  private describe(exception: unknown): [number, ApiErrorBody] {
    if (exception instanceof ApiError) return [exception.getStatus(), exception.body];
    // Express's adapter wraps body-parser errors in an HttpException; the original is the cause.
    const parser = isParserError(exception)
      ? exception
      : exception instanceof HttpException && isParserError(exception.cause)
        ? exception.cause
        : null;
    if (parser && parser.status >= 400 && parser.status < 500) {
      const message =
        parser.type === 'entity.parse.failed'
          ? 'The request body is not a valid JSON object.'
          : parser.message;
      return [parser.status, { code: CODES[parser.status] ?? 'invalid_payload', message }];
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse();
      const message =
        typeof response === 'object' && response !== null && 'message' in response
          ? String((response as { message: unknown }).message)
          : exception.message;
      return [
        status,
        { code: CODES[status] ?? (status >= 500 ? 'internal' : 'invalid_payload'), message },
      ];
    }
    this.logger.error(
      exception instanceof Error ? (exception.stack ?? exception.message) : String(exception),
    );
    const internal = ApiError.internal();
    return [internal.getStatus(), internal.body];
  }
}
