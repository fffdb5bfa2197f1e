import { ApiProperty } from '@nestjs/swagger';
import { STOP_STATUSES, type StopResult, type StopStatus } from '../../../contract/index.js';

/** The stop route's answer (api-reference §8a). */
export class StopResultDto implements StopResult {
  @ApiProperty({
    enum: STOP_STATUSES,
    description: '`cancelling` (202) while the turn runs, else its stored status (200).',
  })
  status!: StopStatus;
}
