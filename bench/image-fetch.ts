/**
 * `npm run bench:images`: `/healthz` latency while idle, and while 4 clients keep fetching one
 * 2 MB image through its signed URL (issue 12 item 3). Talks to the built service over HTTP
 * only, so the same script measures any commit: `--builds=before=/other/worktree/dist,after=dist`
 * runs each build in turn in one invocation (each from its own worktree, with its own
 * node_modules); `name=dist+KEY=VALUE` adds environment (e.g. `+PGLITE_WORKER=0`). Each build
 * runs on an on-disk PGlite (`DATA_DIR` in a temp folder) or, with `--database-url=`, on a
 * fresh PostgreSQL database of that server; `--stores=pglite,pg` runs both. The image upstream
 * is a stub in this process. Raw figures go to bench/results/<date>.images.json.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { crc32, deflateSync } from 'node:zlib';
import { SignJWT } from 'jose';
import { freshPostgres, type FreshDatabase } from './postgres.js';

function argument(name: string): string | undefined {
  return process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
}

const IMAGE_BYTES = 2 * 1024 * 1024;
const FETCHERS = 4;
/** Per phase: at most this many sequential probes, and no longer than `--seconds=`. */
const PROBES = Number(process.env.BENCH_PROBES ?? '300');
const PHASE_MS = Number(argument('seconds') ?? '20') * 1000;
const SECRET = 'bench-secret-0123456789abcdef';
const DATABASE_URL = argument('database-url') ?? null;
const STORES = (argument('stores') ?? (DATABASE_URL ? 'pglite,pg' : 'pglite')).split(',');

interface Build {
  readonly name: string;
  readonly dist: string;
  readonly env: Record<string, string>;
}

/** `key=value` → [key, value]; without `=`, the whole text is the key. */
function splitPair(text: string, fallback: string): [string, string] {
  const at = text.indexOf('=');
  return at === -1 ? [text, fallback] : [text.slice(0, at), text.slice(at + 1)];
}

const BUILDS: Build[] = (argument('builds') ?? 'current=dist').split(',').map((entry) => {
  const [name, rest] = splitPair(entry, 'dist');
  const [dist, ...pairs] = rest.split('+');
  return {
    name,
    dist: resolve(dist),
    env: Object.fromEntries(pairs.map((pair) => splitPair(pair, ''))),
  };
});

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

/** A valid PNG of random pixels, stored uncompressed: about `bytes` long. */
function noisePng(bytes: number): Buffer {
  const side = Math.ceil(Math.sqrt(bytes / 3));
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(side, 0);
  ihdr.writeUInt32BE(side, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const rows = randomBytes((side * 3 + 1) * side);
  for (let y = 0; y < side; y++) rows[y * (side * 3 + 1)] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(rows, { level: 0 })),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

/** An OpenRouter-style upstream that answers every image request with the same PNG. */
function startUpstream(png: Buffer): Promise<Server> {
  const dataUrl = `data:image/png;base64,${png.toString('base64')}`;
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(
        JSON.stringify({
          id: 'gen-bench',
          object: 'chat.completion',
          created: 0,
          model: 'painter',
          choices: [
            {
              index: 0,
              message: {
                role: 'assistant',
                content: '',
                images: [{ type: 'image_url', image_url: { url: dataUrl } }],
              },
              finish_reason: 'stop',
            },
          ],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        }),
      );
    });
  });
  return new Promise((done) => server.listen(0, '127.0.0.1', () => done(server)));
}

async function waitForHealth(baseUrl: string): Promise<void> {
  for (let tries = 0; tries < 1200; tries++) {
    try {
      if ((await fetch(`${baseUrl}/healthz`)).ok) return;
    } catch {
      // Not listening yet.
    }
    await new Promise((done) => setTimeout(done, 100));
  }
  throw new Error('Easel did not become healthy');
}

/** Draws the image with an `image_only` turn and returns its signed URL. */
async function drawImage(baseUrl: string): Promise<string> {
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject('bench')
    .setExpirationTime('1h')
    .sign(new TextEncoder().encode(SECRET));
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const session = await fetch(`${baseUrl}/v1/sessions`, { method: 'POST', headers, body: '{}' });
  const { id } = (await session.json()) as { id: string };
  const turn = await fetch(`${baseUrl}/v1/sessions/${id}/turns`, {
    method: 'POST',
    headers,
    body: JSON.stringify({
      content: 'noise',
      client_msg_id: 'bench-image',
      image: { force: true, mode: 'image_only' },
    }),
  });
  const stream = await turn.text();
  const match = /"type":"image","message_id":"[^"]+","url":"([^"]+)"/.exec(stream);
  if (!match) throw new Error(`no image frame in the turn: ${stream.slice(0, 500)}`);
  return match[1];
}

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}

interface Probed {
  readonly probes: number;
  readonly p50: number;
  readonly p99: number;
  readonly max: number;
}

/** Up to `PROBES` sequential `/healthz` requests within `PHASE_MS`: p50, p99 and max in ms. */
async function probe(baseUrl: string): Promise<Probed> {
  const times: number[] = [];
  const deadline = performance.now() + PHASE_MS;
  for (let i = 0; i < PROBES && performance.now() < deadline; i++) {
    const started = performance.now();
    await (await fetch(`${baseUrl}/healthz`)).arrayBuffer();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  const round = (ms: number): number => Math.round(ms * 10) / 10;
  return {
    probes: times.length,
    p50: round(percentile(times, 50)),
    p99: round(percentile(times, 99)),
    max: round(times.at(-1)!),
  };
}

interface Measured {
  readonly build: string;
  readonly dist: string;
  readonly env: Record<string, string>;
  readonly store: string;
  readonly idle: Probed;
  readonly loaded: Probed;
  readonly fetches: number;
  readonly fetchesPerSecond: number;
}

/** One build on one store: boot, draw, probe idle, probe while the fetchers run, stop. */
async function measure(
  build: Build,
  store: string,
  upstream: Server,
  png: Buffer,
): Promise<Measured> {
  const dataDir = await mkdtemp(join(tmpdir(), 'easel-bench-images-'));
  const database: FreshDatabase | null =
    store === 'pg' && DATABASE_URL ? await freshPostgres(DATABASE_URL) : null;
  if (store === 'pg' && !database) throw new Error('--stores=pg needs --database-url=');
  const port = 20_000 + Math.floor(Math.random() * 20_000);
  const baseUrl = `http://127.0.0.1:${port}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    ...build.env,
    NODE_ENV: 'production',
    PORT: String(port),
    PUBLIC_BASE_URL: baseUrl,
    DATA_DIR: dataDir,
    AUTH_JWT_SECRET: SECRET,
    LLM_BASE_URL: `http://127.0.0.1:${(upstream.address() as AddressInfo).port}/api/v1`,
    LLM_API_KEY: 'bench',
    CHAT_MODELS: 'chat',
    IMAGE_MODELS: 'painter',
    IMAGE_COMPOSE_MODEL: 'off',
    LOG_LEVEL: 'warn',
  };
  delete env.DATABASE_URL;
  if (database) env.DATABASE_URL = database.url;
  const child = spawn(process.execPath, [join(build.dist, 'main.js')], {
    cwd: dirname(build.dist),
    stdio: ['ignore', 'ignore', 'inherit'],
    env,
  });
  try {
    await waitForHealth(baseUrl);
    const url = await drawImage(baseUrl);
    const idle = await probe(baseUrl);

    let running = true;
    let fetched = 0;
    const fetchers = Array.from({ length: FETCHERS }, async () => {
      while (running) {
        const body = await (await fetch(url)).arrayBuffer();
        if (body.byteLength !== png.length) throw new Error(`got ${body.byteLength} bytes`);
        fetched++;
      }
    });
    const started = performance.now();
    const loaded = await probe(baseUrl);
    running = false;
    await Promise.all(fetchers);
    const seconds = (performance.now() - started) / 1000;
    const result: Measured = {
      build: build.name,
      dist: build.dist,
      env: build.env,
      store,
      idle,
      loaded,
      fetches: fetched,
      fetchesPerSecond: fetched / seconds,
    };
    console.error(
      `${build.name} on ${store}: /healthz p99 idle ${idle.p99} ms (${idle.probes} probes), ` +
        `while fetching ${loaded.p99} ms (${loaded.probes} probes), ${fetched} fetches in ${seconds.toFixed(1)} s`,
    );
    return result;
  } finally {
    child.kill('SIGTERM');
    await new Promise((done) => child.once('exit', done));
    await database?.drop();
    await rm(dataDir, { recursive: true, force: true });
  }
}

const png = noisePng(IMAGE_BYTES);
const upstream = await startUpstream(png);
const loadBefore = Number(loadavg()[0].toFixed(2));
const results: Measured[] = [];
try {
  for (const store of STORES) {
    for (const build of BUILDS) results.push(await measure(build, store, upstream, png));
  }
} finally {
  upstream.close();
}
const loadAfter = Number(loadavg()[0].toFixed(2));
console.log(
  `image: ${(png.length / 1024 / 1024).toFixed(2)} MB PNG, ${FETCHERS} fetchers, ` +
    `${cpus().length} CPUs, load average ${loadBefore} → ${loadAfter}\n`,
);
console.log(
  '| build | store | /healthz p50 / p99 idle, ms | /healthz p50 / p99 while 4 clients fetch, ms | p99 loaded/idle | image fetches/s |',
);
console.log('|---|---|--:|--:|--:|--:|');
for (const r of results) {
  console.log(
    `| ${r.build} | ${r.store} | ${r.idle.p50} / ${r.idle.p99} | ${r.loaded.p50} / ${r.loaded.p99} | ` +
      `${(r.loaded.p99 / r.idle.p99).toFixed(1)}× | ${r.fetchesPerSecond.toFixed(1)} |`,
  );
}
const now = new Date();
const pad = (n: number): string => String(n).padStart(2, '0');
const dir = resolve('bench/results');
mkdirSync(dir, { recursive: true });
const path = join(
  dir,
  `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}.images.json`,
);
writeFileSync(
  path,
  `${JSON.stringify(
    {
      date: now.toISOString(),
      node: process.version,
      cpus: cpus().length,
      loadAverage1m: [loadBefore, loadAfter],
      imageBytes: png.length,
      fetchers: FETCHERS,
      probesMax: PROBES,
      phaseSeconds: PHASE_MS / 1000,
      results,
    },
    null,
    2,
  )}\n`,
);
console.log(`\nraw figures: ${path}`);
