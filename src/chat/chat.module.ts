import { Module, type OnApplicationBootstrap, Logger } from '@nestjs/common';
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
import { TurnReplayService } from './turn-replay.service.js';
import { TurnService } from './turn.service.js';
import { TurnsController } from './turns.controller.js';

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
    TurnReplayService,
    TurnService,
  ],
  exports: [StreamRegistry],
})
export class ChatModule implements OnApplicationBootstrap {
  private readonly logger = new Logger(ChatModule.name);

  constructor(private readonly messages: MessagesRepository) {}

  /** Turns left running by a process that died are marked interrupted: their keys run again. */
  async onApplicationBootstrap(): Promise<void> {
    const interrupted = await this.messages.interruptRunning();
    if (interrupted > 0)
      this.logger.warn(`marked ${interrupted} interrupted turn(s) from an earlier run`);
  }
}
