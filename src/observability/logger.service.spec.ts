import { loadConfig } from '../config/app-config.js';
import { AppLogger, createPinoLogger } from './logger.service.js';

const JWT =
  'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSIsImV4cCI6MTk5OTk5OTk5OX0.c2lnbmF0dXJlLXNpZ25hdHVyZQ';
const API_KEY = 'sk-or-v1-0123456789abcdef0123456789abcdef';
const CONFIGURED_KEY = 'plain-upstream-key-42';
const PIXELS = Buffer.alloc(3000, 7).toString('base64');
const DATA_URL = `data:image/png;base64,${PIXELS}`;

type Line = Record<string, unknown>;

function capture(level = 'trace', secrets: readonly string[] = []) {
  const raw: string[] = [];
  const pino = createPinoLogger({
    level,
    secrets,
    destination: { write: (line) => raw.push(line) },
  });
  return {
    logger: new AppLogger(pino),
    raw,
    lines: (): Line[] => raw.map((line) => JSON.parse(line) as Line),
  };
}

describe('AppLogger', () => {
  it('writes one JSON line per call with level, message and Nest context', () => {
    const { logger, lines } = capture();
    logger.log('listening', 'Easel');
    logger.warn('slow upstream', 'ReplyStreamService');
    logger.verbose('detail');
    expect(lines()).toEqual([
      expect.objectContaining({ level: 'info', msg: 'listening', context: 'Easel' }),
      expect.objectContaining({
        level: 'warn',
        msg: 'slow upstream',
        context: 'ReplyStreamService',
      }),
      expect.objectContaining({ level: 'trace', msg: 'detail' }),
    ]);
    expect(typeof lines()[0].time).toBe('string');
  });

  it("takes Nest's error(message, stack, context) apart", () => {
    const { logger, lines } = capture();
    const error = new Error('boom');
    logger.error('turn failed', error.stack, 'TurnsService');
    logger.error(error, 'ApiExceptionFilter');
    const [first, second] = lines();
    expect(first).toEqual(
      expect.objectContaining({ level: 'error', msg: 'turn failed', context: 'TurnsService' }),
    );
    expect(first.stack).toContain('Error: boom');
    expect(second).toEqual(
      expect.objectContaining({
        msg: 'boom',
        context: 'ApiExceptionFilter',
        error: expect.objectContaining({ type: 'Error', message: 'boom' }),
      }),
    );
  });

  it('prints nothing at level silent', () => {
    const { logger, raw } = capture('silent');
    logger.log('a');
    logger.error('b', 'Ctx');
    logger.fatal('c');
    expect(raw).toEqual([]);
  });

  it('rejects an unknown level', () => {
    expect(() => capture('loud')).toThrow(/LOG_LEVEL must be one of/);
  });

  it('never writes tokens, API keys, configured secrets or image bytes', () => {
    const { logger, raw, lines } = capture('debug', [CONFIGURED_KEY]);
    logger.warn(`upstream said 401 for Authorization: Bearer ${JWT}`, 'Provider');
    logger.log(`retrying with key ${API_KEY} and ${CONFIGURED_KEY}`);
    logger.log(`image came back as ${DATA_URL} (decoding failed)`);
    logger.log(DATA_URL);
    logger.debug({
      headers: { Authorization: `Bearer ${JWT}`, 'x-api-key': API_KEY, accept: 'text/html' },
      api_key: CONFIGURED_KEY,
      image: { bytes: Buffer.from(PIXELS, 'base64'), url: DATA_URL },
      b64_json: PIXELS,
      usage: { prompt_tokens: 12, completion_tokens: 5 },
    });
    logger.error(new Error(`bad body: {"url":"${DATA_URL}","token":"${JWT}"}`));

    const output = raw.join('');
    for (const secret of [JWT, API_KEY, CONFIGURED_KEY, PIXELS, PIXELS.slice(0, 300)]) {
      expect(output).not.toContain(secret);
    }
    const [bearer, key, embedded, whole, fields] = lines();
    expect(bearer.msg).toBe('upstream said 401 for Authorization: Bearer [redacted]');
    expect(key.msg).toBe('retrying with key [redacted] and [redacted]');
    expect(embedded.msg).toBe(
      `image came back as data:image/png;base64,…[${DATA_URL.length} chars] (decoding failed)`,
    );
    expect(whole.msg).toBe(`data:image/png;base64,…[${DATA_URL.length} chars]`);
    expect(fields.data).toEqual({
      headers: { Authorization: '[redacted]', 'x-api-key': '[redacted]', accept: 'text/html' },
      api_key: '[redacted]',
      image: { bytes: '[3000 bytes]', url: `data:image/png;base64,…[${DATA_URL.length} chars]` },
      b64_json: `[base64 ${PIXELS.length} chars]`,
      usage: { prompt_tokens: 12, completion_tokens: 5 },
    });
  });

  it('masks the API key and secrets of the config', () => {
    const config = loadConfig({
      LLM_BASE_URL: 'http://127.0.0.1:1/api/v1',
      LLM_API_KEY: CONFIGURED_KEY,
      AUTH_JWT_SECRET: 'jwt-secret-0123456789abcdef',
      LOG_LEVEL: 'info',
    });
    const raw: string[] = [];
    const logger = AppLogger.forConfig(config, { write: (line) => raw.push(line) });
    logger.log(`config: ${CONFIGURED_KEY} ${config.auth.jwtSecret} ${config.image.signingSecret}`);
    logger.debug('below the level');
    expect(raw).toHaveLength(1);
    expect(JSON.parse(raw[0])).toEqual(
      expect.objectContaining({ msg: 'config: [redacted] [redacted] [redacted]' }),
    );
  });
});
