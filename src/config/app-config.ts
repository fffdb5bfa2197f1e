import { randomBytes } from 'node:crypto';

/** Everything the service reads from the environment, parsed and validated once at boot. */
export interface AppConfig {
  readonly nodeEnv: string;
  readonly port: number;
  readonly publicBaseUrl: string;
  readonly databaseUrl: string | null;
  readonly dataDir: string;
  /** Embedded PGlite runs in a worker thread (PGLITE_WORKER, default on), off the relaying loop. */
  readonly pgliteWorker: boolean;
  readonly auth: {
    readonly jwtSecret: string;
    /** True when no AUTH_JWT_SECRET was given and one was made for this process (dev only). */
    readonly generated: boolean;
  };
  readonly provider: {
    readonly kind: 'openai-compatible' | 'demo';
    readonly baseUrl: string | null;
    readonly apiKey: string | null;
    /** Pause between demo tokens; the demo streams at a human pace so `npm start` shows streaming. */
    readonly demoTokenDelayMs: number;
    /** Time a demo image takes (previews included), so the attempt frames can be watched. */
    readonly demoImageDelayMs: number;
    /** A chat call with no first token (a composer call with no answer) this long fails as 'timeout'. */
    readonly chatFirstTokenTimeoutMs: number;
    /** A chat stream that sends nothing for this long mid-reply fails as 'timeout'. */
    readonly chatIdleTimeoutMs: number;
    /** Sent upstream as `max_tokens` on every chat and composer request. */
    readonly chatMaxTokens: number;
  };
  /** The image upstream: its own URL, key and API, defaulting to the chat upstream's. */
  readonly imageProvider: {
    /** `demo` when there are no credentials; otherwise the configured `IMAGE_API`. */
    readonly kind: 'demo' | ImageApi;
    readonly baseUrl: string | null;
    readonly apiKey: string | null;
  };
  readonly chatModels: readonly string[];
  readonly image: {
    /** Empty → image generation disabled. */
    readonly models: readonly string[];
    /** null → prompt composing off (single-variant attempts). */
    readonly composeModel: string | null;
    readonly attemptTimeoutMs: number;
    /** Largest image an attempt may return (checked on the base64 length, before decoding). */
    readonly maxBytes: number;
    /** Largest preview sent as `image_partial`; a larger one is dropped. */
    readonly previewMaxBytes: number;
    readonly inline: boolean;
    readonly urlTtlSeconds: number;
    readonly signingSecret: string;
  };
  readonly turnTimeoutMs: number;
  /** A reply longer than this (UTF-16 code units) is cut: `done(truncated)` + `error`. */
  readonly replyMaxChars: number;
  /** api-reference §8a: how long a `cancel` turn waits, once its last client left, for one to re-attach. */
  readonly disconnectGraceMs: number;
  /** api-reference §8a: how long a turn's frame log is kept after it ended (resume window). */
  readonly resumeWindowMs: number;
  readonly sseHeartbeatMs: number;
  /** Node's HTTP server limits (docs/api-reference.md "Server timeouts"). */
  readonly http: {
    /** From a connection's first byte to the end of the request headers. */
    readonly headersTimeoutMs: number;
    /** From the first byte to the end of the request body (not the response: streams are not cut). */
    readonly requestTimeoutMs: number;
    /** How long an idle keep-alive connection stays open between requests. */
    readonly keepAliveTimeoutMs: number;
  };
  readonly maxStreamsPerUser: number;
  /** Turns of this instance in their start (checks and first rows) at once; the rest queue. */
  readonly turnStartConcurrency: number;
  /** How many earlier messages of the session go to the model as context. */
  readonly historyMessages: number;
  readonly shutdownGraceMs: number;
  readonly logLevel: string;
  /**
   * Serve the demo page at `/` (DEMO_PAGE). Default: on outside production; a production API
   * serves apps, not a page that asks people to paste tokens (docs: README "Demo page").
   */
  readonly demoPage: boolean;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    detail: string,
  ) {
    super(`Invalid configuration: ${variable} ${detail}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** `IMAGE_API`: how images are asked for (docs/api-reference.md §7 and §13). */
export const IMAGE_APIS = ['chat-completions', 'images'] as const;
export type ImageApi = (typeof IMAGE_APIS)[number];

const DEMO_CHAT_MODELS = ['demo/chat'];
/** The demo chain's first model always fails, so a newcomer sees the fallback at work. */
const DEMO_IMAGE_MODELS = ['demo/flaky-painter', 'demo/painter'];
const OPENROUTER_CHAT_MODELS = ['openai/gpt-4o-mini'];
const OPENROUTER_IMAGE_MODELS = ['google/gemini-2.5-flash-image'];
const IMAGES_API_MODELS = ['gpt-image-1'];

/** pino's levels plus Nest's names for two of them (log = info, verbose = trace). */
export const LOG_LEVELS = [
  'silent',
  'fatal',
  'error',
  'warn',
  'info',
  'log',
  'debug',
  'verbose',
  'trace',
];

function raw(env: Env, name: string): string | undefined {
  const value = env[name];
  return value === undefined ? undefined : value.trim();
}

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const value = raw(env, name);
  if (value === undefined || value === '') return fallback;
  if (!/^-?\d+$/.test(value)) throw new ConfigError(name, `must be a whole number, got "${value}"`);
  const parsed = Number(value);
  if (parsed < min || parsed > max) {
    throw new ConfigError(name, `must be between ${min} and ${max}, got ${parsed}`);
  }
  return parsed;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const value = raw(env, name)?.toLowerCase();
  if (value === undefined || value === '') return fallback;
  if (['true', '1', 'yes', 'on'].includes(value)) return true;
  if (['false', '0', 'no', 'off'].includes(value)) return false;
  throw new ConfigError(name, `must be true or false, got "${value}"`);
}

function url(env: Env, name: string, protocols: readonly string[]): string | undefined {
  const value = raw(env, name);
  if (value === undefined || value === '') return undefined;
  let parsed: URL;
  try {
    parsed = new URL(value);
  } catch {
    throw new ConfigError(name, `must be an absolute URL, got "${value}"`);
  }
  if (!protocols.includes(parsed.protocol)) {
    throw new ConfigError(name, `must use ${protocols.join(' or ')}, got "${parsed.protocol}"`);
  }
  return value.replace(/\/+$/, '');
}

/** A comma list; unset → fallback, set but empty → []. */
function list(env: Env, name: string, fallback: readonly string[]): readonly string[] {
  const value = raw(env, name);
  if (value === undefined) return fallback;
  const items = value
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  return [...new Set(items)];
}

function oneOf<T extends string>(env: Env, name: string, values: readonly T[], fallback: T): T {
  const value = raw(env, name);
  if (value === undefined || value === '') return fallback;
  const match = values.find((candidate) => candidate === value);
  if (match === undefined) {
    throw new ConfigError(name, `must be one of ${values.join(', ')}, got "${value}"`);
  }
  return match;
}

/** IMAGE_BASE_URL / IMAGE_API_KEY, each defaulting to its LLM_ counterpart. */
function imageProvider(
  env: Env,
  llmBaseUrl: string | null,
  llmApiKey: string | null,
): AppConfig['imageProvider'] {
  const api = oneOf(env, 'IMAGE_API', IMAGE_APIS, 'chat-completions');
  const baseUrl = url(env, 'IMAGE_BASE_URL', ['http:', 'https:']) ?? llmBaseUrl;
  const apiKey = raw(env, 'IMAGE_API_KEY') || llmApiKey;
  if (baseUrl && !apiKey) {
    throw new ConfigError(
      'IMAGE_API_KEY',
      'is required when IMAGE_BASE_URL is set (or LLM_API_KEY)',
    );
  }
  if (apiKey && !baseUrl) {
    throw new ConfigError(
      'IMAGE_BASE_URL',
      'is required when IMAGE_API_KEY is set (or LLM_BASE_URL)',
    );
  }
  return { kind: baseUrl ? api : 'demo', baseUrl, apiKey };
}

function httpTimeouts(env: Env): AppConfig['http'] {
  const headersTimeoutMs = integer(env, 'HTTP_HEADERS_TIMEOUT_MS', 15_000, 100, 600_000);
  const requestTimeoutMs = integer(env, 'HTTP_REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000);
  // Node checks the headers limit only while the request limit has not passed.
  if (headersTimeoutMs > requestTimeoutMs) {
    throw new ConfigError(
      'HTTP_HEADERS_TIMEOUT_MS',
      `must not exceed HTTP_REQUEST_TIMEOUT_MS (${requestTimeoutMs}), got ${headersTimeoutMs}`,
    );
  }
  return {
    headersTimeoutMs,
    requestTimeoutMs,
    keepAliveTimeoutMs: integer(env, 'HTTP_KEEPALIVE_TIMEOUT_MS', 65_000, 100, 600_000),
  };
}

function logLevel(env: Env): string {
  const value = (raw(env, 'LOG_LEVEL') || 'info').toLowerCase();
  if (!LOG_LEVELS.includes(value)) {
    throw new ConfigError('LOG_LEVEL', `must be one of ${LOG_LEVELS.join(', ')}, got "${value}"`);
  }
  return value;
}

export function loadConfig(env: Env = process.env): AppConfig {
  const nodeEnv = raw(env, 'NODE_ENV') || 'development';
  const port = integer(env, 'PORT', 3000, 0, 65535);

  const baseUrl = url(env, 'LLM_BASE_URL', ['http:', 'https:']) ?? null;
  const apiKey = raw(env, 'LLM_API_KEY') || null;
  if (baseUrl && !apiKey)
    throw new ConfigError('LLM_API_KEY', 'is required when LLM_BASE_URL is set');
  if (apiKey && !baseUrl)
    throw new ConfigError('LLM_BASE_URL', 'is required when LLM_API_KEY is set');
  const kind = baseUrl ? 'openai-compatible' : 'demo';

  let jwtSecret = raw(env, 'AUTH_JWT_SECRET') || '';
  const generated = jwtSecret === '';
  if (generated) {
    if (nodeEnv === 'production') {
      throw new ConfigError('AUTH_JWT_SECRET', 'is required when NODE_ENV=production');
    }
    jwtSecret = randomBytes(32).toString('base64url');
  } else if (jwtSecret.length < 16) {
    throw new ConfigError('AUTH_JWT_SECRET', 'must be at least 16 characters long');
  }

  const chatModels = list(
    env,
    'CHAT_MODELS',
    kind === 'demo' ? DEMO_CHAT_MODELS : OPENROUTER_CHAT_MODELS,
  );
  if (chatModels.length === 0) throw new ConfigError('CHAT_MODELS', 'must name at least one model');

  const images = imageProvider(env, baseUrl, apiKey);
  const imageModels = list(
    env,
    'IMAGE_MODELS',
    images.kind === 'demo'
      ? DEMO_IMAGE_MODELS
      : images.kind === 'images'
        ? IMAGES_API_MODELS
        : OPENROUTER_IMAGE_MODELS,
  );
  // Unset → the primary chat model composes; set to "" or "off" → composing is off.
  const composeRaw = raw(env, 'IMAGE_COMPOSE_MODEL');
  const composeModel =
    composeRaw === undefined
      ? chatModels[0]
      : composeRaw === '' || composeRaw === 'off'
        ? null
        : composeRaw;

  const publicBaseUrl =
    url(env, 'PUBLIC_BASE_URL', ['http:', 'https:']) ??
    `http://localhost:${port === 0 ? 3000 : port}`;

  return {
    nodeEnv,
    port,
    publicBaseUrl,
    databaseUrl: url(env, 'DATABASE_URL', ['postgres:', 'postgresql:']) ?? null,
    dataDir: raw(env, 'DATA_DIR') || './data',
    pgliteWorker: boolean(env, 'PGLITE_WORKER', true),
    auth: { jwtSecret, generated },
    provider: {
      kind,
      baseUrl,
      apiKey,
      demoTokenDelayMs: integer(env, 'DEMO_TOKEN_DELAY_MS', 35, 0, 10_000),
      demoImageDelayMs: integer(env, 'DEMO_IMAGE_DELAY_MS', 600, 0, 60_000),
      chatFirstTokenTimeoutMs: integer(env, 'CHAT_FIRST_TOKEN_TIMEOUT_MS', 30_000, 100, 600_000),
      chatIdleTimeoutMs: integer(env, 'CHAT_IDLE_TIMEOUT_MS', 30_000, 100, 600_000),
      chatMaxTokens: integer(env, 'CHAT_MAX_TOKENS', 4096, 1, 1_000_000),
    },
    imageProvider: images,
    chatModels,
    image: {
      models: imageModels,
      composeModel,
      attemptTimeoutMs: integer(env, 'IMAGE_ATTEMPT_TIMEOUT_MS', 60_000, 100, 600_000),
      maxBytes: integer(env, 'IMAGE_MAX_BYTES', 10 * 1024 * 1024, 1024, 100 * 1024 * 1024),
      previewMaxBytes: integer(
        env,
        'IMAGE_PREVIEW_MAX_BYTES',
        2 * 1024 * 1024,
        1024,
        20 * 1024 * 1024,
      ),
      inline: boolean(env, 'IMAGE_INLINE', true),
      urlTtlSeconds: integer(env, 'IMAGE_URL_TTL_SECONDS', 86_400, 1, 31_536_000),
      signingSecret: raw(env, 'IMAGE_SIGNING_SECRET') || `${jwtSecret}:images`,
    },
    turnTimeoutMs: integer(env, 'TURN_TIMEOUT_MS', 120_000, 100, 3_600_000),
    replyMaxChars: integer(env, 'REPLY_MAX_CHARS', 200_000, 1, 10_000_000),
    disconnectGraceMs: integer(env, 'DISCONNECT_GRACE_MS', 0, 0, 600_000),
    resumeWindowMs: integer(env, 'RESUME_WINDOW_MS', 600_000, 1_000, 86_400_000),
    sseHeartbeatMs: integer(env, 'SSE_HEARTBEAT_MS', 15_000, 10, 600_000),
    http: httpTimeouts(env),
    maxStreamsPerUser: integer(env, 'MAX_STREAMS_PER_USER', 3, 1, 1000),
    turnStartConcurrency: integer(env, 'TURN_START_CONCURRENCY', 8, 1, 1000),
    historyMessages: integer(env, 'HISTORY_MESSAGES', 20, 0, 200),
    shutdownGraceMs: integer(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    logLevel: logLevel(env),
    demoPage: boolean(env, 'DEMO_PAGE', nodeEnv !== 'production'),
  };
}
