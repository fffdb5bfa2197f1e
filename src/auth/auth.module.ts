import { Global, Module } from '@nestjs/common';
import { AuthGuard } from './auth.guard.js';
import { JwtService } from './jwt.service.js';

@Global()
@Module({ providers: [JwtService, AuthGuard], exports: [JwtService, AuthGuard] })
export class AuthModule {}
