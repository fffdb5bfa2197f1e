import { Module } from '@nestjs/common';
import { AuthModule } from '../../auth/auth.module.js';
import { DatabaseModule } from '../../database/database.module.js';
import { ImagesModule } from '../../images/images.module.js';
import { MessageMapper } from './dto/message.mapper.js';
import { MessagesRepository } from './messages.repository.js';
import { SessionsController } from './sessions.controller.js';
import { SessionsRepository } from './sessions.repository.js';
import { SessionsService } from './sessions.service.js';

/** Sessions and their message history: the REST routes, the tables, the JSON shapes. */
@Module({
  imports: [AuthModule, DatabaseModule, ImagesModule],
  controllers: [SessionsController],
  providers: [SessionsService, SessionsRepository, MessagesRepository, MessageMapper],
  exports: [SessionsService, SessionsRepository, MessagesRepository],
})
export class SessionsModule {}
