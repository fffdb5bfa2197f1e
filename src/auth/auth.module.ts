import { Module } from '@nestjs/common';
import { AuthGuard } from './auth.guard.js';
import { JwtService } from './jwt.service.js';

@Module({ providers: [JwtService, AuthGuard], exports: [JwtService, AuthGuard] })
export class AuthModule {}
