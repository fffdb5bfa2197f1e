import { applyDecorators } from '@nestjs/common';
import { ApiResponse } from '@nestjs/swagger';
import { ErrorDto } from './error.dto.js';

/** A route's JSON error answers for Swagger: status → which codes, and when. */
export function ApiErrorResponses(responses: Readonly<Record<number, string>>) {
  return applyDecorators(
    ...Object.entries(responses).map(([status, description]) =>
      ApiResponse({ status: Number(status), type: ErrorDto, description }),
    ),
  );
}
