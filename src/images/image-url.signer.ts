import { createHmac, timingSafeEqual } from 'node:crypto';
import { Inject, Injectable } from '@nestjs/common';
import type { AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';

export interface SignedImageUrl {
  /** Absolute, loads in an `<img>` with no header. */
  readonly url: string;
  readonly expiresAt: Date;
}

const EXP = /^\d{1,12}$/;
/** An HMAC-SHA256 in base64url without padding is always 43 characters. */
const SIG = /^[A-Za-z0-9_-]{43}$/;

/** Signs and checks the public image URLs: `?exp=<unix seconds>&sig=<HMAC of "id.exp">`. */
@Injectable()
export class ImageUrlSigner {
  constructor(@Inject(APP_CONFIG) private readonly config: AppConfig) {}

  sign(imageId: string, now: number = Date.now()): SignedImageUrl {
    const exp = Math.floor(now / 1000) + this.config.image.urlTtlSeconds;
    const query = new URLSearchParams({ exp: String(exp), sig: this.mac(imageId, String(exp)) });
    return {
      url: `${this.config.publicBaseUrl}/v1/images/${encodeURIComponent(imageId)}?${query}`,
      expiresAt: new Date(exp * 1000),
    };
  }

  /** False for a missing, malformed, expired or wrong signature. */
  verify(imageId: string, exp: unknown, sig: unknown, now: number = Date.now()): boolean {
    if (typeof exp !== 'string' || typeof sig !== 'string' || !EXP.test(exp) || !SIG.test(sig)) {
      return false;
    }
    if (Number(exp) * 1000 <= now) return false;
    // Compared as text: decoding first would accept the non-canonical spellings of the last char.
    return timingSafeEqual(Buffer.from(this.mac(imageId, exp)), Buffer.from(sig));
  }

  private mac(imageId: string, exp: string): string {
    return createHmac('sha256', this.config.image.signingSecret)
      .update(`${imageId}.${exp}`)
      .digest('base64url');
  }
}
