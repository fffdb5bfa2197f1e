/**
 * `npm run bench`: floor, peer and Easel relay the same paced, time-stamped upstream stream at
 * 1, 100 and 1 000 concurrent streams. Prints a Markdown table with ratios and writes the raw
 * figures to bench/results/<date>.json. `-- --profile` instead runs Easel under `--cpu-prof`
 * and prints where its CPU goes. See docs/performance.md.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { Agent, get, request } from 'node:http';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { dirname, join, resolve as resolvePath } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Child, freePort, waitHttpReady } from './children.js';
import {
  Recorder,
  runStream,
  type StreamOutcome,
  type StreamSpec,
  type SystemName,
} from './client.js';
import { nowUs, type Stats } from './ipc.js';
import {
  freshPostgres,
  type FreshDatabase,
  PostgresProbe,
  type StatementCounts,
  statementsPer,
} from './postgres.js';
import { ceilingStep, ceilingTable, type CeilingStep } from './ceiling.js';
import { heapDiff } from './heap.js';
import { summarise } from './profile.js';
import { Progress } from './progress.js';

function argument(name: string): string | undefined {
  return process.argv.find((arg) => arg.startsWith(`--${name}=`))?.slice(name.length + 3);
}

const ROOT = process.cwd();
const HERE = dirname(fileURLToPath(import.meta.url));
/** Per stream: `--chunks=` content chunks, one every `--interval=` ms (a brisk LLM's pace). */
const CHUNKS = Number(argument('chunks') ?? '20');
const INTERVAL_MS = Number(argument('interval') ?? '20');
/** Image turns are there for the `done → image_pending` gap: a short text is enough. */
const IMAGE_CHUNKS = 5;
const SECRET = 'bench-only-secret-0123456789';
/** Easel caps open turns per user (MAX_STREAMS_PER_USER ≤ 1000); load is spread over users. */
const STREAMS_PER_USER = Number(argument('streams-per-user') ?? '100');
const WARMUP = { batches: 2, streams: 20 };
/** One stream moves RSS and heap by less than their noise: memory is taken from 10 up. */
const MEMORY_MIN_STREAMS = 10;
const CONTENT = 'Tell me something about the sea.';
/**
 * `--database-url=postgres://…` (an account that may CREATE DATABASE): adds `easel-pg`, Easel
 * on a fresh database of that server, to the default systems, so both databases are compared
 * in one run.
 */
const DATABASE_URL = argument('database-url') ?? null;
/**
 * `--baseline-dist=/path/to/other/worktree/dist`: another build of Easel (with its own
 * node_modules next to it), run as `easel-before` / `easel-pg-before` in the same run, so a
 * change is compared before → after under the same machine load.
 */
const BASELINE_DIST = argument('baseline-dist') ?? null;
/**
 * `--time-to-image`: pairs of forced `reply_text_image` turns, one at a time, without and with
 * `image.concurrent`, the upstream answering image requests after `--image-delay=` ms.
 */
const TIME_TO_IMAGE = { pairs: 10, imageDelayMs: Number(argument('image-delay') ?? '1000') };

/** An Easel system on PGlite with the current build; the rows below say how each differs. */
const EASEL = {
  protocol: 'easel',
  postgres: false,
  baseline: false,
  env: {},
  turn: {},
} as const;

/**
 * What each system name runs. The Easel variants differ only in environment, build and turn
 * request: `easel` as deployed by default (in-memory PGlite in its own worker thread),
 * `easel-inline` with PGlite on the main thread (`PGLITE_WORKER=0`), `easel-pg` on PostgreSQL,
 * `easel-pg-continue` on PostgreSQL with `on_disconnect: "continue"` turns (their frame log is
 * persisted to `turn_frames`), and the `-before` ones the `--baseline-dist` build.
 */
const SYSTEMS = {
  floor: { protocol: 'floor', postgres: false, baseline: false, env: {}, turn: {} },
  peer: { protocol: 'peer', postgres: false, baseline: false, env: {}, turn: {} },
  easel: { ...EASEL, env: { PGLITE_WORKER: '1' } },
  'easel-inline': { ...EASEL, env: { PGLITE_WORKER: '0' } },
  'easel-pg': { ...EASEL, postgres: true },
  'easel-pg-continue': { ...EASEL, postgres: true, turn: { on_disconnect: 'continue' } },
  'easel-before': { ...EASEL, baseline: true, env: { PGLITE_WORKER: '1' } },
  'easel-pg-before': { ...EASEL, postgres: true, baseline: true },
} as const satisfies Record<
  string,
  {
    protocol: SystemName;
    postgres: boolean;
    baseline: boolean;
    env: Record<string, string>;
    turn: Record<string, string>;
  }
>;
type SystemId = keyof typeof SYSTEMS;
const SYSTEM_IDS = Object.keys(SYSTEMS) as SystemId[];

/** The `/healthz` scenario: 4 clients fetch one stored 2 MB image over and over. */
const IMAGE_LOAD = { bytes: 2 * 2 ** 20, fetchers: 4, seconds: 3, healthzGapMs: 10 } as const;

/**
 * A new connection per request: a pooled socket left idle through a long round can race the
 * server's idle close and fail the next stream with ECONNRESET, which is not what we measure.
 */
function clientAgent(): Agent {
  return new Agent({ keepAlive: false, maxSockets: Infinity });
}

interface Options {
  readonly systems: readonly SystemId[];
  readonly levels: readonly number[];
  /** `--profile[=system]`: that system alone under `--cpu-prof` (Easel by default). */
  readonly profile: SystemId | null;
  /** `--heap[=system]`: heap snapshots of that system before and while streams are open. */
  readonly heap: SystemId | null;
  /** `--time-to-image`: adds the time-to-image scenario to every Easel system. */
  readonly timeToImage: boolean;
  /** `--ceiling[=system]`: that system alone under a closed loop at each level (clients). */
  readonly ceiling: SystemId | null;
}

interface Plan {
  readonly streams: number;
  /** Rounds of `streams` concurrent streams; one stream at a time needs several for a p99. */
  readonly rounds: number;
  readonly imageRounds: number;
}

function planFor(streams: number): Plan {
  if (streams <= 1) return { streams, rounds: 10, imageRounds: 5 };
  if (streams <= 100) return { streams, rounds: 2, imageRounds: 1 };
  return { streams, rounds: 1, imageRounds: 1 };
}

interface Percentiles {
  readonly samples: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly max: number;
}

interface LevelResult {
  readonly system: SystemId;
  readonly streams: number;
  readonly rounds: number;
  readonly turns: number;
  readonly failedTurns: number;
  readonly errors: string[];
  readonly latencyMs: Percentiles;
  /** Added time to first token, one sample per stream (see `Recorder.firstTokenUs`). */
  readonly firstTokenMs: Percentiles;
  readonly cpu: {
    readonly ms: number;
    readonly deltaFrames: number;
    readonly frames: number;
    readonly msPer1000Deltas: number;
    readonly msPerTurn: number;
    /** The main thread's share alone (the event loop that relays). */
    readonly mainThreadMsPerTurn: number;
  };
  readonly memory: {
    readonly baseRssKiB: number;
    readonly rssPerStreamKiB: number;
    readonly heapPerStreamKiB: number;
    /** Heap after GC before each round: a rise from round to round is a leak, not load. */
    readonly baseHeapKiB: number[];
    readonly midStreamRssPerStreamKiB: number;
    readonly peakRssPerStreamKiB: number;
  };
  /** Wall time of each step of this level. */
  readonly seconds: Record<string, number>;
  readonly image: {
    readonly turns: number;
    readonly failed: number;
    readonly doneToPendingMs: Percentiles;
  } | null;
  /** Easel on PostgreSQL: the server's side of the level's rounds. */
  readonly postgres: PostgresLevel | null;
}

interface PostgresLevel {
  /** CPU of every PostgreSQL process over the level's rounds (NaN if the server is remote). */
  readonly cpuMs: number;
  readonly cpuMsPerTurn: number;
  readonly cpuMsPer1000Deltas: number;
  /** From `pg_stat_statements` (NaN without it): every statement of the database, per turn. */
  readonly statementsPerTurn: number;
  readonly statements: ReadonlyArray<{
    readonly query: string;
    readonly perTurn: number;
    readonly execMsPerTurn: number;
  }>;
  /** `pg_stat_statements` execution time of the database's statements (planning excluded). */
  readonly execMsPerTurn: number;
  /** Transactions per turn from `pg_stat_database`; rollbacks are failed statements. */
  readonly commitsPerTurn: number;
  readonly rollbacksPerTurn: number;
  /** Connections opened to the database per turn (`pg_stat_database.sessions`). */
  readonly connectionsPerTurn: number;
}

/** Forced `reply_text_image` turns one at a time: request sent → `image` frame received. */
interface TimeToImageResult {
  readonly imageDelayMs: number;
  readonly sequentialMs: Percentiles;
  readonly concurrentMs: Percentiles;
  /** Request sent → the text's `done`, on the sequential turns: the text's duration. */
  readonly textMs: Percentiles;
  readonly failures: number;
}

/** Figures of a system that do not depend on the level. */
interface SystemResult {
  readonly system: SystemId;
  /** After boot and warm-up, after a forced GC: the whole process (every thread). */
  readonly idle: { readonly rssMiB: number; readonly heapMiB: number };
  readonly healthz: HealthzResult | null;
  readonly timeToImage: TimeToImageResult | null;
}

interface HealthzResult {
  readonly imageBytes: number;
  readonly fetchers: number;
  readonly idleMs: Percentiles;
  readonly loadedMs: Percentiles;
  /** Whole image responses the fetchers read during the loaded window. */
  readonly imageFetches: number;
  readonly imageFetchMs: Percentiles;
  readonly failures: number;
}

function isSystem(name: string): name is SystemId {
  return (SYSTEM_IDS as string[]).includes(name);
}

function parseOptions(argv: readonly string[]): Options {
  const system = (name: string): SystemId => {
    if (!isSystem(name)) throw new Error(`unknown system "${name}" (${SYSTEM_IDS.join(', ')})`);
    if (SYSTEMS[name].postgres && !DATABASE_URL) {
      throw new Error(`${name} needs --database-url=postgres://… (see docs/performance.md)`);
    }
    if (SYSTEMS[name].baseline && !BASELINE_DIST) {
      throw new Error(`${name} needs --baseline-dist=/path/to/a/worktree/dist`);
    }
    return name;
  };
  const levels = (argument('levels') ?? '1,100,1000').split(',').map(Number);
  if (levels.some((level) => !Number.isInteger(level) || level < 1)) {
    throw new Error('--levels takes whole numbers ≥ 1, e.g. --levels=1,100,1000');
  }
  const profile = argument('profile');
  const heap = argument('heap');
  const ceiling = argument('ceiling');
  return {
    systems: (argument('systems') ?? defaultSystems().join(',')).split(',').map(system),
    levels,
    profile: argv.includes('--profile') ? 'easel' : profile ? system(profile) : null,
    heap: argv.includes('--heap') ? 'easel' : heap ? system(heap) : null,
    timeToImage: argv.includes('--time-to-image'),
    ceiling: argv.includes('--ceiling')
      ? DATABASE_URL
        ? 'easel-pg-continue'
        : 'easel'
      : ceiling
        ? system(ceiling)
        : null,
  };
}

/** floor, peer, Easel; with the options, the baseline build and PostgreSQL next to them. */
function defaultSystems(): SystemId[] {
  const systems: SystemId[] = ['floor', 'peer'];
  if (BASELINE_DIST) systems.push('easel-before');
  systems.push('easel');
  if (DATABASE_URL && BASELINE_DIST) systems.push('easel-pg-before');
  if (DATABASE_URL) systems.push('easel-pg', 'easel-pg-continue');
  return systems;
}

function percentiles(values: readonly number[], scale: number): Percentiles {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number =>
    sorted.length === 0
      ? NaN
      : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
  return {
    samples: sorted.length,
    p50: at(0.5) / scale,
    p90: at(0.9) / scale,
    p99: at(0.99) / scale,
    max: at(1) / scale,
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor((sorted.length - 1) / 2)];
}

function localDate(): string {
  const now = new Date();
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`;
}

async function mapLimit<T, R>(items: readonly T[], limit: number, fn: (item: T) => Promise<R>) {
  const results: R[] = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const index = next++;
      results[index] = await fn(items[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

function postJson(
  agent: Agent,
  port: number,
  path: string,
  token: string,
  body: unknown,
): Promise<{ status: number; json: unknown }> {
  const text = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path,
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        },
      },
      (res) => {
        let raw = '';
        res.setEncoding('utf8');
        res.on('data', (part: string) => (raw += part));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, json: JSON.parse(raw) as unknown });
          } catch (error) {
            reject(error instanceof Error ? error : new Error(String(error)));
          }
        });
      },
    );
    req.on('error', reject);
    req.end(text);
  });
}

/** GET `path`, reading (and dropping) the whole body. */
function getBody(
  agent: Agent,
  port: number,
  path: string,
): Promise<{ status: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path, agent }, (res) => {
      let bytes = 0;
      res.on('data', (part: Buffer) => (bytes += part.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes }));
      res.on('error', reject);
    }).on('error', reject);
  });
}

/** `GET /healthz` one after another (a short gap between) for `ms`: each one's latency, µs. */
async function timeHealthz(agent: Agent, port: number, ms: number): Promise<number[]> {
  const deadline = Date.now() + ms;
  const latencies: number[] = [];
  while (Date.now() < deadline) {
    const start = nowUs();
    const { status } = await getBody(agent, port, '/healthz');
    if (status !== 200) throw new Error(`/healthz answered ${status}`);
    latencies.push(nowUs() - start);
    await new Promise((resolve) => setTimeout(resolve, IMAGE_LOAD.healthzGapMs));
  }
  return latencies;
}

/** `JwtService.sign` from the built service, loaded at run time so the bench needs no src/. */
async function loadSigner(): Promise<(userId: string) => Promise<string>> {
  const module: unknown = await import(pathToFileURL(join(ROOT, 'dist/auth/jwt.service.js')).href);
  const service =
    typeof module === 'object' && module !== null
      ? (module as Record<string, unknown>)['JwtService']
      : undefined;
  const sign =
    typeof service === 'function' ? (service as unknown as Record<string, unknown>)['sign'] : null;
  if (typeof sign !== 'function') throw new Error('dist/auth/jwt.service.js: no JwtService.sign');
  const typed = sign as (secret: string, userId: string) => Promise<string>;
  return (userId) => typed(SECRET, userId);
}

/**
 * One stream's request, built per turn (Easel needs a fresh idempotency key each time): `true`
 * forces an image, an object is the turn's `image` options as given.
 */
type Target = (image: boolean | Record<string, unknown>) => StreamSpec;

interface Sut {
  readonly child: Child;
  readonly port: number;
  /** Easel on PostgreSQL: its own database. */
  readonly database: FreshDatabase | null;
  /** `count` targets; Easel creates a session for each, spread over users. */
  targets(count: number): Promise<Target[]>;
  /** Stops the process and drops what it was given (a PostgreSQL database). */
  stop(graceMs?: number): Promise<void>;
}

async function startSut(system: SystemId, upstreamUrl: string, execArgv: string[]): Promise<Sut> {
  const env: NodeJS.ProcessEnv = { ...process.env, UPSTREAM_URL: upstreamUrl };
  delete env.DATABASE_URL;
  delete env.NODE_OPTIONS;
  delete env.PGLITE_WORKER;
  const spec = SYSTEMS[system];
  if (spec.protocol !== 'easel') {
    const child = new Child(system, join(HERE, `${spec.protocol}.js`), {
      env,
      execArgv,
      cwd: ROOT,
    });
    const { port } = await child.waitFor('ready', 20_000);
    const sut: Sut = {
      child,
      port,
      database: null,
      stop: (graceMs) => child.stop(graceMs),
      targets: (count) =>
        Promise.resolve(
          Array.from({ length: count }, () => (): StreamSpec => ({
            port,
            path: '/turn',
            headers: {},
            body: JSON.stringify({ content: CONTENT }),
          })),
        ),
    };
    return sut;
  }
  const port = await freePort();
  const database = spec.postgres && DATABASE_URL ? await freshPostgres(DATABASE_URL) : null;
  // A baseline build runs from its own worktree: its dist resolves its own node_modules.
  const dist = spec.baseline && BASELINE_DIST ? resolvePath(BASELINE_DIST) : join(ROOT, 'dist');
  const child = new Child(system, join(HERE, 'easel-entry.js'), {
    env: {
      ...env,
      ...spec.env,
      EASEL_MAIN: join(dist, 'main.js'),
      PORT: String(port),
      DATA_DIR: 'memory://',
      ...(database ? { DATABASE_URL: database.url } : {}),
      AUTH_JWT_SECRET: SECRET,
      LLM_BASE_URL: upstreamUrl,
      LLM_API_KEY: 'x',
      CHAT_MODELS: 'bench/chat',
      IMAGE_MODELS: 'bench/painter',
      IMAGE_COMPOSE_MODEL: 'off',
      MAX_STREAMS_PER_USER: '1000',
      LOG_LEVEL: 'silent',
      NODE_ENV: 'production',
    },
    execArgv,
    cwd: dirname(dist),
  });
  const stop = async (graceMs?: number): Promise<void> => {
    await child.stop(graceMs);
    await database?.drop();
  };
  try {
    await waitHttpReady(child, port, '/readyz', 60_000);
  } catch (error) {
    await stop();
    throw error;
  }
  const sign = await loadSigner();
  const tokens = new Map<number, string>();
  const agent = clientAgent();
  let keys = 0;
  const sut: Sut = {
    child,
    port,
    database,
    stop,
    targets: async (count) => {
      const users = Array.from({ length: Math.ceil(count / STREAMS_PER_USER) }, (_, i) => i);
      for (const user of users) {
        if (!tokens.has(user)) tokens.set(user, await sign(`bench-user-${user}`));
      }
      const indices = Array.from({ length: count }, (_, i) => i);
      return mapLimit(indices, 50, async (i): Promise<Target> => {
        const token = tokens.get(Math.floor(i / STREAMS_PER_USER)) ?? '';
        const created = await postJson(agent, port, '/v1/sessions', token, {});
        const { json } = created;
        const id = typeof json === 'object' && json !== null ? (json as { id?: unknown }).id : null;
        if (created.status !== 201 || typeof id !== 'string') {
          throw new Error(`POST /v1/sessions answered ${created.status}`);
        }
        return (image) => ({
          port,
          path: `/v1/sessions/${id}/turns`,
          headers: { authorization: `Bearer ${token}` },
          body: JSON.stringify({
            content: CONTENT,
            client_msg_id: `bench-${++keys}-${randomBytes(6).toString('hex')}`,
            ...spec.turn,
            ...(image ? { image: image === true ? { force: true } : image } : {}),
          }),
        });
      });
    },
  };
  return sut;
}

class Bench {
  private readonly errors: string[] = [];

  constructor(
    private readonly upstream: Child,
    private readonly upstreamUrl: string,
    private readonly progress: Progress,
    private readonly postgres: PostgresProbe | null,
    private readonly withTimeToImage: boolean,
  ) {}

  private note(outcomes: readonly StreamOutcome[]): number {
    let failed = 0;
    for (const outcome of outcomes) {
      if (outcome.ok) continue;
      failed += 1;
      if (this.errors.length < 5 && outcome.error) this.errors.push(outcome.error);
    }
    return failed;
  }

  /**
   * Opens every stream, waits until the upstream holds each one that did not fail on the way,
   * calls `whileHeld` (all streams open, none flowing), then lets the upstream stream.
   */
  private async round(
    system: SystemId,
    agent: Agent,
    specs: readonly StreamSpec[],
    chunks: number,
    recorder: Recorder,
    whileHeld: () => Promise<void>,
    afterRelease: () => void = () => undefined,
  ): Promise<StreamOutcome[]> {
    let held = 0;
    let ended = 0;
    let ready = (): void => undefined;
    const allIn = new Promise<void>((resolve) => (ready = resolve));
    const check = (): void => {
      if (held + ended >= specs.length) ready();
    };
    const unsubscribe = this.upstream.onReport((report) => {
      if (report.type !== 'held') return;
      held = report.count;
      check();
    });
    this.upstream.send({ cmd: 'arm', count: specs.length, chunks });
    const all = Promise.all(
      specs.map((spec) =>
        runStream(agent, SYSTEMS[system].protocol, spec, chunks, recorder).then((outcome) => {
          ended += 1;
          check();
          return outcome;
        }),
      ),
    );
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 60_000);
    });
    await Promise.race([allIn, timeout]);
    clearTimeout(timer);
    unsubscribe();
    if (held === specs.length) await whileHeld();
    this.upstream.send({ cmd: 'release' });
    afterRelease();
    return all;
  }

  /**
   * One process per system for all levels (boot and warm-up once); every figure of a level is
   * taken against a baseline sampled right before its own rounds.
   */
  async system(
    system: SystemId,
    plans: readonly Plan[],
  ): Promise<{ levels: LevelResult[]; extras: SystemResult }> {
    this.progress.phase(`${system}: starting`);
    let lap = Date.now();
    const sut = await startSut(system, this.upstreamUrl, ['--expose-gc']);
    const bootSeconds = (Date.now() - lap) / 1000;
    const agent = clientAgent();
    try {
      this.progress.phase(`${system}: warming up`);
      lap = Date.now();
      const warm = new Recorder((n) => this.progress.advance(n));
      for (let batch = 0; batch < WARMUP.batches; batch++) {
        const targets = await sut.targets(WARMUP.streams);
        await Promise.all(
          targets.map((target) =>
            runStream(agent, SYSTEMS[system].protocol, target(false), CHUNKS, warm),
          ),
        );
      }
      const warmupSeconds = (Date.now() - lap) / 1000;
      const idleStats = await sut.child.stats(true);
      const idle = {
        rssMiB: idleStats.rss / 2 ** 20,
        heapMiB: idleStats.heapUsed / 2 ** 20,
      };
      const levels: LevelResult[] = [];
      for (const plan of plans) {
        const result = await this.level(system, sut, agent, plan);
        result.seconds['boot'] = bootSeconds;
        result.seconds['warmup'] = warmupSeconds;
        levels.push(result);
      }
      const easel = SYSTEMS[system].protocol === 'easel';
      const timeToImage =
        easel && this.withTimeToImage ? await this.timeToImage(system, sut, agent) : null;
      const healthz = easel ? await this.healthzUnderImageLoad(system, sut) : null;
      return { levels, extras: { system, idle, healthz, timeToImage } };
    } finally {
      agent.destroy();
      await sut.stop();
    }
  }

  /**
   * Pairs of forced `reply_text_image` turns (the default `image.mode`), one turn at a time,
   * without and with `image.concurrent`, in alternating order; the upstream draws for
   * {@link TIME_TO_IMAGE}.imageDelayMs. Sequential turns draw after the text's `done`,
   * concurrent ones from the start: the gain expected is about the text's duration.
   */
  private async timeToImage(system: SystemId, sut: Sut, agent: Agent): Promise<TimeToImageResult> {
    const { pairs, imageDelayMs } = TIME_TO_IMAGE;
    this.upstream.send({ cmd: 'image-delay', ms: imageDelayMs });
    const sequential: number[] = [];
    const concurrent: number[] = [];
    const text: number[] = [];
    let failures = 0;
    try {
      const targets = await sut.targets(2 * pairs);
      for (let pair = 0; pair < pairs; pair++) {
        this.progress.phase(`${system}: time to image, pair ${pair + 1}/${pairs}`);
        const order = pair % 2 === 0 ? [false, true] : [true, false];
        for (const [index, drawWhileWriting] of order.entries()) {
          const target = targets[2 * pair + index];
          const spec = target({ force: true, concurrent: drawWhileWriting });
          const outcome = await runStream(agent, 'easel', spec, CHUNKS, new Recorder());
          if (!outcome.ok || outcome.imageAt === null) {
            failures += 1;
            continue;
          }
          (drawWhileWriting ? concurrent : sequential).push(outcome.imageAt - outcome.startedAt);
          if (!drawWhileWriting && outcome.doneAt !== null) {
            text.push(outcome.doneAt - outcome.startedAt);
          }
        }
      }
    } finally {
      this.upstream.send({ cmd: 'image-delay', ms: -1 });
    }
    return {
      imageDelayMs,
      sequentialMs: percentiles(sequential, 1000),
      concurrentMs: percentiles(concurrent, 1000),
      textMs: percentiles(text, 1000),
      failures,
    };
  }

  /**
   * `/healthz` timed back to back, first alone, then while {@link IMAGE_LOAD}.fetchers clients
   * fetch one stored image of {@link IMAGE_LOAD}.bytes over and over: how much serving image
   * bytes holds up every other request.
   */
  private async healthzUnderImageLoad(system: SystemId, sut: Sut): Promise<HealthzResult> {
    this.progress.phase(`${system}: storing a ${IMAGE_LOAD.bytes / 2 ** 20} MB image`);
    const agent = clientAgent();
    try {
      this.upstream.send({ cmd: 'image-bytes', bytes: IMAGE_LOAD.bytes });
      const [target] = await sut.targets(1);
      // Not armed: the upstream streams its default length.
      const outcome = await runStream(agent, 'easel', target(true), CHUNKS, new Recorder());
      this.upstream.send({ cmd: 'image-bytes', bytes: 0 });
      if (!outcome.ok || !outcome.imageUrl) {
        throw new Error(`${system}: the 2 MB image turn failed: ${outcome.error ?? 'no image'}`);
      }
      const signed = new URL(outcome.imageUrl);
      const path = `${signed.pathname}${signed.search}`;
      const first = await getBody(agent, sut.port, path);
      if (first.status !== 200 || first.bytes < IMAGE_LOAD.bytes / 2) {
        throw new Error(`${system}: GET image answered ${first.status}, ${first.bytes} bytes`);
      }
      this.progress.phase(`${system}: /healthz idle`);
      const idle = await timeHealthz(agent, sut.port, IMAGE_LOAD.seconds * 1000);
      this.progress.phase(`${system}: /healthz while ${IMAGE_LOAD.fetchers} clients fetch it`);
      const deadline = Date.now() + IMAGE_LOAD.seconds * 1000;
      const fetchUs: number[] = [];
      let failures = 0;
      const fetcher = async (): Promise<void> => {
        while (Date.now() < deadline) {
          const start = nowUs();
          const { status } = await getBody(agent, sut.port, path);
          if (status === 200) fetchUs.push(nowUs() - start);
          else failures += 1;
        }
      };
      const [loaded] = await Promise.all([
        timeHealthz(agent, sut.port, IMAGE_LOAD.seconds * 1000),
        ...Array.from({ length: IMAGE_LOAD.fetchers }, fetcher),
      ]);
      return {
        imageBytes: first.bytes,
        fetchers: IMAGE_LOAD.fetchers,
        idleMs: percentiles(idle, 1000),
        loadedMs: percentiles(loaded, 1000),
        imageFetches: fetchUs.length,
        imageFetchMs: percentiles(fetchUs, 1000),
        failures,
      };
    } finally {
      agent.destroy();
    }
  }

  private async level(system: SystemId, sut: Sut, agent: Agent, plan: Plan): Promise<LevelResult> {
    const { streams } = plan;
    const { child } = sut;
    const tag = `${system} ×${streams}`;
    this.errors.length = 0;
    const seconds: Record<string, number> = {};
    let lap = Date.now();
    const step = (name: string): void => {
      seconds[name] = (Date.now() - lap) / 1000;
      lap = Date.now();
    };
    this.progress.phase(`${tag}: preparing ${plan.rounds * streams} turns`);
    const targets = await sut.targets(plan.rounds * streams);
    step('prepare');
    child.resetPeak();
    const sampleMemory = streams >= MEMORY_MIN_STREAMS;
    const recorder = new Recorder((n) => this.progress.advance(n));
    const rssPerStream: number[] = [];
    const heapPerStream: number[] = [];
    const midPerStream: number[] = [];
    const baseHeapKiB: number[] = [];
    let failed = 0;
    let gcCpuUs = 0;
    const database = this.postgres && sut.database ? sut.database.name : null;
    const statementsBefore: StatementCounts =
      this.postgres && database ? await this.postgres.statementCounts(database) : new Map();
    const xactsBefore =
      this.postgres && database ? await this.postgres.transactions(database) : null;
    const pgCpuStart = this.postgres?.cpuMs() ?? NaN;
    const start = await child.stats(false);
    const mainStart = child.mainThreadCpuMs();
    let firstBase: Stats | null = null;
    for (let round = 0; round < plan.rounds; round++) {
      this.progress.phase(`${tag}: round ${round + 1}/${plan.rounds}`);
      // A forced GC leaves background work behind that lands in the CPU figure; at one stream
      // that is most of it, and memory per stream is not shown there anyway.
      const base = await child.stats(sampleMemory);
      firstBase ??= base;
      baseHeapKiB.push(Math.round(base.heapUsed / 1024));
      gcCpuUs += base.gcCpuUs;
      const specs = targets.slice(round * streams, (round + 1) * streams).map((t) => t(false));
      let mid: NodeJS.Timeout | undefined;
      const outcomes = await this.round(
        system,
        agent,
        specs,
        CHUNKS,
        recorder,
        async () => {
          if (!sampleMemory) return;
          const held = await child.stats(true);
          gcCpuUs += held.gcCpuUs;
          rssPerStream.push((held.rss - base.rss) / 1024 / streams);
          heapPerStream.push((held.heapUsed - base.heapUsed) / 1024 / streams);
        },
        () => {
          mid = setTimeout(
            () => {
              if (child.alive)
                midPerStream.push((child.memory().rssKiB - base.rss / 1024) / streams);
            },
            (CHUNKS * INTERVAL_MS) / 2,
          );
        },
      );
      clearTimeout(mid);
      failed += this.note(outcomes);
    }
    const end = await child.stats(false);
    const cpuMs = (end.cpuUs - start.cpuUs - gcCpuUs) / 1000;
    const mainCpuMs = child.mainThreadCpuMs() - mainStart - gcCpuUs / 1000;
    const turns = plan.rounds * streams;
    let postgres: PostgresLevel | null = null;
    if (this.postgres && database) {
      const pgCpuMs = this.postgres.cpuMs() - pgCpuStart;
      const statements = statementsPer(
        statementsBefore,
        await this.postgres.statementCounts(database),
        turns,
      );
      const xacts = await this.postgres.transactions(database);
      postgres = {
        cpuMs: pgCpuMs,
        cpuMsPerTurn: pgCpuMs / turns,
        cpuMsPer1000Deltas: (pgCpuMs / recorder.deltaFrames) * 1000,
        statementsPerTurn: this.postgres.statements
          ? statements.reduce((sum, row) => sum + row.perTurn, 0)
          : NaN,
        statements,
        execMsPerTurn: this.postgres.statements
          ? statements.reduce((sum, row) => sum + row.execMsPerTurn, 0)
          : NaN,
        commitsPerTurn: (xacts.commits - (xactsBefore?.commits ?? NaN)) / turns,
        rollbacksPerTurn: (xacts.rollbacks - (xactsBefore?.rollbacks ?? NaN)) / turns,
        connectionsPerTurn: (xacts.sessions - (xactsBefore?.sessions ?? NaN)) / turns,
      };
    }
    const peak = child.memory().hwmKiB;
    step('rounds');

    let image: LevelResult['image'] = null;
    if (SYSTEMS[system].protocol === 'easel' && plan.imageRounds > 0) {
      const gaps: number[] = [];
      let imageFailed = 0;
      for (let round = 0; round < plan.imageRounds; round++) {
        this.progress.phase(`${tag}: image turns ${round + 1}/${plan.imageRounds}`);
        const specs = targets.slice(round * streams, (round + 1) * streams).map((t) => t(true));
        const imageRecorder = new Recorder((n) => this.progress.advance(n));
        const outcomes = await this.round(
          system,
          agent,
          specs,
          IMAGE_CHUNKS,
          imageRecorder,
          async () => {},
        );
        imageFailed += this.note(outcomes);
        for (const outcome of outcomes) {
          if (outcome.doneAt !== null && outcome.pendingAt !== null) {
            gaps.push(outcome.pendingAt - outcome.doneAt);
          } else if (outcome.ok) {
            imageFailed += 1;
          }
        }
      }
      step('image');
      image = {
        turns: plan.imageRounds * streams,
        failed: imageFailed,
        doneToPendingMs: percentiles(gaps, 1000),
      };
    }
    const baseRssKiB = (firstBase?.rss ?? 0) / 1024;
    return {
      system,
      streams,
      rounds: plan.rounds,
      turns,
      failedTurns: failed,
      errors: [...this.errors],
      latencyMs: percentiles(recorder.latenciesUs, 1000),
      firstTokenMs: percentiles(recorder.firstTokenUs, 1000),
      cpu: {
        ms: cpuMs,
        deltaFrames: recorder.deltaFrames,
        frames: recorder.frames,
        msPer1000Deltas: (cpuMs / recorder.deltaFrames) * 1000,
        msPerTurn: cpuMs / turns,
        mainThreadMsPerTurn: mainCpuMs / turns,
      },
      memory: {
        baseRssKiB,
        rssPerStreamKiB: median(rssPerStream),
        heapPerStreamKiB: median(heapPerStream),
        baseHeapKiB,
        midStreamRssPerStreamKiB: median(midPerStream),
        peakRssPerStreamKiB: (peak - baseRssKiB) / streams,
      },
      seconds,
      image,
      postgres,
    };
  }
}

function fmt(value: number): string {
  if (!Number.isFinite(value)) return 'n/a';
  const abs = Math.abs(value);
  return value.toFixed(abs >= 100 ? 0 : abs >= 10 ? 1 : 2);
}

function ratio(value: number | undefined, reference: number | undefined): string {
  if (value === undefined || reference === undefined) return '—';
  if (!(value > 0) || !(reference > 0)) return 'n/a';
  return `${(value / reference).toFixed(2)}×`;
}

/** Markdown, so it pastes straight into docs/performance.md. */
function table(
  results: readonly LevelResult[],
  systems: readonly SystemId[],
  levels: readonly number[],
): string {
  const find = (system: SystemId, streams: number): LevelResult | undefined =>
    results.find((result) => result.system === system && result.streams === streams);
  const memory = (pick: (result: LevelResult) => number) => (result: LevelResult) =>
    result.streams >= MEMORY_MIN_STREAMS ? pick(result) : undefined;
  const metrics: Array<[string, (result: LevelResult) => number | undefined]> = [
    ['added latency p50, ms', (r) => r.latencyMs.p50],
    ['added latency p99, ms', (r) => r.latencyMs.p99],
    ['added TTFT p50, ms', (r) => r.firstTokenMs.p50],
    ['added TTFT p99, ms', (r) => r.firstTokenMs.p99],
    ['CPU ms / 1 000 frames', (r) => r.cpu.msPer1000Deltas],
    ['CPU ms / turn', (r) => r.cpu.msPerTurn],
    ['main-thread CPU ms / turn', (r) => r.cpu.mainThreadMsPerTurn],
    ['RSS / open stream, KiB', memory((r) => r.memory.rssPerStreamKiB)],
    ['heap / open stream, KiB', memory((r) => r.memory.heapPerStreamKiB)],
  ];
  if (results.some((result) => result.postgres)) {
    metrics.push(
      ['PostgreSQL CPU ms / turn', (r) => r.postgres?.cpuMsPerTurn],
      [
        'Easel + PostgreSQL CPU ms / 1 000 frames',
        (r) => (r.postgres ? r.cpu.msPer1000Deltas + r.postgres.cpuMsPer1000Deltas : undefined),
      ],
      ['DB statements / turn', (r) => r.postgres?.statementsPerTurn],
      ['DB execution ms / turn (pg_stat_statements)', (r) => r.postgres?.execMsPerTurn],
      ['DB rollbacks (failed statements) / turn', (r) => r.postgres?.rollbacksPerTurn],
      ['DB connections opened / turn', (r) => r.postgres?.connectionsPerTurn],
    );
  }
  // Every system against the floor; the Easel variants against the peer too; after against
  // before, and `continue` turns against default ones.
  const pairs: Array<[SystemId, SystemId]> = [
    ['easel', 'easel-before'],
    ['easel-pg', 'easel-pg-before'],
    ['easel-pg-continue', 'easel-pg'],
  ];
  const ratios: Array<[SystemId, SystemId]> = [
    ...systems
      .filter((s) => s !== 'floor' && systems.includes('floor'))
      .map((s): [SystemId, SystemId] => [s, 'floor']),
    ...systems
      .filter((s) => SYSTEMS[s].protocol === 'easel' && systems.includes('peer'))
      .map((s): [SystemId, SystemId] => [s, 'peer']),
    ...pairs.filter(([a, b]) => systems.includes(a) && systems.includes(b)),
  ];
  const row = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  const lines = [
    row(['metric', 'streams', ...systems, ...ratios.map(([a, b]) => `${a}/${b}`)]),
    row(['---', '--:', ...systems.map(() => '--:'), ...ratios.map(() => '--:')]),
  ];
  // RSS can even shrink while streams open (freed pages reused): that reads as "about none".
  const cell = (value: number | undefined): string =>
    value === undefined ? '—' : value <= 0 ? '≈0' : fmt(value);
  for (const [label, pick] of metrics) {
    for (const streams of levels) {
      const value = (system: SystemId): number | undefined => {
        const result = find(system, streams);
        return result ? pick(result) : undefined;
      };
      lines.push(
        row([
          label,
          String(streams),
          ...systems.map((s) => cell(value(s))),
          ...ratios.map(([a, b]) => ratio(value(a), value(b))),
        ]),
      );
    }
  }
  for (const system of systems) {
    for (const streams of levels) {
      const image = find(system, streams)?.image;
      if (!image) continue;
      const { p50, p99 } = image.doneToPendingMs;
      lines.push(
        row([
          `done → image_pending p50 / p99, ms, ${system}`,
          String(streams),
          ...systems.map((s) => (s === system ? `${fmt(p50)} / ${fmt(p99)}` : '—')),
          ...ratios.map(() => '—'),
        ]),
      );
    }
  }
  return lines.join('\n');
}

/** The figures that do not depend on the level: idle memory and `/healthz` under image load. */
function systemTable(extras: readonly SystemResult[]): string {
  const lines = [
    '| system | idle RSS, MiB | idle heap, MiB | /healthz p99 idle, ms | /healthz p99, 4 × 2 MB image fetches, ms | loaded/idle | image fetch p50, ms |',
    '|---|--:|--:|--:|--:|--:|--:|',
  ];
  for (const { system, idle, healthz } of extras) {
    const h = healthz
      ? [
          fmt(healthz.idleMs.p99),
          fmt(healthz.loadedMs.p99),
          ratio(healthz.loadedMs.p99, healthz.idleMs.p99),
          fmt(healthz.imageFetchMs.p50),
        ]
      : ['—', '—', '—', '—'];
    lines.push(`| ${system} | ${fmt(idle.rssMiB)} | ${fmt(idle.heapMiB)} | ${h.join(' | ')} |`);
  }
  return lines.join('\n');
}

/** What each PostgreSQL system's database ran per turn at `streams`, by statement text. */
function statementTable(results: readonly LevelResult[], streams: number): string {
  const pg = results.filter((r) => r.streams === streams && r.postgres?.statements.length);
  if (pg.length === 0) return '';
  const queries = [...new Set(pg.flatMap((r) => r.postgres?.statements.map((s) => s.query) ?? []))];
  const short = (query: string): string =>
    query.replace(/\s+/g, ' ').slice(0, 90).replaceAll('|', '\\|');
  const lines = [
    `Statements per turn at ${streams} streams, and their mean execution time (pg_stat_statements):\n`,
    `| statement | ${pg.map((r) => r.system).join(' | ')} |`,
    `|---|${pg.map(() => '--:').join('|')}|`,
  ];
  for (const query of queries) {
    const cells = pg.map((r) => {
      const found = r.postgres?.statements.find((s) => s.query === query);
      return found
        ? `${found.perTurn.toFixed(2)} (${(found.execMsPerTurn / found.perTurn).toFixed(3)} ms)`
        : '—';
    });
    lines.push(`| \`${short(query)}\` | ${cells.join(' | ')} |`);
  }
  lines.push(
    `| **total** | ${pg.map((r) => fmt(r.postgres?.statementsPerTurn ?? NaN)).join(' | ')} |`,
  );
  return lines.join('\n');
}

function timeToImageTable(extras: readonly SystemResult[]): string {
  const rows = extras.filter((extra) => extra.timeToImage);
  if (rows.length === 0) return '';
  const lines = [
    `Time to image (forced reply_text_image, one turn at a time, image drawn in ${TIME_TO_IMAGE.imageDelayMs} ms):\n`,
    '| system | text done p50, ms | image p50, sequential | image p50, concurrent | gain p50, ms | concurrent/sequential | image p90 seq / conc | failures |',
    '|---|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const { system, timeToImage: t } of rows) {
    if (!t) continue;
    lines.push(
      `| ${system} | ${fmt(t.textMs.p50)} | ${fmt(t.sequentialMs.p50)} | ${fmt(t.concurrentMs.p50)} | ` +
        `${fmt(t.sequentialMs.p50 - t.concurrentMs.p50)} | ${ratio(t.concurrentMs.p50, t.sequentialMs.p50)} | ` +
        `${fmt(t.sequentialMs.p90)} / ${fmt(t.concurrentMs.p90)} | ${t.failures} |`,
    );
  }
  return lines.join('\n');
}

async function startUpstream(): Promise<{ upstream: Child; url: string }> {
  const upstream = new Child('upstream', join(HERE, 'upstream.js'), {
    env: {
      ...process.env,
      BENCH_CHUNKS: String(CHUNKS),
      BENCH_INTERVAL_MS: String(INTERVAL_MS),
    },
    execArgv: [],
    cwd: ROOT,
  });
  const { port } = await upstream.waitFor('ready', 20_000);
  return { upstream, url: `http://127.0.0.1:${port}/api/v1` };
}

function writeResults(name: string, data: unknown): string {
  const dir = join(ROOT, 'bench/results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, name);
  writeFileSync(path, `${JSON.stringify(data, null, 2)}\n`);
  return path;
}

function machine(): Record<string, unknown> {
  return {
    node: process.version,
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    // Other work on the machine skews every figure: a run on a busy machine says so here.
    loadAverage1m: Number(loadavg()[0].toFixed(2)),
  };
}

/** One system alone under `--cpu-prof`; only the samples of the load window are summarised. */
async function profile(system: SystemId, levels: readonly number[]): Promise<void> {
  const streams = Math.max(...levels);
  const rounds = streams >= 1000 ? 1 : 2;
  const dir = mkdtempSync(join(tmpdir(), 'easel-cpuprof-'));
  const progress = new Progress((WARMUP.batches * WARMUP.streams + rounds * streams) * CHUNKS);
  const { upstream, url } = await startUpstream();
  progress.phase(`${system} ×${streams} under --cpu-prof: starting`);
  const sut = await startSut(system, url, ['--cpu-prof', `--cpu-prof-dir=${dir}`]);
  const agent = clientAgent();
  const recorder = new Recorder((n) => progress.advance(n));
  let window: [number, number];
  try {
    progress.phase('warming up');
    for (let batch = 0; batch < WARMUP.batches; batch++) {
      const targets = await sut.targets(WARMUP.streams);
      await Promise.all(
        targets.map((t) => runStream(agent, SYSTEMS[system].protocol, t(false), CHUNKS, recorder)),
      );
    }
    const targets = await sut.targets(rounds * streams);
    const from = nowUs();
    for (let round = 0; round < rounds; round++) {
      progress.phase(`${system} ×${streams} under --cpu-prof: round ${round + 1}/${rounds}`);
      const specs = targets.slice(round * streams, (round + 1) * streams).map((t) => t(false));
      await Promise.all(
        specs.map((spec) => runStream(agent, SYSTEMS[system].protocol, spec, CHUNKS, recorder)),
      );
    }
    window = [from, nowUs()];
  } finally {
    agent.destroy();
    await sut.stop(30_000);
    await upstream.stop();
    progress.stop();
  }
  // One profile per thread, named CPU.<date>.<time>.<pid>.<thread id>.<seq>.cpuprofile: the main
  // thread (id 0) is the one that relays; others (the PGlite worker) are summed up below it.
  const files = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile'));
  const file = files.find((name) => name.split('.')[4] === '0') ?? files[0];
  if (!file) throw new Error(`no .cpuprofile was written to ${dir}`);
  const summary = summarise(join(dir, file), window[0], window[1]);
  const threads = files
    .filter((name) => name !== file)
    .map((name) => ({ profile: join(dir, name), ...summarise(join(dir, name), ...window, 8) }));
  const pad = (ms: number, share: number): string =>
    `${ms.toFixed(0).padStart(7)} ms ${(share * 100).toFixed(1).padStart(5)}%`;
  console.log(`${system}, ${rounds} rounds of ${streams} streams: profile ${join(dir, file)}`);
  console.log(
    `load window ${summary.windowMs.toFixed(0)} ms, on-CPU samples ${summary.sampledMs.toFixed(0)} ms\n`,
  );
  console.log('self time by package / area:');
  for (const entry of summary.packages) console.log(`${pad(entry.ms, entry.share)}  ${entry.name}`);
  console.log('\nself time by function:');
  for (const entry of summary.functions)
    console.log(`${pad(entry.ms, entry.share)}  ${entry.name}`);
  console.log('\ntime with an Easel function on the stack (its synchronous part):');
  for (const entry of summary.easelInclusive.slice(0, 12)) {
    console.log(`${pad(entry.ms, entry.share)}  ${entry.name}`);
  }
  for (const thread of threads) {
    console.log(
      `\nanother thread (${thread.profile}): on-CPU samples ${thread.sampledMs.toFixed(0)} ms`,
    );
    for (const entry of thread.packages)
      console.log(`${pad(entry.ms, entry.share)}  ${entry.name}`);
  }
  const path = writeResults(`${localDate()}.profile-${system}.json`, {
    date: new Date().toISOString(),
    machine: machine(),
    system,
    streams,
    rounds,
    chunks: CHUNKS,
    profile: join(dir, file),
    windowUs: window,
    ...summary,
    otherThreads: threads,
  });
  console.log(`\nsummary written to ${path}`);
}

/**
 * One Easel system under a closed loop of each number of `clients` for `seconds`: turns per
 * second against the CPU of Easel and of PostgreSQL (see bench/ceiling.ts).
 */
async function ceiling(system: SystemId, clients: readonly number[], seconds: number) {
  if (SYSTEMS[system].protocol !== 'easel') throw new Error('--ceiling runs an Easel system');
  const postgres = DATABASE_URL ? await PostgresProbe.open(DATABASE_URL) : null;
  // Unknown in advance: about one turn per client and per (chunks × interval + overhead).
  const turnMs = CHUNKS * INTERVAL_MS + 50;
  const expected = clients.reduce((sum, c) => sum + (c * seconds * 1000) / turnMs, 0);
  const progress = new Progress((WARMUP.batches * WARMUP.streams + expected) * CHUNKS);
  const before = machine();
  const { upstream, url } = await startUpstream();
  progress.phase(`${system}: starting`);
  const sut = await startSut(system, url, []);
  const agent = clientAgent();
  const steps: CeilingStep[] = [];
  try {
    progress.phase(`${system}: warming up`);
    const warm = new Recorder((n) => progress.advance(n));
    for (let batch = 0; batch < WARMUP.batches; batch++) {
      const targets = await sut.targets(WARMUP.streams);
      await Promise.all(targets.map((t) => runStream(agent, 'easel', t(false), CHUNKS, warm)));
    }
    for (const count of clients) {
      progress.phase(`${system}: ${count} clients for ${seconds} s`);
      steps.push(await ceilingStep(sut, agent, CHUNKS, count, seconds, postgres, progress));
    }
  } finally {
    agent.destroy();
    await sut.stop();
    await upstream.stop();
    progress.stop();
  }
  console.log(
    `\nEasel ceiling ${localDate()} — ${CHUNKS} chunks × ${INTERVAL_MS} ms per turn, ` +
      `load average ${before['loadAverage1m']} → ${loadavg()[0].toFixed(2)}\n\n` +
      `${ceilingTable(system, steps)}\n`,
  );
  const tag = argument('tag');
  const path = writeResults(`${localDate()}.ceiling-${system}${tag ? `.${tag}` : ''}.json`, {
    date: new Date().toISOString(),
    machine: before,
    loadAverage1mAtEnd: Number(loadavg()[0].toFixed(2)),
    system,
    turn: SYSTEMS[system].turn,
    upstream: { chunks: CHUNKS, intervalMs: INTERVAL_MS },
    secondsPerStep: seconds,
    streamsPerUser: STREAMS_PER_USER,
    steps,
  });
  console.log(`raw figures: ${path}`);
}

/**
 * Heap snapshots of one system: after warm-up (baseline) and while the highest level's streams
 * are all open and held by the upstream; prints what one open stream adds, by constructor.
 */
async function heapProfile(system: SystemId, levels: readonly number[]): Promise<void> {
  const streams = Math.max(...levels);
  const dir = mkdtempSync(join(tmpdir(), 'easel-heap-'));
  const progress = new Progress((WARMUP.batches * WARMUP.streams + streams) * CHUNKS);
  const { upstream, url } = await startUpstream();
  progress.phase(`${system}: starting`);
  const sut = await startSut(system, url, ['--expose-gc']);
  const agent = clientAgent();
  const recorder = new Recorder((n) => progress.advance(n));
  const protocol = SYSTEMS[system].protocol;
  const before = join(dir, 'before.heapsnapshot');
  const during = join(dir, 'open.heapsnapshot');
  let failed = 0;
  try {
    progress.phase('warming up');
    for (let batch = 0; batch < WARMUP.batches; batch++) {
      const targets = await sut.targets(WARMUP.streams);
      await Promise.all(targets.map((t) => runStream(agent, protocol, t(false), CHUNKS, recorder)));
    }
    const specs = (await sut.targets(streams)).map((t) => t(false));
    progress.phase('baseline snapshot');
    await sut.child.heapSnapshot(before);
    const allHeld = upstream.waitFor('held', 60_000, (report) => report.count === streams);
    upstream.send({ cmd: 'arm', count: streams, chunks: CHUNKS });
    const outcomes = Promise.all(
      specs.map((spec) => runStream(agent, protocol, spec, CHUNKS, recorder)),
    );
    await allHeld;
    progress.phase(`snapshot with ${streams} open streams`);
    await sut.child.heapSnapshot(during);
    upstream.send({ cmd: 'release' });
    failed = (await outcomes).filter((outcome) => !outcome.ok).length;
  } finally {
    agent.destroy();
    await sut.stop();
    await upstream.stop();
    progress.stop();
  }
  const diff = heapDiff(before, during, streams);
  const total = diff.reduce((sum, group) => sum + group.bytesPerStream, 0);
  console.log(
    `${system}: heap per open stream ${(total / 1024).toFixed(1)} KiB (${streams} streams, snapshots in ${dir})\n`,
  );
  console.log('  bytes  objects  node kind:name');
  for (const group of diff.slice(0, 40)) {
    console.log(
      `${group.bytesPerStream.toFixed(0).padStart(7)}  ${group.countPerStream.toFixed(1).padStart(7)}  ${group.name}`,
    );
  }
  const path = writeResults(`${localDate()}.heap-${system}.json`, {
    date: new Date().toISOString(),
    machine: machine(),
    system,
    streams,
    failedStreams: failed,
    heapPerStreamBytes: total,
    snapshots: [before, during],
    groups: diff.filter((group) => Math.abs(group.bytesPerStream) >= 16),
  });
  console.log(`\nsummary written to ${path}`);
}

async function main(): Promise<void> {
  const options = parseOptions(process.argv);
  if (!existsSync(join(ROOT, 'dist/main.js'))) {
    throw new Error('dist/main.js is missing: run `npm run bench` (it builds first)');
  }
  if (options.profile) return profile(options.profile, options.levels);
  if (options.heap) return heapProfile(options.heap, options.levels);
  if (options.ceiling) {
    const clients = argument('levels') ? options.levels : [25, 50, 100, 200, 400];
    return ceiling(options.ceiling, clients, Number(argument('ceiling-seconds') ?? '10'));
  }

  const plans = options.levels.map(planFor);
  const perSystem =
    plans.reduce((sum, plan) => sum + plan.rounds * plan.streams, 0) +
    WARMUP.batches * WARMUP.streams;
  const easels = options.systems.filter((s) => SYSTEMS[s].protocol === 'easel').length;
  const images = easels * plans.reduce((sum, plan) => sum + plan.imageRounds * plan.streams, 0);
  const progress = new Progress(
    perSystem * options.systems.length * CHUNKS + images * IMAGE_CHUNKS,
  );
  const started = Date.now();
  const before = machine();
  const { upstream, url } = await startUpstream();
  const postgres = DATABASE_URL ? await PostgresProbe.open(DATABASE_URL) : null;
  const bench = new Bench(upstream, url, progress, postgres, options.timeToImage);
  const results: LevelResult[] = [];
  const extras: SystemResult[] = [];
  try {
    for (const system of options.systems) {
      const { levels, extras: more } = await bench.system(system, plans);
      results.push(...levels);
      extras.push(more);
    }
  } finally {
    await upstream.stop();
    progress.stop();
  }

  const seconds = (Date.now() - started) / 1000;
  const header =
    `Easel bench ${localDate()} — ${CHUNKS} chunks × ${INTERVAL_MS} ms per stream, ` +
    `Node ${process.version}, ${cpus().length} CPUs, ${seconds.toFixed(0)} s, ` +
    `load average ${before['loadAverage1m']} → ${loadavg()[0].toFixed(2)}`;
  console.log(
    `\n${header}\n\n${table(results, options.systems, options.levels)}\n\n` +
      `${systemTable(extras)}\n`,
  );
  const top = Math.max(...options.levels);
  for (const extra of [statementTable(results, top), timeToImageTable(extras)]) {
    if (extra) console.log(`${extra}\n`);
  }
  for (const result of results) {
    if (result.failedTurns > 0 || (result.image?.failed ?? 0) > 0) {
      console.log(
        `${result.system} ×${result.streams}: ${result.failedTurns} failed turns, ` +
          `${result.image?.failed ?? 0} failed image turns: ${result.errors.join(' | ')}`,
      );
    }
  }
  const tag = argument('tag');
  const path = writeResults(`${localDate()}${tag ? `.${tag}` : ''}.json`, {
    date: new Date().toISOString(),
    machine: before,
    loadAverage1mAtEnd: Number(loadavg()[0].toFixed(2)),
    upstream: { chunks: CHUNKS, imageTurnChunks: IMAGE_CHUNKS, intervalMs: INTERVAL_MS },
    systems: Object.fromEntries(options.systems.map((s) => [s, SYSTEMS[s]])),
    baselineDist: BASELINE_DIST,
    postgres: postgres
      ? { statements: postgres.statements, serverCpu: Number.isFinite(postgres.cpuMs()) }
      : null,
    durationSeconds: seconds,
    results,
    perSystem: extras,
  });
  console.log(`raw figures: ${path}`);
  if (results.some((result) => result.failedTurns > 0)) process.exitCode = 1;
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
