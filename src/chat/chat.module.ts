import {
  type BeforeApplicationShutdown,
  Logger,
  Module,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { DatabaseClient } from '../database/database.client.js';
import { ImageGenModule } from '../image-gen/image-gen.module.js';
import { ProviderModule } from '../provider/provider.module.js';
import { ActionPlanner } from './action-planner.service.js';
import { MessageMapper } from './message.mapper.js';
import { MessagesRepository } from './messages.repository.js';
import { ReplyStreamService } from './reply-stream.service.js';
import { SessionService } from './session.service.js';
import { SessionsController } from './sessions.controller.js';
import { SessionsRepository } from './sessions.repository.js';
import { StreamRegistry } from './stream-registry.service.js';
import { TurnActions } from './turn-actions.service.js';
import { TurnReplayService } from './turn-replay.service.js';
import { TurnService } from './turn.service.js';
import { TurnsController } from './turns.controller.js';

/** How often a PostgreSQL-backed instance looks for turns whose process died. */
const ORPHAN_SWEEP_MS = 30_000;

@Module({
  imports: [ProviderModule, ImageGenModule],
  controllers: [SessionsController, TurnsController],
  providers: [
    ActionPlanner,
    MessageMapper,
    MessagesRepository,
    ReplyStreamService,
    SessionService,
    SessionsRepository,
    StreamRegistry,
    TurnActions,
    TurnReplayService,
    TurnService,
  ],
  exports: [StreamRegistry],
})
export class ChatModule implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger(ChatModule.name);
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    private readonly messages: MessagesRepository,
    private readonly database: DatabaseClient,
  ) {}

  /**
   * Turns left running by a process that died are marked interrupted, so their keys run again:
   * at boot, and on PostgreSQL (where several instances may share the database) every
   * {@link ORPHAN_SWEEP_MS}, so a crashed peer's turns are freed without a restart here.
   */
  async onApplicationBootstrap(): Promise<void> {
    await this.sweep();
    if (this.database.kind === 'postgres') {
      this.sweeper = setInterval(() => void this.sweep(), ORPHAN_SWEEP_MS).unref();
    }
  }

  beforeApplicationShutdown(): void {
    if (this.sweeper) clearInterval(this.sweeper);
  }

  private async sweep(): Promise<void> {
    try {
      const interrupted = await this.messages.interruptOrphaned();
      if (interrupted > 0)
        this.logger.warn(`marked ${interrupted} turn(s) of a dead process as interrupted`);
    } catch (error) {
      this.logger.error(`looking for interrupted turns: ${String(error)}`);
    }
  }
}
