import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { API_ERROR_CODES, type ApiErrorCode } from '../contract/index.js';

/** The error body of every JSON error (docs/api-reference.md §10), for Swagger. */
export class ErrorDto {
  @ApiProperty({ enum: API_ERROR_CODES, example: 'invalid_payload' }) code!: ApiErrorCode;
  @ApiProperty() message!: string;
  @ApiPropertyOptional({ description: 'A sentence fit to show an end user.' })
  user_message?: string;
}
