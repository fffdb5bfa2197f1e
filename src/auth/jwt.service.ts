import { Inject, Injectable } from '@nestjs/common';
import { errors, jwtVerify, SignJWT } from 'jose';
import { hasUnstorableText } from '../common/text.js';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';

/** HS256 tokens whose `sub` is the user id. */
@Injectable()
export class JwtService {
  private readonly key: Uint8Array;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.key = new TextEncoder().encode(config.auth.jwtSecret);
  }

  static sign(secret: string, userId: string, ttlSeconds = 30 * 24 * 3600): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
      .setSubject(userId)
      .setIssuedAt()
      .setExpirationTime(Math.floor(Date.now() / 1000) + ttlSeconds)
      .sign(new TextEncoder().encode(secret));
  }

  /**
   * Resolves the user id, or null for a token that is malformed, forged, expired or has no
   * usable `sub` (empty, or holding text PostgreSQL cannot store: no such user can exist).
   */
  async verify(token: string): Promise<string | null> {
    try {
      const { payload } = await jwtVerify(token, this.key, { algorithms: ['HS256'] });
      const sub = payload.sub;
      return typeof sub === 'string' && sub !== '' && !hasUnstorableText(sub) ? sub : null;
    } catch (error) {
      if (error instanceof errors.JOSEError) return null;
      throw error;
    }
  }
}
