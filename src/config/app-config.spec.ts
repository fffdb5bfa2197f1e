import { type AppConfig, ConfigError, loadConfig } from './app-config.js';

const SECRET = 'a-long-enough-secret';

/** The configuration of `env` with a valid secret, so each case names only what it is about. */
const load = (env: Record<string, string> = {}): AppConfig =>
  loadConfig({ AUTH_JWT_SECRET: SECRET, ...env });

describe('loadConfig', () => {
  it('defaults to the offline demo provider on embedded PGlite', () => {
    const config = load();
    expect(config.provider.kind).toBe('demo');
    expect(config.databaseUrl).toBeNull();
    expect(config.dataDir).toBe('./data');
    expect(config.port).toBe(3000);
    expect(config.turnTimeoutMs).toBe(120_000);
    expect(config.sseHeartbeatMs).toBe(15_000);
    expect(config.maxStreamsPerUser).toBe(3);
    expect(config.turnStartConcurrency).toBe(8);
    expect(config.image.inline).toBe(true);
    expect(config.image.models.length).toBeGreaterThan(1);
    expect(config.publicBaseUrl).toBe('http://localhost:3000');
  });

  it.each([
    [
      'defaults',
      {},
      {
        replyMaxChars: 200_000,
        http: { headersTimeoutMs: 15_000, requestTimeoutMs: 30_000, keepAliveTimeoutMs: 65_000 },
        chat: { chatFirstTokenTimeoutMs: 30_000, chatIdleTimeoutMs: 30_000, chatMaxTokens: 4096 },
      },
    ],
    [
      'reads',
      {
        REPLY_MAX_CHARS: '5000',
        HTTP_HEADERS_TIMEOUT_MS: '2000',
        HTTP_REQUEST_TIMEOUT_MS: '2000',
        HTTP_KEEPALIVE_TIMEOUT_MS: '1000',
        CHAT_FIRST_TOKEN_TIMEOUT_MS: '5000',
        CHAT_IDLE_TIMEOUT_MS: '7000',
        CHAT_MAX_TOKENS: '1000',
      },
      {
        replyMaxChars: 5000,
        http: { headersTimeoutMs: 2000, requestTimeoutMs: 2000, keepAliveTimeoutMs: 1000 },
        chat: { chatFirstTokenTimeoutMs: 5000, chatIdleTimeoutMs: 7000, chatMaxTokens: 1000 },
      },
    ],
  ])('%s the reply cap, the HTTP server timeouts and the chat limits', (_, env, expected) => {
    const { replyMaxChars, http, provider } = load(env);
    const { chatFirstTokenTimeoutMs, chatIdleTimeoutMs, chatMaxTokens } = provider;
    const chat = { chatFirstTokenTimeoutMs, chatIdleTimeoutMs, chatMaxTokens };
    expect({ replyMaxChars, http, chat }).toEqual(expected);
  });

  it('uses the OpenAI-compatible provider when a base URL and key are given', () => {
    const config = load({
      LLM_BASE_URL: 'https://openrouter.ai/api/v1/',
      LLM_API_KEY: 'sk-x',
      CHAT_MODELS: ' a , b ,a',
      IMAGE_MODELS: '',
    });
    expect(config.provider).toMatchObject({
      kind: 'openai-compatible',
      baseUrl: 'https://openrouter.ai/api/v1',
    });
    expect(config.chatModels).toEqual(['a', 'b']);
    expect(config.image.models).toEqual([]);
    expect(config.image.composeModel).toBe('a');
  });

  it('defaults the image upstream to the chat upstream', () => {
    const config = load({ LLM_BASE_URL: 'https://openrouter.ai/api/v1', LLM_API_KEY: 'sk-x' });
    expect(config.imageProvider).toEqual({
      kind: 'chat-completions',
      baseUrl: 'https://openrouter.ai/api/v1',
      apiKey: 'sk-x',
    });
    expect(load().imageProvider.kind).toBe('demo');
  });

  it('takes a separate image upstream with IMAGE_API=images, chat staying demo or elsewhere', () => {
    const config = load({
      IMAGE_API: 'images',
      IMAGE_BASE_URL: 'https://api.openai.com/v1/',
      IMAGE_API_KEY: 'sk-img',
    });
    expect(config.provider.kind).toBe('demo');
    expect(config.imageProvider).toEqual({
      kind: 'images',
      baseUrl: 'https://api.openai.com/v1',
      apiKey: 'sk-img',
    });
    expect(config.image.models).toEqual(['gpt-image-1']);
  });

  it('serves the demo page outside production unless DEMO_PAGE says otherwise', () => {
    expect(load().demoPage).toBe(true);
    expect(load({ DEMO_PAGE: 'false' }).demoPage).toBe(false);
    expect(load({ NODE_ENV: 'production' }).demoPage).toBe(false);
    expect(load({ NODE_ENV: 'production', DEMO_PAGE: 'true' }).demoPage).toBe(true);
    expect(() => load({ DEMO_PAGE: 'maybe' })).toThrow(ConfigError);
  });

  it('turns composing off with IMAGE_COMPOSE_MODEL=off', () => {
    expect(load({ IMAGE_COMPOSE_MODEL: 'off' }).image.composeModel).toBeNull();
  });

  it('makes a secret outside production and refuses to boot without one in production', () => {
    const dev = loadConfig({});
    expect(dev.auth.generated).toBe(true);
    expect(dev.auth.jwtSecret.length).toBeGreaterThanOrEqual(32);
    expect(() => loadConfig({ NODE_ENV: 'production' })).toThrow(
      'Invalid configuration: AUTH_JWT_SECRET is required when NODE_ENV=production',
    );
  });

  it.each([
    [{ PORT: 'abc' }, 'PORT must be a whole number, got "abc"'],
    [{ PORT: '70000' }, 'PORT must be between 0 and 65535, got 70000'],
    [{ MAX_STREAMS_PER_USER: '0' }, 'MAX_STREAMS_PER_USER must be between 1 and 1000, got 0'],
    [{ TURN_START_CONCURRENCY: '0' }, 'TURN_START_CONCURRENCY must be between 1 and 1000, got 0'],
    [{ IMAGE_INLINE: 'maybe' }, 'IMAGE_INLINE must be true or false, got "maybe"'],
    [
      { LLM_BASE_URL: 'not a url', LLM_API_KEY: 'k' },
      'LLM_BASE_URL must be an absolute URL, got "not a url"',
    ],
    [{ LLM_BASE_URL: 'https://x.test' }, 'LLM_API_KEY is required when LLM_BASE_URL is set'],
    [{ DATABASE_URL: 'mysql://x' }, 'DATABASE_URL must use postgres: or postgresql:, got "mysql:"'],
    [{ CHAT_MODELS: ' , ' }, 'CHAT_MODELS must name at least one model'],
    [
      { IMAGE_API: 'responses' },
      'IMAGE_API must be one of chat-completions, images, got "responses"',
    ],
    [
      { IMAGE_BASE_URL: 'https://x.test' },
      'IMAGE_API_KEY is required when IMAGE_BASE_URL is set (or LLM_API_KEY)',
    ],
    [
      { IMAGE_API_KEY: 'k' },
      'IMAGE_BASE_URL is required when IMAGE_API_KEY is set (or LLM_BASE_URL)',
    ],
    [
      { CHAT_FIRST_TOKEN_TIMEOUT_MS: '50' },
      'CHAT_FIRST_TOKEN_TIMEOUT_MS must be between 100 and 600000, got 50',
    ],
    [{ CHAT_IDLE_TIMEOUT_MS: 'soon' }, 'CHAT_IDLE_TIMEOUT_MS must be a whole number, got "soon"'],
    [{ CHAT_MAX_TOKENS: '0' }, 'CHAT_MAX_TOKENS must be between 1 and 1000000, got 0'],
    [{ REPLY_MAX_CHARS: '0' }, 'REPLY_MAX_CHARS must be between 1 and 10000000, got 0'],
    [{ REPLY_MAX_CHARS: '2e5' }, 'REPLY_MAX_CHARS must be a whole number, got "2e5"'],
    [
      { HTTP_REQUEST_TIMEOUT_MS: '50' },
      'HTTP_REQUEST_TIMEOUT_MS must be between 100 and 3600000, got 50',
    ],
    [
      { HTTP_HEADERS_TIMEOUT_MS: '20000', HTTP_REQUEST_TIMEOUT_MS: '10000' },
      'HTTP_HEADERS_TIMEOUT_MS must not exceed HTTP_REQUEST_TIMEOUT_MS (10000), got 20000',
    ],
    [
      { HTTP_KEEPALIVE_TIMEOUT_MS: 'forever' },
      'HTTP_KEEPALIVE_TIMEOUT_MS must be a whole number, got "forever"',
    ],
    [{ AUTH_JWT_SECRET: 'short' }, 'AUTH_JWT_SECRET must be at least 16 characters long'],
    [
      { LOG_LEVEL: 'loud' },
      'LOG_LEVEL must be one of silent, fatal, error, warn, info, log, debug, verbose, trace, got "loud"',
    ],
  ])('rejects %j with one readable line naming the variable', (env, detail) => {
    let thrown: unknown;
    try {
      load(env);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(ConfigError);
    expect((thrown as ConfigError).message).toBe(`Invalid configuration: ${detail}`);
    expect((thrown as ConfigError).message).not.toContain('\n');
  });
});
