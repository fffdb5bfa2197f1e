import { ApiProperty, ApiPropertyOptional } from '@nestjs/swagger';
import { IsOptional, IsString, Matches, MaxLength } from 'class-validator';
import { PageLimit } from '../../../common/page-limit.decorator.js';

export class CreateSessionDto {
  @ApiPropertyOptional({ maxLength: 200 })
  @IsOptional()
  @IsString()
  @MaxLength(200)
  title?: string;

  @ApiPropertyOptional({ maxLength: 8000, description: 'Sent to the model before every turn.' })
  @IsOptional()
  @IsString()
  @MaxLength(8000)
  system_prompt?: string;
}

export class ListSessionsQueryDto {
  @PageLimit(20)
  limit?: number;

  @ApiPropertyOptional({ description: '`next_cursor` of the previous page.' })
  @IsOptional()
  @IsString()
  @Matches(/^[0-9]{1,15}$/, { message: 'cursor must be a next_cursor value' })
  cursor?: string;
}

export class SessionDto {
  @ApiProperty() id!: string;
  @ApiProperty({ type: String, nullable: true }) title!: string | null;
  @ApiProperty({ type: String, nullable: true }) system_prompt!: string | null;
  @ApiProperty({ format: 'date-time' }) created_at!: string;
  @ApiProperty({ format: 'date-time' }) updated_at!: string;
}

export class SessionPageDto {
  @ApiProperty({ type: [SessionDto] }) items!: SessionDto[];
  @ApiProperty({
    type: String,
    nullable: true,
    description: 'Pass as `cursor`; null on the last page.',
  })
  next_cursor!: string | null;
}
