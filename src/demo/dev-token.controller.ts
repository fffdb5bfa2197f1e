import { Controller, HttpCode, Inject, Post, Req } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Request } from 'express';
import { JwtService } from '../auth/jwt.service.js';
import { ApiError } from '../common/api-error.js';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';

/** The user the development token is for: the same as the token `npm start` prints. */
export const DEV_USER = 'dev';

const LOOPBACK = new Set(['127.0.0.1', '::1', '::ffff:127.0.0.1']);

export interface DevToken {
  token: string;
  user_id: string;
}

/**
 * `POST /dev/token`: the demo page's "development token" button. Registered only when the server
 * made its own JWT secret (AUTH_JWT_SECRET unset, never in production), so the token it hands out
 * is the one already printed at boot, valid until restart. It answers only requests from this
 * machine: a dev server listening on all interfaces must not sign in its whole network.
 */
@ApiExcludeController()
@Controller('dev')
export class DevTokenController {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  @Post('token')
  @HttpCode(200)
  async token(@Req() request: Request): Promise<DevToken> {
    if (!LOOPBACK.has(request.socket.remoteAddress ?? '')) {
      throw ApiError.notFound('The development token is handed out to local requests only.');
    }
    return {
      token: await JwtService.sign(this.config.auth.jwtSecret, DEV_USER),
      user_id: DEV_USER,
    };
  }
}
