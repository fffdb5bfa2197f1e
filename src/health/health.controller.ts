import { Controller, Get } from '@nestjs/common';
import { ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import { ApiError } from '../common/api-error.js';
import { ErrorDto } from '../common/error.dto.js';
import { DatabaseClient } from '../database/database.client.js';
import { LifecycleService } from './lifecycle.service.js';

@ApiTags('health')
@Controller()
export class HealthController {
  constructor(
    private readonly database: DatabaseClient,
    private readonly lifecycle: LifecycleService,
  ) {}

  @Get('healthz')
  @ApiOperation({ summary: 'Liveness: the process answers' })
  @ApiResponse({ status: 200, schema: { example: { status: 'ok' } } })
  health(): { status: 'ok' } {
    return { status: 'ok' };
  }

  @Get('readyz')
  @ApiOperation({ summary: 'Readiness: the database answers' })
  @ApiResponse({ status: 200, schema: { example: { status: 'ok', database: 'pglite' } } })
  @ApiResponse({
    status: 503,
    type: ErrorDto,
    description: '`unavailable` (database down, refusing writes, or shutting down)',
  })
  async ready(): Promise<{ status: 'ok'; database: string }> {
    if (this.lifecycle.draining) {
      throw ApiError.unavailable('The server is shutting down.');
    }
    try {
      await this.database.ping();
    } catch {
      throw ApiError.unavailable('The database is not reachable.');
    }
    // Reads can work while writes do not (a full disk): a turn could then never be stored.
    if (this.database.refusingWrites) {
      try {
        await this.database.probeWrite();
      } catch {
        throw ApiError.unavailable('The database refuses writes.');
      }
    }
    return { status: 'ok', database: this.database.kind };
  }
}
