import { Module } from '@nestjs/common';
import { MetricsController } from './metrics.controller.js';
import { MetricsService } from './metrics.service.js';

/**
 * Metrics for every module. The logger is not a provider here: it must exist before Nest boots
 * (see `createApp`), and code logs through Nest's `Logger`, which forwards to it.
 */
@Module({
  controllers: [MetricsController],
  providers: [MetricsService],
  exports: [MetricsService],
})
export class ObservabilityModule {}
