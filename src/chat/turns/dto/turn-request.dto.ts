import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { Type } from 'class-transformer';
import {
  IsBoolean,
  IsIn,
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
  IMAGE_MODES,
  type ImageMode,
} from '../../../contract/index.js';
import { NonBlankContent } from './non-blank-content.validator.js';

export class TurnImageOptionsDto {
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
}

export class TurnRequestDto {
  @ApiProperty({
    maxLength: 8000,
    description: 'The user message. Must not be blank, except for a forced image_only turn.',
  })
  @IsString()
  @MaxLength(8000)
  @NonBlankContent()
  content!: string;

  @ApiProperty({
    pattern: '^[A-Za-z0-9_-]{8,64}$',
    description: 'Idempotency key, unique per session (retries reuse it).',
  })
  @IsString()
  @Matches(/^[A-Za-z0-9_-]{8,64}$/)
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
}
