import { loadConfig } from '../config/app-config.js';
import { ImageUrlSigner } from './image-url.signer.js';

const env = {
  PUBLIC_BASE_URL: 'https://easel.example.com/',
  IMAGE_SIGNING_SECRET: 'a-signing-secret-for-tests',
  IMAGE_URL_TTL_SECONDS: '600',
};
const signer = new ImageUrlSigner(loadConfig(env));
const NOW = Date.UTC(2026, 10, 24, 12, 0, 0);

function parts(url: string): { id: string; exp: string; sig: string } {
  const parsed = new URL(url);
  return {
    id: decodeURIComponent(parsed.pathname.replace('/v1/images/', '')),
    exp: parsed.searchParams.get('exp') ?? '',
    sig: parsed.searchParams.get('sig') ?? '',
  };
}

describe('ImageUrlSigner', () => {
  it('signs an absolute URL that expires after the TTL', () => {
    const { url, expiresAt } = signer.sign('img_123', NOW);
    const exp = NOW / 1000 + 600;
    expect(url).toMatch(
      new RegExp(`^https://easel\\.example\\.com/v1/images/img_123\\?exp=${exp}&sig=[\\w-]{43}$`),
    );
    expect(expiresAt).toEqual(new Date(exp * 1000));
  });

  it('verifies its own signature until it expires', () => {
    const { id, exp, sig } = parts(signer.sign('img_123', NOW).url);
    expect(id).toBe('img_123');
    expect(signer.verify(id, exp, sig, NOW)).toBe(true);
    expect(signer.verify(id, exp, sig, NOW + 599_999)).toBe(true);
    expect(signer.verify(id, exp, sig, NOW + 600_000)).toBe(false);
  });

  it('round-trips ids that need escaping', () => {
    const { id, exp, sig } = parts(signer.sign('a/b c?d', NOW).url);
    expect(signer.verify(id, exp, sig, NOW)).toBe(true);
  });

  it('rejects a tampered signature, id or expiry', () => {
    const { id, exp, sig } = parts(signer.sign('img_123', NOW).url);
    const flipped = `${sig[0] === 'A' ? 'B' : 'A'}${sig.slice(1)}`;
    expect(signer.verify(id, exp, flipped, NOW)).toBe(false);
    expect(signer.verify('img_124', exp, sig, NOW)).toBe(false);
    expect(signer.verify(id, String(Number(exp) + 3600), sig, NOW)).toBe(false);
  });

  it('rejects a non-canonical spelling of the same signature bytes', () => {
    const { id, exp, sig } = parts(signer.sign('img_123', NOW).url);
    // The last base64url character carries 2 unused bits: several spellings decode alike.
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(sig[42]);
    const twin = `${sig.slice(0, 42)}${alphabet[last ^ 1]}`;
    expect(Buffer.from(twin, 'base64url')).toEqual(Buffer.from(sig, 'base64url'));
    expect(signer.verify(id, exp, twin, NOW)).toBe(false);
  });

  it('rejects a signature made with another secret', () => {
    const other = new ImageUrlSigner(
      loadConfig({ ...env, IMAGE_SIGNING_SECRET: 'another-secret-entirely' }),
    );
    const { id, exp, sig } = parts(other.sign('img_123', NOW).url);
    expect(signer.verify(id, exp, sig, NOW)).toBe(false);
  });

  it('rejects missing or malformed parameters', () => {
    const { id, exp, sig } = parts(signer.sign('img_123', NOW).url);
    const malformed: [unknown, unknown][] = [
      [undefined, sig],
      [exp, undefined],
      [[exp, exp], sig],
      [exp, [sig]],
      [`${exp}.0`, sig],
      [` ${exp}`, sig],
      [`-${exp}`, sig],
      [exp, sig.slice(0, 42)],
      [exp, `${sig.slice(0, 42)}=`],
      [exp, `${sig}A`],
    ];
    for (const [badExp, badSig] of malformed) {
      expect(signer.verify(id, badExp, badSig, NOW)).toBe(false);
    }
  });
});
