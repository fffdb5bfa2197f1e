import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
  IsInt,
  Max,
  Min,
  IsNotEmpty,
  IsObject,
  IsOptional,
  IsString,
  IsUrl,
  Matches,
  MaxLength,
  ValidateNested,
} from 'class-validator';
import {
  ASPECT_RATIOS,
  type AspectRatio,
  CLIENT_MSG_ID_PATTERN,
  IMAGE_MODES,
  type ImageMode,
  MAX_PARTIAL_IMAGES,
  ON_DISCONNECT,
  type OnDisconnect,
  type TurnImageOptions,
  type TurnRequest,
} from '../../../contract/index.js';
import { NonBlankContent } from './non-blank-content.validator.js';

export class TurnImageOptionsDto implements TurnImageOptions {
  @ApiPropertyOptional({ default: false, description: 'Always make an image this turn.' })
  @IsOptional()
  @IsBoolean()
  force?: boolean;

  @ApiPropertyOptional({ enum: IMAGE_MODES, default: 'text_image' })
  @IsOptional()
  @IsIn(IMAGE_MODES)
  mode?: ImageMode;

  @ApiPropertyOptional({ maxLength: 200, description: 'Tried first, then the configured chain.' })
  @IsOptional()
  @IsString()
  @IsNotEmpty()
  @MaxLength(200)
  model?: string;

  @ApiPropertyOptional({ maxLength: 2000, description: 'What to draw; defaults to the message.' })
  @IsOptional()
  @IsString()
  @MaxLength(2000)
  image_prompt?: string;

  @ApiPropertyOptional({ enum: ASPECT_RATIOS })
  @IsOptional()
  @IsIn(ASPECT_RATIOS)
  aspect_ratio?: AspectRatio;

  @ApiPropertyOptional({
    maxLength: 2048,
    description: 'Absolute http(s) URL of a reference image.',
  })
  @IsOptional()
  @IsString()
  @MaxLength(2048)
  @IsUrl({ protocols: ['http', 'https'], require_protocol: true, require_tld: false })
  reference_image_url?: string;

  @ApiPropertyOptional({
    type: 'integer',
    minimum: 0,
    maximum: MAX_PARTIAL_IMAGES,
    default: 0,
    description: 'Previews per attempt, sent as `image_partial` frames (api-reference §13).',
  })
  @IsOptional()
  @IsInt()
  @Min(0)
  @Max(MAX_PARTIAL_IMAGES)
  partial_images?: number;

  @ApiPropertyOptional({
    default: false,
    description:
      'reply_text_image: draw while the text streams (api-reference §13); other actions ignore it.',
  })
  @IsOptional()
  @IsBoolean()
  concurrent?: boolean;
}

export class TurnRequestDto implements TurnRequest {
  @ApiProperty({
    maxLength: 8000,
    description: 'The user message. Must not be blank, except for a forced image_only turn.',
  })
  @IsString()
  @MaxLength(8000)
  @NonBlankContent()
  content!: string;

  @ApiProperty({
    pattern: CLIENT_MSG_ID_PATTERN,
    description: 'Idempotency key, unique per session (retries reuse it).',
  })
  @IsString()
  @Matches(new RegExp(CLIENT_MSG_ID_PATTERN))
  client_msg_id!: string;

  @ApiPropertyOptional({
    type: TurnImageOptionsDto,
    description: 'Absent → text only. Present → the planner decides, unless `force`.',
  })
  @IsOptional()
  @IsObject()
  @ValidateNested()
  @Type(() => TurnImageOptionsDto)
  image?: TurnImageOptionsDto;

  @ApiPropertyOptional({
    enum: ON_DISCONNECT,
    default: 'cancel',
    description:
      'When the last client leaves: `cancel` aborts the turn; `continue` runs it to its end, ' +
      'to be resumed (api-reference §8a).',
  })
  @IsOptional()
  @IsIn(ON_DISCONNECT)
  on_disconnect?: OnDisconnect;
}
