import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import { IsInt, IsOptional, IsString, IsUrl, Max, MaxLength, Min } from 'class-validator';

export class ListMessagesQueryDto {
  @ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 100, default: 50 })
  @IsOptional()
  @Type(() => Number)
  @IsInt()
  @Min(1)
  @Max(100)
  limit?: number;

  @ApiPropertyOptional({ description: 'A message id: returns the messages older than it.' })
  @IsOptional()
  @IsString()
  @MaxLength(64)
  before?: string;
}

export class ImageWriteBackDto {
  @ApiProperty({
    maxLength: 2048,
    description: "Absolute http(s) URL of the client's durable copy.",
  })
  @IsString()
  @MaxLength(2048)
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false })
  url!: string;
}

export class AttemptDto {
  @ApiProperty() model!: string;
  @ApiProperty({ enum: ['composed', 'original', 'single'] }) variant!: string;
  @ApiProperty({ enum: ['ok', 'transport', 'status', 'zero_images', 'decode', 'timeout'] })
  outcome!: string;
  @ApiPropertyOptional({ description: 'Upstream HTTP status, for `status`.' }) status?: number;
  @ApiPropertyOptional({ description: "Upstream's error code, when it sent one." })
  error_code?: string;
  @ApiProperty({ description: 'Duration in milliseconds.' }) ms!: number;
}

export class MessageImageDto {
  @ApiProperty({ description: 'Signed URL; loads in <img> with no header; expires.' }) url!: string;
  @ApiProperty() mime!: string;
  @ApiProperty() model!: string;
  @ApiProperty({ type: String, nullable: true }) image_prompt!: string | null;
  @ApiProperty() width!: number;
  @ApiProperty() height!: number;
  @ApiProperty({ type: String, nullable: true }) durable_url!: string | null;
  @ApiProperty({ type: [AttemptDto] }) attempts!: AttemptDto[];
}

export class MessageImageFailedDto {
  @ApiProperty({ enum: ['chain_exhausted', 'zero_images', 'config_error'] }) reason!: string;
  @ApiProperty({ type: [AttemptDto] }) attempts!: AttemptDto[];
}

export class MessageDto {
  @ApiProperty() id!: string;
  @ApiProperty() session_id!: string;
  @ApiProperty({ enum: ['user', 'assistant'] }) role!: string;
  @ApiProperty() content!: string;
  @ApiProperty({ type: String, nullable: true }) client_msg_id!: string | null;
  @ApiProperty({
    enum: ['reply_text', 'reply_image', 'reply_text_image'],
    nullable: true,
    type: String,
  })
  action_type!: string | null;
  @ApiProperty({ enum: ['complete', 'cancelled', 'failed'] }) status!: string;
  @ApiProperty({ type: String, nullable: true }) model!: string | null;
  @ApiProperty({ type: MessageImageDto, nullable: true }) image!: MessageImageDto | null;
  @ApiProperty({ type: MessageImageFailedDto, nullable: true })
  image_failed!: MessageImageFailedDto | null;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
}

export class MessagePageDto {
  @ApiProperty({ type: [MessageDto], description: 'Newest first.' }) items!: MessageDto[];
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Pass as `before`; null on the last page.',
  })
  next_cursor!: string | null;
}
