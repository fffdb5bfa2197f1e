import type { NestExpressApplication } from '@nestjs/platform-express';
import { randomBytes } from 'node:crypto';
import { type AddressInfo, createServer } from 'node:net';
import pg from 'pg';
import { JwtService } from '../../src/auth/jwt.service.js';
import { createApp } from '../../src/bootstrap.js';
import { type AppConfig, loadConfig } from '../../src/config/app-config.js';
import { IN_MEMORY } from '../../src/database/database.client.js';
import { type FakeUpstream, startFakeUpstream } from './fake-upstream.js';

export const TEST_SECRET = 'test-secret-0123456789abcdef';

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
  const app = await startApp({ LLM_BASE_URL: upstream.baseUrl, LLM_API_KEY: 'test-key', ...env });
  return { upstream, app, token: await app.token(user) };
}

/** Closes what a suite started (what is still undefined failed to start). */
export async function closeAll(
  ...started: ({ close(): Promise<void> } | undefined)[]
): Promise<void> {
  for (const item of started) await item?.close();
}
