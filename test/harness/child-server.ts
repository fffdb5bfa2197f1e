import { execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import {
  cp,
  mkdir,
  mkdtemp,
  readdir,
  readFile,
  rename,
  rm,
  stat,
  symlink,
  writeFile,
} from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';
import { JwtService } from '../../src/auth/jwt.service.js';
import { freePort, freshDatabase, startedInSuite, TEST_SECRET, upstreamEnv } from './app.js';
import { type FakeUpstream, startFakeUpstream } from './fake-upstream.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/**
 * Private builds, one folder per source hash: `npm run build` by someone else can rewrite `dist/`
 * while a child starts from it, and a stale `dist/` would test old code.
 */
const CACHE = join(ROOT, 'node_modules', '.cache', 'easel-e2e');

async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((entry) => {
      const path = join(dir, entry.name);
      return entry.isDirectory() ? filesUnder(path) : Promise.resolve([path]);
    }),
  );
  return nested.flat();
}

async function sourceHash(): Promise<string> {
  const sources = (await filesUnder(join(ROOT, 'src')))
    .filter((path) => !path.endsWith('.spec.ts'))
    .sort();
  const hash = createHash('sha256');
  for (const path of [...sources, join(ROOT, 'tsconfig.json'), join(ROOT, 'tsconfig.build.json')]) {
    hash
      .update(relative(ROOT, path))
      .update('\0')
      .update(await readFile(path))
      .update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

function runTsc(outDir: string): Promise<void> {
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [tsc, '-p', 'tsconfig.build.json', '--outDir', outDir],
      { cwd: ROOT, maxBuffer: 16 * 1024 * 1024 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`tsc -p tsconfig.build.json failed:\n${stdout}${stderr}`));
        else resolve();
      },
    );
  });
}

/**
 * Compiles src (as `npm run build` does) into a folder of its own unless that exact source was
 * built already; returns the path of its `main.js`. Safe when several jest workers call it.
 */
export async function buildServer(): Promise<string> {
  const hash = await sourceHash();
  const target = join(CACHE, hash);
  const main = join(target, 'dist', 'main.js');
  if (existsSync(join(target, 'complete'))) return main;

  await mkdir(CACHE, { recursive: true });
  const work = await mkdtemp(join(CACHE, `tmp-${hash}-`));
  // The layout dist/ expects: migrations at ../drizzle, and an ESM package scope (node_modules
  // stops the lookup of the repository's package.json).
  await writeFile(join(work, 'package.json'), '{ "type": "module" }\n');
  await symlink(join(ROOT, 'drizzle'), join(work, 'drizzle'));
  await runTsc(join(work, 'dist'));
  await writeFile(join(work, 'complete'), '');
  try {
    await rename(work, target);
  } catch (error) {
    // Another worker finished the same build first.
    if (!existsSync(join(target, 'complete'))) throw error;
    await rm(work, { recursive: true, force: true });
  }
  await pruneBuilds(hash);
  return main;
}

/** Drops builds of older sources (left alone for a while, in case a suite still runs one). */
async function pruneBuilds(keep: string): Promise<void> {
  const hourAgo = Date.now() - 3_600_000;
  for (const name of await readdir(CACHE)) {
    if (name === keep || name.startsWith(`tmp-${keep}`)) continue;
    const path = join(CACHE, name);
    const info = await stat(path).catch(() => null);
    if (info && info.mtimeMs < hourAgo) await rm(path, { recursive: true, force: true });
  }
}

/** The database a child server runs on; it outlives the children so a restart sees the same data. */
export interface ServerStore {
  readonly kind: 'pglite' | 'postgres';
  /** DATA_DIR (a PGlite folder) or DATABASE_URL. */
  readonly env: Record<string, string>;
  /**
   * Runs SQL against the stored data. For PGlite only while no child runs on it: it reads a copy
   * of the folder, so the next child still finds the data exactly as the last one left it.
   */
  query<T>(text: string, params?: unknown[]): Promise<T[]>;
  drop(): Promise<void>;
}

/** A fresh PostgreSQL database when TEST_DATABASE_URL is set, else an empty PGlite folder. */
export async function freshStore(): Promise<ServerStore> {
  const database = await freshDatabase();
  const url = database.url;
  if (url !== null) {
    return {
      kind: 'postgres',
      env: { DATABASE_URL: url },
      async query<T>(text: string, params: unknown[] = []): Promise<T[]> {
        const client = new pg.Client({ connectionString: url });
        await client.connect();
        try {
          return (await client.query(text, params)).rows as T[];
        } finally {
          await client.end();
        }
      },
      drop: database.drop,
    };
  }
  const base = await mkdtemp(join(tmpdir(), 'easel-child-'));
  const dataDir = join(base, 'data');
  // Created here (seconds of initdb) so it can overlap the build; the server migrates it.
  await (await PGlite.create(dataDir)).close();
  return {
    kind: 'pglite',
    env: { DATA_DIR: dataDir },
    async query<T>(text: string, params: unknown[] = []): Promise<T[]> {
      const copy = await mkdtemp(join(base, 'copy-'));
      await cp(dataDir, copy, { recursive: true });
      const client = await PGlite.create(copy);
      try {
        return (await client.query<T>(text, params)).rows;
      } finally {
        await client.close();
        await rm(copy, { recursive: true, force: true });
      }
    },
    drop: () => rm(base, { recursive: true, force: true }),
  };
}

export interface ChildExit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** performance.now() in the test process when the exit was seen. */
  readonly at: number;
}

export interface ChildServer {
  readonly baseUrl: string;
  readonly pid: number;
  readonly exited: Promise<ChildExit>;
  /** Set once the process has exited. */
  readonly exit: ChildExit | null;
  token(userId?: string): Promise<string>;
  /** stdout + stderr so far (the tail), to explain a failure. */
  output(): string;
  kill(signal: NodeJS.Signals): void;
  /** SIGKILL unless it has exited already; resolves with the exit. */
  stop(): Promise<ChildExit>;
}

/** GET without connection reuse: a server killed mid-test must not leave a pooled socket behind. */
export function httpGet(url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (part: string) => (body += part));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

const running = new Set<ChildServer>();

/**
 * Starts `node <main>` (the built server) on a free port with only the given environment (plus
 * PATH and test defaults), and resolves once `/readyz` answers 200.
 */
export async function startChild(
  main: string,
  env: Record<string, string>,
  readyTimeoutMs = 60_000,
): Promise<ChildServer> {
  const port = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const proc = spawn(process.execPath, [main], {
    cwd: ROOT,
    env: {
      PATH: process.env.PATH ?? '',
      NODE_ENV: 'test',
      AUTH_JWT_SECRET: TEST_SECRET,
      LOG_LEVEL: 'error',
      PORT: String(port),
      PUBLIC_BASE_URL: baseUrl,
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const keep = (part: Buffer): void => {
    output = (output + part.toString('utf8')).slice(-20_000);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  let exit: ChildExit | null = null;
  const exited = new Promise<ChildExit>((resolve) => {
    proc.once('exit', (code, signal) => {
      exit = { code, signal, at: performance.now() };
      resolve(exit);
    });
  });

  const child: ChildServer = {
    baseUrl,
    pid: proc.pid ?? 0,
    exited,
    get exit() {
      return exit;
    },
    token: (userId = 'alice') => JwtService.sign(TEST_SECRET, userId),
    output: () => output,
    kill: (signal) => {
      proc.kill(signal);
    },
    stop: async () => {
      if (exit === null) proc.kill('SIGKILL');
      return exited;
    },
  };
  running.add(child);
  void exited.then(() => running.delete(child));

  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    if (exit !== null) {
      throw new Error(`server exited during boot (${JSON.stringify(exit)}):\n${output}`);
    }
    const ready = await httpGet(`${baseUrl}/readyz`).then(
      (response) => response.status === 200,
      () => false,
    );
    if (ready) return child;
    if (Date.now() > deadline) {
      await child.stop();
      throw new Error(`server not ready within ${readyTimeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** SIGKILLs every child still running (for afterAll, so a failed test leaves no process). */
export async function stopAllChildren(): Promise<void> {
  await Promise.all([...running].map((child) => child.stop()));
}

/** `promise`, or a clear failure after `ms` (rather than the whole test timing out). */
export async function bounded<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} did not happen within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** What the child-process suites share: the built server, a fake upstream and one store. */
export interface ChildSuite {
  readonly upstream: FakeUpstream;
  /** Outlives the children, so a restarted server sees the same data. */
  readonly store: ServerStore;
  /** A child on the suite's store and upstream (one chat model `m1`, no images), `env` on top. */
  start(env?: Record<string, string>): Promise<ChildServer>;
}

/**
 * Builds the server and starts the upstream and the store in beforeAll; afterAll kills every child
 * still running and closes the rest. The upstream is reset before each test.
 */
export function useChildSuite(): ChildSuite {
  const get = startedInSuite(
    'the child suite',
    async () => {
      const [main, upstream, store] = await Promise.all([
        buildServer(),
        startFakeUpstream(),
        freshStore(),
      ]);
      const close = async (): Promise<void> => {
        await stopAllChildren();
        await upstream.close();
        await store.drop();
      };
      return { main, upstream, store, close };
    },
    180_000,
  );
  beforeEach(() => get().upstream.reset());
  return {
    get upstream() {
      return get().upstream;
    },
    get store() {
      return get().store;
    },
    start: (env = {}) => {
      const { main, upstream, store } = get();
      return startChild(main, {
        ...store.env,
        ...upstreamEnv(upstream, {
          CHAT_MODELS: 'm1',
          IMAGE_MODELS: '',
          IMAGE_COMPOSE_MODEL: 'off',
        }),
        ...env,
      });
    },
  };
}
