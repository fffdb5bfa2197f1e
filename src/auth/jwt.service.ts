import { Inject, Injectable } from '@nestjs/common';
import { createHmac, timingSafeEqual } from 'node:crypto';
import { SignJWT } from 'jose';
import { hasUnstorableText } from '../common/text.js';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';

/** UTF-8 as jose decodes a JWT's JSON: invalid bytes are an error, a leading BOM is skipped. */
const UTF8 = new TextDecoder('utf-8', { fatal: true });

/**
 * HS256 tokens whose `sub` is the user id. Verified synchronously with `node:crypto`, with the
 * checks and outcomes of jose's `jwtVerify(token, key, { algorithms: ['HS256'] })` (signing
 * stays with jose): its WebCrypto calls cost 0.34 ms of every request (profile of 2026-12-01).
 */
@Injectable()
export class JwtService {
  private readonly key: Buffer;

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    this.key = Buffer.from(config.auth.jwtSecret, 'utf8');
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
   * The user id, or null for a token that is malformed, forged, expired or has no usable `sub`
   * (empty, or holding text PostgreSQL cannot store: no such user can exist).
   */
  verify(token: string): string | null {
    const parts = token.split('.');
    if (parts.length !== 3) return null;
    const header = jsonObject(parts[0]);
    if (!header || header.alg !== 'HS256' || !acceptedCrit(header)) return null;
    const signature = base64url(parts[2]);
    const expected = createHmac('sha256', this.key)
      .update(token.slice(0, token.length - parts[2].length - 1))
      .digest();
    if (!signature || signature.length !== expected.length) return null;
    if (!timingSafeEqual(signature, expected)) return null;
    const claims = jsonObject(parts[1]);
    if (!claims || !validTimes(claims)) return null;
    const sub = claims.sub;
    return typeof sub === 'string' && sub !== '' && !hasUnstorableText(sub) ? sub : null;
  }
}

/** Base64url as jose decodes it on Node 20 (`atob`: padding optional, any other byte refused). */
function base64url(text: string): Buffer | null {
  if (text.includes('+') || text.includes('/')) return null;
  try {
    return Buffer.from(atob(text.replaceAll('-', '+').replaceAll('_', '/')), 'latin1');
  } catch {
    return null;
  }
}

/** A segment holding a JSON object (not an array, not a scalar), or null. */
function jsonObject(segment: string): Record<string, unknown> | null {
  const bytes = base64url(segment);
  if (!bytes) return null;
  try {
    const value: unknown = JSON.parse(UTF8.decode(bytes));
    return typeof value === 'object' && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

/**
 * jose knows one critical extension, `b64`, and a JWT must leave its payload encoded: a `crit`
 * header passes only as `["b64", …]` with `b64: true`.
 */
function acceptedCrit(header: Record<string, unknown>): boolean {
  const crit = header.crit;
  if (crit === undefined) return true;
  return (
    Array.isArray(crit) &&
    crit.length > 0 &&
    crit.every((name) => name === 'b64') &&
    header.b64 === true
  );
}

/** `iat`, `nbf` and `exp` are numbers when present; not before `nbf`, and before `exp`. */
function validTimes(claims: Record<string, unknown>): boolean {
  const { iat, nbf, exp } = claims;
  for (const time of [iat, nbf, exp])
    if (time !== undefined && typeof time !== 'number') return false;
  const now = Math.floor(Date.now() / 1000);
  return !(typeof nbf === 'number' && nbf > now) && !(typeof exp === 'number' && exp <= now);
}
