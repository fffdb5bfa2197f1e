import { Module } from '@nestjs/common';
import { SessionsModule } from './sessions/sessions.module.js';
import { TurnsModule } from './turns/turns.module.js';

/** The Chat feature: sessions with their history, and the turns that stream into them. */
@Module({ imports: [SessionsModule, TurnsModule] })
export class ChatModule {}
