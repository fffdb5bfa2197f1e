import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, IsUrl, MaxLength } from 'class-validator';
import { PageLimit } from '../../../common/page-limit.decorator.js';
import {
  ACTION_TYPES,
  type ActionType,
  ATTEMPT_OUTCOMES,
  type AttemptOutcome,
  IMAGE_FAILURE_REASONS,
  IMAGE_VARIANTS,
  type ImageFailureReason,
  type ImageVariant,
  MESSAGE_ROLES,
  MESSAGE_STATUSES,
  type MessageRole,
  type MessageStatus,
} from '../../../contract/index.js';

export class ListMessagesQueryDto {
  @PageLimit(50)
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
  @ApiProperty({ enum: IMAGE_VARIANTS }) variant!: ImageVariant;
  @ApiProperty({ enum: ATTEMPT_OUTCOMES }) outcome!: AttemptOutcome;
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
  @ApiProperty({ enum: IMAGE_FAILURE_REASONS }) reason!: ImageFailureReason;
  @ApiProperty({ type: [AttemptDto] }) attempts!: AttemptDto[];
}

export class MessageDto {
  @ApiProperty() id!: string;
  @ApiProperty() session_id!: string;
  @ApiProperty({ enum: MESSAGE_ROLES }) role!: MessageRole;
  @ApiProperty() content!: string;
  @ApiProperty({ type: String, nullable: true }) client_msg_id!: string | null;
  @ApiProperty({ enum: ACTION_TYPES, nullable: true, type: String })
  action_type!: ActionType | null;
  @ApiProperty({ enum: MESSAGE_STATUSES }) status!: MessageStatus;
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
