import { applyDecorators } from '@nestjs/common';
import { ApiPropertyOptional } from '@nestjs/swagger';
import { Transform } from 'class-transformer';
import { IsInt, IsOptional, Max, Min } from 'class-validator';

/**
 * The `limit` query parameter of a paged list: 1..100 in plain decimal digits. `Number()` alone
 * would read `0x10` as 16 and `1e1` as 10; those stay strings here, so validation refuses them.
 */
export function PageLimit(defaultLimit: number): PropertyDecorator {
  return applyDecorators(
    ApiPropertyOptional({ type: 'integer', minimum: 1, maximum: 100, default: defaultLimit }),
    IsOptional(),
    Transform(({ value }: { value: unknown }) =>
      typeof value === 'string' && /^[0-9]{1,4}$/.test(value) ? Number(value) : value,
    ),
    IsInt(),
    Min(1),
    Max(100),
  );
}
