import { createHmac } from 'node:crypto';
import { jwtVerify, SignJWT } from 'jose';
import { loadConfig } from '../config/app-config.js';
import { JwtService } from './jwt.service.js';

const SECRET = 'unit-test-secret-0123456789';
const service = new JwtService(loadConfig({ NODE_ENV: 'development', AUTH_JWT_SECRET: SECRET }));
const now = (): number => Math.floor(Date.now() / 1000);
const b64 = (text: string | Buffer): string => Buffer.from(text).toString('base64url');

/** A token with exactly these header and payload bytes, signed with `secret`. */
function forge(header: string, payload: string | Buffer, secret = SECRET): string {
  const input = `${b64(header)}.${b64(payload)}`;
  return `${input}.${createHmac('sha256', secret).update(input).digest('base64url')}`;
}

function signed(claims: Record<string, unknown>, header: Record<string, unknown> = {}): string {
  return forge(JSON.stringify({ alg: 'HS256', ...header }), JSON.stringify(claims));
}

/** What jose's jwtVerify (the verifier this one replaced) makes of the token, as verify answers. */
async function jose(token: string): Promise<string | null> {
  try {
    const { payload } = await jwtVerify(token, new TextEncoder().encode(SECRET), {
      algorithms: ['HS256'],
    });
    return typeof payload.sub === 'string' ? payload.sub : null;
  } catch {
    return null;
  }
}

const valid = signed({ sub: 'alice', exp: now() + 60 });
const [head, body, mac] = valid.split('.');

const CASES: Array<[string, () => string | Promise<string>]> = [
  ['a token signed by jose', () => JwtService.sign(SECRET, 'alice')],
  ['no exp at all', () => signed({ sub: 'alice' })],
  ['nbf and iat in the past', () => signed({ sub: 'alice', nbf: now() - 5, iat: now() - 5 })],
  ['typ JOSE, kid, other headers (not checked)', () => signed({ sub: 'a' }, { typ: 'x', kid: 1 })],
  ['crit ["b64"] with b64: true', () => signed({ sub: 'alice' }, { crit: ['b64'], b64: true })],
  ['a payload with a BOM', () => forge('{"alg":"HS256"}', '\uFEFF{"sub":"alice"}')],
  ['padded segments', () => `${head}.${body}${'='.repeat((4 - (body.length % 4)) % 4)}.${mac}=`],
  [
    'another secret',
    () => forge('{"alg":"HS256"}', '{"sub":"alice"}', 'another-secret-0123456789'),
  ],
  ['expired now', () => signed({ sub: 'alice', exp: now() })],
  ['expired', () => signed({ sub: 'alice', exp: now() - 60 })],
  ['not yet valid', () => signed({ sub: 'alice', nbf: now() + 60 })],
  ['exp as a string', () => signed({ sub: 'alice', exp: String(now() + 60) })],
  ['iat as a string', () => signed({ sub: 'alice', iat: 'yesterday' })],
  ['nbf as null', () => signed({ sub: 'alice', nbf: null })],
  ['alg none', () => `${b64('{"alg":"none"}')}.${b64('{"sub":"alice"}')}.`],
  ['alg HS512', () => signed({ sub: 'alice' }, { alg: 'HS512' })],
  ['alg hs256', () => signed({ sub: 'alice' }, { alg: 'hs256' })],
  ['no alg', () => forge('{}', '{"sub":"alice"}')],
  ['crit ["b64"] with b64: false', () => signed({ sub: 'a' }, { crit: ['b64'], b64: false })],
  ['crit ["b64"] without b64', () => signed({ sub: 'alice' }, { crit: ['b64'] })],
  ['crit ["exp"]', () => signed({ sub: 'alice' }, { crit: ['exp'], exp: 1 })],
  ['crit []', () => signed({ sub: 'alice' }, { crit: [] })],
  ['crit "b64"', () => signed({ sub: 'alice' }, { crit: 'b64', b64: true })],
  ['a header that is an array', () => forge('["HS256"]', '{"sub":"alice"}')],
  ['a payload that is an array', () => forge('{"alg":"HS256"}', '["alice"]')],
  ['a payload that is not JSON', () => forge('{"alg":"HS256"}', 'alice')],
  ['a payload that is not UTF-8', () => forge('{"alg":"HS256"}', Buffer.from([0x7b, 0xff, 0x7d]))],
  ['two segments', () => `${head}.${body}`],
  ['four segments', () => `${valid}.${mac}`],
  ['an empty signature', () => `${head}.${body}.`],
  ['a truncated signature', () => `${head}.${body}.${mac.slice(0, -2)}`],
  ['a signature in base64, not base64url', () => `${head}.${body}.${mac.replaceAll('-', '+')}+`],
  ['a signature with a stray character', () => `${head}.${body}.${mac}!`],
  ['a signature with a stray padding', () => `${head}.${body}.${mac}==`],
  ['a sub that is a number', () => signed({ sub: 42 })],
  ['no sub', () => signed({ exp: now() + 60 })],
  ['garbage', () => 'not-a-token'],
];

describe('JwtService.verify', () => {
  it.each(CASES)('%s: the same outcome as jose', async (_, make) => {
    const token = await make();
    expect(service.verify(token)).toBe(await jose(token));
  });

  it('accepts what it signs, and only with its own secret', async () => {
    const token = await JwtService.sign(SECRET, 'alice');
    expect(service.verify(token)).toBe('alice');
    expect(service.verify(await JwtService.sign('another-secret-0123456789', 'alice'))).toBeNull();
    const expired = await new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject('alice')
      .setExpirationTime(now() - 1)
      .sign(new TextEncoder().encode(SECRET));
    expect(service.verify(expired)).toBeNull();
  });

  it.each([
    ['empty', ''],
    ['a NUL', 'al\u0000ice'],
    ['a lone surrogate', '\uD83Dalice'],
  ])('refuses a sub holding %s (no such user can exist)', (_, sub) => {
    expect(service.verify(signed({ sub }))).toBeNull();
  });
});
