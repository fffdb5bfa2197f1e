import { Module } from '@nestjs/common';
import { AuthModule } from '../../auth/auth.module.js';
import { DatabaseModule } from '../../database/database.module.js';
import { HealthModule } from '../../health/health.module.js';
import { ImageGenModule } from '../../image-gen/image-gen.module.js';
import { ImagesModule } from '../../images/images.module.js';
import { ObservabilityModule } from '../../observability/observability.module.js';
import { ProviderModule } from '../../provider/provider.module.js';
import { SessionsModule } from '../sessions/sessions.module.js';
import { ActionPlannerService } from './action-planner.service.js';
import { OrphanSweepJob } from './orphan-sweep.job.js';
import { RemoteFollowerService } from './remote-follower.service.js';
import { ReplyStreamService } from './reply-stream.service.js';
import { StreamRegistryService } from './stream-registry.service.js';
import { TurnActionsService } from './turn-actions.service.js';
import { TurnAdmissionService } from './turn-admission.service.js';
import { TurnFramesRepository } from './turn-frames.repository.js';
import { TurnHubService } from './turn-hub.service.js';
import { TurnReplayService } from './turn-replay.service.js';
import { TurnRunnerService } from './turn-runner.service.js';
import { TurnsController } from './turns.controller.js';
import { TurnsRepository } from './turns.repository.js';
import { TurnsService } from './turns.service.js';

/** Chat turns: the request checks, the live pipeline and its actions, replay, the SSE route. */
@Module({
  imports: [
    AuthModule,
    DatabaseModule,
    HealthModule,
    ImageGenModule,
    ImagesModule,
    ObservabilityModule,
    ProviderModule,
    SessionsModule,
  ],
  controllers: [TurnsController],
  providers: [
    ActionPlannerService,
    OrphanSweepJob,
    RemoteFollowerService,
    ReplyStreamService,
    StreamRegistryService,
    TurnActionsService,
    TurnAdmissionService,
    TurnFramesRepository,
    TurnHubService,
    TurnReplayService,
    TurnRunnerService,
    TurnsRepository,
    TurnsService,
  ],
})
export class TurnsModule {}
