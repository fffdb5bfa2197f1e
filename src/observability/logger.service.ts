import type { LoggerService } from '@nestjs/common';
import { pino, type DestinationStream, type Level, type LevelWithSilent, type Logger } from 'pino';
import { type AppConfig, ConfigError } from '../config/app-config.js';
import { redact } from './redact.js';
import { currentRequestId } from './request-context.js';

/** LOG_LEVEL values: pino's levels plus Nest's names for two of them. */
const LEVELS: Readonly<Record<string, LevelWithSilent>> = {
  silent: 'silent',
  fatal: 'fatal',
  error: 'error',
  warn: 'warn',
  info: 'info',
  log: 'info',
  debug: 'debug',
  verbose: 'trace',
  trace: 'trace',
};

/** Nest's `error(message, stack, context)` passes the stack as a plain string. */
const STACK = /\n\s+at /;

/** Below this length a configured secret would mask ordinary words (tests use `k` as API key). */
const MIN_SECRET_LENGTH = 8;

export interface LogOptions {
  readonly level: string;
  /** Values masked wherever they appear (API key, signing secrets). */
  readonly secrets?: readonly string[];
  /** Where the JSON lines go; stdout by default. */
  readonly destination?: DestinationStream;
}

/**
 * A pino logger that writes JSON lines, adds the current request id, and redacts every
 * argument before it is serialised.
 */
export function createPinoLogger(options: LogOptions): Logger {
  const level = LEVELS[options.level.toLowerCase()];
  if (level === undefined) {
    throw new ConfigError(
      'LOG_LEVEL',
      `must be one of ${Object.keys(LEVELS).join(', ')}, got "${options.level}"`,
    );
  }
  // Longest first, so a secret that contains another is masked whole.
  const secrets = (options.secrets ?? [])
    .filter((secret) => secret.length >= MIN_SECRET_LENGTH)
    .sort((a, b) => b.length - a.length);
  return pino(
    {
      level,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      mixin: () => {
        const requestId = currentRequestId();
        return requestId === undefined ? {} : { request_id: requestId };
      },
      hooks: {
        logMethod(args, method) {
          method.apply(this, args.map((arg) => redact(arg, secrets)) as typeof args);
        },
      },
    },
    options.destination ?? pino.destination({ dest: 1, sync: true }),
  );
}

/** Nest's logger interface on pino: `new Logger(Context)` calls anywhere end up here. */
export class AppLogger implements LoggerService {
  // Nest's level methods, at pino's levels (Nest's `log` is pino's `info`, `verbose` is `trace`).
  readonly log = this.at('info');
  readonly error = this.at('error');
  readonly warn = this.at('warn');
  readonly debug = this.at('debug');
  readonly verbose = this.at('trace');
  readonly fatal = this.at('fatal');

  constructor(readonly pino: Logger) {}

  static forConfig(config: AppConfig, destination?: DestinationStream): AppLogger {
    return new AppLogger(
      createPinoLogger({
        level: config.logLevel,
        secrets: [
          config.provider.apiKey ?? '',
          config.imageProvider.apiKey ?? '',
          config.auth.jwtSecret,
          config.image.signingSecret,
        ],
        destination,
      }),
    );
  }

  private at(level: Level): (message: unknown, ...params: unknown[]) => void {
    return (message, ...params) => this.write(level, message, params);
  }

  /** Nest appends the logger's context as the last string parameter. */
  private write(level: Level, message: unknown, params: unknown[]): void {
    if (!this.pino.isLevelEnabled(level)) return;
    const rest = [...params];
    const fields: Record<string, unknown> = {};
    const last = rest.at(-1);
    if (typeof last === 'string' && !STACK.test(last)) fields.context = rest.pop();
    if (typeof rest[0] === 'string' && STACK.test(rest[0])) fields.stack = rest.shift();
    if (rest.length > 0) fields.params = rest;
    if (message instanceof Error) {
      // Not `err`: pino's serializer for it would retype the already redacted copy.
      fields.error = message;
      this.pino[level](fields, message.message);
    } else if (typeof message === 'string') {
      this.pino[level](fields, message);
    } else {
      fields.data = message;
      this.pino[level](fields);
    }
  }
}
