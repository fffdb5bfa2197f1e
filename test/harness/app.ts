import type { NestExpressApplication } from '@nestjs/platform-express';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import { SignJWT } from 'jose';
import pg from 'pg';
import { JwtService } from '../../src/auth/jwt.service.js';
import { createApp } from '../../src/bootstrap.js';
import { type AppConfig, loadConfig } from '../../src/config/app-config.js';
import { IN_MEMORY } from '../../src/database/database.client.js';
import { type UserClient, userClient } from './api.js';
import { type FakeUpstream, startFakeUpstream } from './fake-upstream.js';
import type { TurnResponse } from './sse-client.js';

export const TEST_SECRET = 'test-secret-0123456789abcdef';

/**
 * An HS256 JWT with the claims a test picks (times in seconds from now), signed with the apps'
 * secret unless told otherwise: for the tokens an app must refuse.
 */
export function signToken(
  claims: { subject?: string; issuedAt?: number; expiresIn?: number; secret?: string } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setExpirationTime(now + (claims.expiresIn ?? 3600));
  if (claims.subject !== undefined) jwt.setSubject(claims.subject);
  if (claims.issuedAt !== undefined) jwt.setIssuedAt(now + claims.issuedAt);
  return jwt.sign(new TextEncoder().encode(claims.secret ?? TEST_SECRET));
}

export interface TestApp {
  readonly app: NestExpressApplication;
  readonly config: AppConfig;
  readonly baseUrl: string;
  token(userId?: string): Promise<string>;
  close(): Promise<void>;
}

/**
 * With TEST_DATABASE_URL (CI's PostgreSQL run) every app gets a database of its own, so suites
 * running side by side never see each other's turns; otherwise an in-memory PGlite.
 */
export async function freshDatabase(): Promise<{
  url: string | null;
  drop: () => Promise<void>;
}> {
  const admin = process.env.TEST_DATABASE_URL;
  if (!admin) return { url: null, drop: async () => undefined };
  const name = `easel_test_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: admin });
  await client.connect();
  await client.query(`CREATE DATABASE ${name}`);
  await client.end();
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const dropper = new pg.Client({ connectionString: admin });
      await dropper.connect();
      await dropper.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await dropper.end();
    },
  };
}

/** A port free right now, so signed image URLs (PUBLIC_BASE_URL) can point at the app. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function startApp(env: Record<string, string> = {}): Promise<TestApp> {
  const database = await freshDatabase();
  const port = await freePort();
  const config = loadConfig({
    NODE_ENV: 'test',
    AUTH_JWT_SECRET: TEST_SECRET,
    DATA_DIR: IN_MEMORY,
    LOG_LEVEL: 'silent',
    PORT: String(port),
    PUBLIC_BASE_URL: `http://127.0.0.1:${port}`,
    DEMO_TOKEN_DELAY_MS: '0',
    DEMO_IMAGE_DELAY_MS: '0',
    ...(database.url ? { DATABASE_URL: database.url } : {}),
    ...env,
  });
  const app = await createApp(config);
  await app.listen(port, '127.0.0.1');
  return {
    app,
    config,
    baseUrl: `http://127.0.0.1:${port}`,
    token: (userId = 'alice') => JwtService.sign(TEST_SECRET, userId),
    close: async () => {
      await app.close();
      await database.drop();
    },
  };
}

export interface UpstreamSuite {
  readonly upstream: FakeUpstream;
  readonly app: TestApp;
  /** A Bearer token of the suite's user. */
  readonly token: string;
}

/** A fake upstream and an app pointed at it (`env` on top of its URL and key), with a token. */
export async function startWithUpstream(
  env: Record<string, string>,
  user = 'alice',
): Promise<UpstreamSuite> {
  const upstream = await startFakeUpstream();
  const app = await startApp(upstreamEnv(upstream, env));
  return { upstream, app, token: await app.token(user) };
}

/** An app's environment for talking to `upstream`. */
export function upstreamEnv(
  upstream: FakeUpstream,
  env: Record<string, string> = {},
): Record<string, string> {
  return { LLM_BASE_URL: upstream.baseUrl, LLM_API_KEY: 'test-key', ...env };
}

/** `count` chunks `w0 `, `w1 `, … for a fake upstream's stream script. */
export const wordChunks = (count: number): string[] =>
  Array.from({ length: count }, (_, index) => `w${index} `);

/** Closes what a suite started (what is still undefined failed to start). */
export async function closeAll(
  ...started: ({ close(): Promise<void> } | undefined)[]
): Promise<void> {
  for (const item of started) await item?.close();
}

/**
 * Starts something in beforeAll of the enclosing file or describe block and closes it in its
 * afterAll. The getter throws when read before beforeAll ran (at collection time, say).
 */
export function startedInSuite<T extends { close(): Promise<void> }>(
  what: string,
  start: () => Promise<T>,
  timeoutMs?: number,
): () => T {
  let started: T | undefined;
  beforeAll(async () => {
    started = await start();
  }, timeoutMs);
  afterAll(() => closeAll(started));
  return () => {
    if (started === undefined) throw new Error(`${what} is not started (read it inside a test)`);
    return started;
  };
}

/** A {@link TestApp} that reads the one `get` returns on every use. */
function appHandle(get: () => TestApp): TestApp {
  return {
    get app() {
      return get().app;
    },
    get config() {
      return get().config;
    },
    get baseUrl() {
      return get().baseUrl;
    },
    token: (userId) => get().token(userId),
    close: () => get().close(),
  };
}

/**
 * An app for the enclosing file or describe block (started in beforeAll, closed in afterAll).
 * `env` may be a function, for settings known only once earlier hooks ran.
 */
export function useApp(env: Record<string, string> | (() => Record<string, string>) = {}): TestApp {
  return appHandle(
    startedInSuite('the app', () => startApp(typeof env === 'function' ? env() : env)),
  );
}

/** The suite's upstream and app, and the suite's user talking to that app. */
export interface UpstreamFixture extends UpstreamSuite, UserClient {
  /**
   * Runs `body` in a new session, then sends it again with the same key and checks that this
   * replay made no upstream call.
   */
  replayed(body: unknown): Promise<{ first: TurnResponse; again: TurnResponse }>;
}

/**
 * {@link startWithUpstream} for the enclosing file or describe block: started in beforeAll,
 * closed in afterAll, and the upstream's scripts and recorded requests reset before each test.
 */
export function useUpstream(env: Record<string, string>, user = 'alice'): UpstreamFixture {
  const get = startedInSuite('the upstream suite', async () => {
    const suite = await startWithUpstream(env, user);
    return {
      ...suite,
      client: userClient(suite.app.baseUrl, suite.token),
      close: () => closeAll(suite.app, suite.upstream),
    };
  });
  beforeEach(() => get().upstream.reset());
  return {
    get upstream() {
      return get().upstream;
    },
    app: appHandle(() => get().app),
    get token() {
      return get().token;
    },
    get baseUrl() {
      return get().app.baseUrl;
    },
    session: (body) => get().client.session(body),
    history: (sessionId) => get().client.history(sessionId),
    turn: (sessionId, body, options) => get().client.turn(sessionId, body, options),
    firstTurn: (body, options) => get().client.firstTurn(body, options),
    events: (sessionId, clientMsgId, options) =>
      get().client.events(sessionId, clientMsgId, options),
    cancel: (sessionId, clientMsgId) => get().client.cancel(sessionId, clientMsgId),
    replayed: async (body) => {
      const { client, upstream } = get();
      const first = await client.firstTurn(body);
      const calls = upstream.requests.length;
      const again = await client.turn(first.sessionId, body);
      expect(upstream.requests).toHaveLength(calls);
      return { first, again };
    },
  };
}
