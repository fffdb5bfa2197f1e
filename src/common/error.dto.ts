import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';

export class ErrorDto {
  @ApiProperty({ example: 'invalid_payload' }) code!: string;
  @ApiProperty() message!: string;
  @ApiPropertyOptional({ description: 'A sentence fit to show an end user.' })
  user_message?: string;
}
