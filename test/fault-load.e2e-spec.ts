import { createSession } from './harness/api.js';
import { createHash } from 'node:crypto';
import type { IncomingMessage, Server } from 'node:http';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { eq } from 'drizzle-orm';
import type { Frame } from '../src/chat/turns/frames.js';
import { StreamRegistryService } from '../src/chat/turns/stream-registry.service.js';
import { TurnRunnerService } from '../src/chat/turns/turn-runner.service.js';
import { TurnsRepository } from '../src/chat/turns/turns.repository.js';
import { DatabaseClient } from '../src/database/database.client.js';
import { images, messages, turns } from '../src/database/schema.js';
import { startApp, type TestApp } from './harness/app.js';
import {
  type ChatScript,
  type FakeUpstream,
  type RecordedRequest,
  startFakeUpstream,
} from './harness/fake-upstream.js';
import { eventually, postTurn, type TurnResponse } from './harness/sse-client.js';

/**
 * Fault load: many concurrent turns of every action while the fake upstream fails in every way
 * it knows (5xx, 429, cuts, error chunks, stalls, zero images, undecodable images) and a share
 * of clients walk away mid-turn. Upstream behaviour is chosen per request from a seeded random
 * source keyed by the turn, so a failing run can be repeated with the same LOAD_SEED.
 */

function intEnv(name: string, fallback: number): number {
  const value = process.env[name];
  if (value === undefined || value === '') return fallback;
  const parsed = Number(value);
  if (!Number.isInteger(parsed) || parsed <= 0) throw new Error(`${name} must be a positive int`);
  return parsed;
}

const TURNS = intEnv('LOAD_TURNS', 150);
const CONCURRENCY = Math.min(intEnv('LOAD_CONCURRENCY', 50), TURNS);
const SEED = intEnv('LOAD_SEED', 20261124);
/**
 * Short, so stalls end; more room at high concurrency, where the app, the fake upstream and the
 * clients share this process's one thread. A benign turn may still hit it (see the oracle).
 */
const TURN_TIMEOUT_MS = intEnv('LOAD_TURN_TIMEOUT_MS', Math.max(4000, CONCURRENCY * 40));
const IMAGE_ATTEMPT_TIMEOUT_MS = 1500;

const CHAT_MODELS = ['chat-a', 'chat-b', 'chat-c'];
const IMAGE_MODELS = ['img-a', 'img-b'];
const COMPOSER = 'composer';

type Action = 'reply_text' | 'reply_text_image' | 'reply_image';
/** `text`/`image`: leave while that stage is surely still running upstream; `random`: any frame. */
type Leave = 'none' | 'text' | 'image' | 'random';

interface Plan {
  readonly tag: string;
  readonly action: Action;
  readonly leave: Leave;
  /** For `random`: leave after this frame id (if the turn gets that far). */
  readonly leaveAfter: number;
  readonly body: Record<string, unknown>;
}

interface Outcome {
  readonly plan: Plan;
  /** The client's session and token (a key is unique within its session). */
  readonly sessionId: string;
  readonly token: string;
  readonly response: TurnResponse | null;
  readonly thrown: unknown;
  readonly started: number;
  readonly leftAt: number | null;
  readonly ms: number;
}

/** mulberry32: small, fast, good enough to pick faults. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function seedOf(text: string): number {
  return createHash('sha256').update(text).digest().readUInt32LE(0);
}

function weighted<T>(next: () => number, options: readonly [number, () => T][]): T {
  const total = options.reduce((sum, [weight]) => sum + weight, 0);
  let roll = next() * total;
  for (const [weight, make] of options) {
    roll -= weight;
    if (roll < 0) return make();
  }
  return options[options.length - 1][1]();
}

function between(next: () => number, min: number, max: number): number {
  return min + Math.floor(next() * (max - min + 1));
}

const WORDS = ['Sure', ' here', ' is', ' a', ' short', ' answer', ' about', ' that', ' topic', '.'];

function words(next: () => number): string[] {
  return WORDS.slice(0, between(next, 2, WORDS.length));
}

function planOf(index: number, action: Action, leave: Leave, leaveAfter: number): Plan {
  const tag = `t${String(index).padStart(5, '0')}`;
  const content = `[${tag}] ${action === 'reply_text' ? 'tell me something' : 'draw a lighthouse'}`;
  const image =
    action === 'reply_text'
      ? {}
      : { image: { force: true, mode: action === 'reply_image' ? 'image_only' : 'text_image' } };
  return {
    tag,
    action,
    leave,
    leaveAfter,
    body: { content, client_msg_id: `load-${SEED}-${tag}`, ...image },
  };
}

/** Turn `index` of the run: its action and whether (and when) its client leaves. */
function makePlan(index: number): Plan {
  const next = random(seedOf(`${SEED}:plan:${index}`));
  const action = weighted<Action>(next, [
    [2, () => 'reply_text'],
    [1, () => 'reply_text_image'],
    [1, () => 'reply_image'],
  ]);
  const roll = next();
  let leave: Leave = 'none';
  if (roll < 0.1) leave = action === 'reply_image' || next() < 0.5 ? 'image' : 'text';
  else if (roll < 0.22) leave = 'random';
  if (leave === 'image' && action === 'reply_text') leave = 'text';
  return planOf(index, action, leave, between(next, 1, 8));
}

const TAG = /\[(t\d{5})\]/g;

/** The tag of the turn a request belongs to: the last one in its last user message. */
function tagOf(request: RecordedRequest): string | null {
  const list = request.body['messages'];
  if (!Array.isArray(list)) return null;
  const users = list.filter(
    (message): message is { role: string; content: unknown } =>
      typeof message === 'object' && message !== null && message.role === 'user',
  );
  const content = users.at(-1)?.content;
  const text = Array.isArray(content) ? JSON.stringify(content) : String(content ?? '');
  return [...text.matchAll(TAG)].at(-1)?.[1] ?? null;
}

function isSuccess(step: ChatScript): boolean {
  return step.kind === 'stream' || step.kind === 'complete' || step.kind === 'image';
}

/** Steps that never finish on their own: only the app's abort (or a timeout) closes them. */
function isHeld(step: ChatScript | undefined): boolean {
  return step?.kind === 'stall' || (step?.kind === 'image' && (step.delayMs ?? 0) >= 60_000);
}

/** The scripted answer for one upstream request of a planned turn. */
function stepFor(plan: Plan, request: RecordedRequest, nth: number): ChatScript {
  const next = random(seedOf(`${SEED}:${plan.tag}:${request.model}:${nth}`));
  const benign = plan.leave === 'text' || plan.leave === 'image';
  if (request.type === 'chat-stream') {
    // Leaving during the text: the primary model sends one chunk, then nothing.
    if (plan.leave === 'text' && request.model === CHAT_MODELS[0] && nth === 0) {
      return { kind: 'stall', chunks: ['Partial'], afterChunks: 1 };
    }
    const stream = (): ChatScript => ({
      kind: 'stream',
      chunks: words(next),
      delayMs: between(next, 0, 15),
    });
    if (benign) return stream();
    if (request.model === 'chat-a') {
      return weighted<ChatScript>(next, [
        [45, stream],
        [10, () => ({ kind: 'stream', chunks: words(next), delayMs: between(next, 30, 60) })],
        [10, () => ({ kind: 'status', status: [500, 502, 503][between(next, 0, 2)] })],
        [5, () => ({ kind: 'status', status: 429, code: 'rate_limited' })],
        [10, () => ({ kind: 'cut', chunks: words(next), afterChunks: between(next, 0, 2) })],
        [10, () => ({ kind: 'error-chunk', afterChunks: between(next, 0, 2) })],
        [5, () => ({ kind: 'stall', afterChunks: between(next, 0, 2) })],
      ]);
    }
    if (request.model === 'chat-b') {
      return weighted<ChatScript>(next, [
        [70, stream],
        [15, () => ({ kind: 'status', status: 503 })],
        [10, () => ({ kind: 'cut', afterChunks: 0 })],
        [5, () => ({ kind: 'error-chunk', afterChunks: 0 })],
      ]);
    }
    return weighted<ChatScript>(next, [
      [90, stream],
      [10, () => ({ kind: 'status', status: 500 })],
    ]);
  }
  if (request.type === 'completion') {
    // The composed prompt carries the tag too, so image attempts with it can be traced.
    const compose = (): ChatScript => ({
      kind: 'complete',
      content: `A detailed lighthouse at dusk, oil on canvas [${plan.tag}]`,
    });
    if (benign) return compose();
    return weighted<ChatScript>(next, [
      [60, compose],
      [15, () => ({ kind: 'status', status: 500 })],
      [10, () => ({ kind: 'stall' })],
      [10, () => ({ kind: 'cut', afterChunks: 0 })],
      [5, () => ({ kind: 'error-chunk', afterChunks: 0 })],
    ]);
  }
  // Leaving during an image attempt: the image would come a minute later.
  if (plan.leave === 'image') return { kind: 'image', delayMs: 60_000 };
  const image = (): ChatScript => ({
    kind: 'image',
    mime: next() < 0.5 ? 'image/png' : 'image/jpeg',
    width: 32,
    height: 32,
    delayMs: between(next, 0, 40),
  });
  if (request.model === 'img-a') {
    return weighted<ChatScript>(next, [
      [40, image],
      [15, () => ({ kind: 'zero-images' })],
      [10, () => ({ kind: 'status', status: 500 })],
      [5, () => ({ kind: 'status', status: 503 })],
      [10, () => ({ kind: 'stall' })],
      [10, () => ({ kind: 'garbage' })],
      [10, () => ({ kind: 'cut', afterChunks: 0 })],
    ]);
  }
  return weighted<ChatScript>(next, [
    [60, image],
    [20, () => ({ kind: 'zero-images' })],
    [20, () => ({ kind: 'status', status: 502 })],
  ]);
}

function exposeGc(): () => void {
  setFlagsFromString('--expose-gc');
  return runInNewContext('gc') as () => void;
}

interface Resources {
  readonly sockets: number;
  readonly timers: number;
  readonly all: Record<string, number>;
}

/** Active handles of this process (app + upstream + clients), less the PostgreSQL pool's own. */
function resources(app: TestApp): Resources {
  const all: Record<string, number> = {};
  for (const type of process.getActiveResourcesInfo()) all[type] = (all[type] ?? 0) + 1;
  const client: unknown = Reflect.get(app.app.get(DatabaseClient).db, '$client');
  const pool = (field: string): number => {
    const value: unknown =
      typeof client === 'object' && client !== null ? Reflect.get(client, field) : undefined;
    return typeof value === 'number' ? value : 0;
  };
  // An idle pooled connection holds a socket and its idle timer; both are the pool's business.
  return {
    sockets: (all['TCPSocketWrap'] ?? 0) - pool('totalCount'),
    timers: (all['Timeout'] ?? 0) - pool('idleCount'),
    all,
  };
}

function serverConnections(server: Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((error, count) => (error ? reject(error) : resolve(count))),
  );
}

function heapAfterGc(gc: () => void): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** Whether `promise` settles within `ms` (its timer cleared, so it is not counted as a handle). */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Waits until every upstream call has closed and no new one follows (an abandoned chain that
 * is not aborted keeps starting attempts); false if that takes longer than `ms`.
 */
async function upstreamQuiet(ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  for (;;) {
    const seen = upstream.requests.length;
    const left = until - performance.now();
    if (left <= 0) return false;
    if (!(await within(Promise.all(upstream.requests.map((r) => r.closed)), left))) return false;
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (upstream.requests.length === seen) return true;
  }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

let upstream: FakeUpstream;
let app: TestApp;
const plans = new Map<string, Plan>();
const stepOf = new Map<RecordedRequest, ChatScript>();
const untagged: RecordedRequest[] = [];

beforeAll(async () => {
  upstream = await startFakeUpstream();
  const seen = new Map<string, number>();
  // Runs before the fake picks a step for the request: scripting the model now decides it.
  upstream.onRequest((request) => {
    const tag = tagOf(request);
    const plan = tag === null ? undefined : plans.get(tag);
    if (!plan) {
      untagged.push(request);
      return;
    }
    const key = `${plan.tag}:${request.model}`;
    const nth = seen.get(key) ?? 0;
    seen.set(key, nth + 1);
    const step = stepFor(plan, request, nth);
    stepOf.set(request, step);
    upstream.script(request.model, step);
  });
  app = await startApp({
    LLM_BASE_URL: upstream.baseUrl,
    LLM_API_KEY: 'test-key',
    CHAT_MODELS: CHAT_MODELS.join(','),
    IMAGE_MODELS: IMAGE_MODELS.join(','),
    IMAGE_COMPOSE_MODEL: COMPOSER,
    TURN_TIMEOUT_MS: String(TURN_TIMEOUT_MS),
    IMAGE_ATTEMPT_TIMEOUT_MS: String(IMAGE_ATTEMPT_TIMEOUT_MS),
    SSE_HEARTBEAT_MS: '250',
  });
}, 60_000);

afterAll(async () => {
  await app?.close();
  await upstream?.close();
});

const newSession = (token: string): Promise<string> => createSession(app.baseUrl, token);

async function runTurn(plan: Plan, sessionId: string, token: string): Promise<Outcome> {
  plans.set(plan.tag, plan);
  const started = performance.now();
  let leftAt: number | null = null;
  const leaveOn = (frame: Frame, id: number): boolean => {
    if (frame.type === 'final' || frame.type === 'error') return false;
    if (plan.leave === 'text') return frame.type === 'delta';
    if (plan.leave === 'image') return frame.type === 'image_attempt';
    return plan.leave === 'random' && id === plan.leaveAfter;
  };
  try {
    const response = await postTurn(app.baseUrl, sessionId, token, plan.body, {
      onFrame: (frame, disconnect) => {
        if (leftAt !== null || !leaveOn(frame.data, frame.id)) return;
        leftAt = performance.now();
        disconnect();
      },
    });
    const ms = performance.now() - started;
    return { plan, sessionId, token, response, thrown: null, started, leftAt, ms };
  } catch (thrown) {
    const ms = performance.now() - started;
    return { plan, sessionId, token, response: null, thrown, started, leftAt, ms };
  }
}

/** `concurrency` clients, each its own user and session, taking turns off one queue. */
async function runAll(list: readonly Plan[], concurrency: number, user: string) {
  const outcomes: Outcome[] = [];
  let next = 0;
  await Promise.all(
    Array.from({ length: concurrency }, async (_, worker) => {
      const token = await app.token(`${user}-${worker}`);
      const sessionId = await newSession(token);
      for (let index = next++; index < list.length; index = next++) {
        outcomes.push(await runTurn(list[index], sessionId, token));
      }
    }),
  );
  return outcomes;
}

/**
 * What a client that stayed must have seen; each broken rule is one line. `storageFailed`: the
 * seam failed this turn's terminal write, so it may end `error{internal, retryable:true}`.
 */
function streamViolations(outcome: Outcome, storageFailed = false): string[] {
  const { plan, response } = outcome;
  const where = `${plan.tag} (${plan.action})`;
  if (!response) return [`${where}: request failed: ${String(outcome.thrown)}`];
  if (response.status !== 200) return [`${where}: HTTP ${response.status} ${response.raw}`];
  const problems: string[] = [];
  const ids = response.frames.map((frame) => frame.id);
  if (ids.some((id, index) => id !== index + 1)) problems.push(`${where}: ids ${ids.join(',')}`);
  const terminals = response.frames.filter(
    (frame) => frame.data.type === 'final' || frame.data.type === 'error',
  );
  const last = response.frames.at(-1)?.data;
  if (terminals.length !== 1 || (last?.type !== 'final' && last?.type !== 'error')) {
    const sequence = response.frames.map((frame) => frame.data.type).join(',');
    problems.push(`${where}: ${terminals.length} terminal frames, sequence ${sequence}`);
  }
  if (last?.type === 'final' && (last.replayed || last.action_type !== plan.action)) {
    problems.push(`${where}: final ${JSON.stringify(last)}`);
  }
  // Upstream faults are all retryable; `internal` would mean the app itself broke, unless the seam
  // failed its storage. Either way an error never follows a `done` that says the message is whole.
  const beforeLast = response.frames.at(-2)?.data;
  if (last?.type === 'error' && beforeLast?.type === 'done' && !beforeLast.truncated) {
    problems.push(`${where}: done(truncated:false) → error ${last.code}`);
  }
  if (last?.type === 'error' && last.code === 'internal' && !storageFailed) {
    problems.push(`${where}: error ${JSON.stringify(last)}`);
  }
  if (last?.type === 'error' && last.retryable !== true) {
    problems.push(`${where}: not retryable ${JSON.stringify(last)}`);
  }
  return problems;
}

const keyOf = (plan: Plan): string => String(plan.body['client_msg_id']);

/**
 * One load run of `list` and every check of what the clients saw, what upstream saw and what was
 * stored. `storageFailed` names the turns (by id) whose terminal writes the seam made fail.
 */
async function runLoad(
  list: readonly Plan[],
  user: string,
  storageFailed: ReadonlySet<string> | null,
) {
  const registry = app.app.get(StreamRegistryService);
  const repository = app.app.get(TurnsRepository);
  const { db } = app.app.get(DatabaseClient);
  const requestsBefore = upstream.requests.length;

  const loadStarted = performance.now();
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  // When the server read each turn request (its URL names the session, whose turns are sequential).
  const server = app.app.getHttpServer() as Server;
  const arrivals = new Map<string, number[]>();
  const onRequest = (request: IncomingMessage): void => {
    const url = request.url ?? '';
    if (url.endsWith('/turns'))
      arrivals.set(url, [...(arrivals.get(url) ?? []), performance.now()]);
  };
  server.prependListener('request', onRequest);
  const outcomes = await runAll(list, CONCURRENCY, user);
  server.off('request', onRequest);
  lag.disable();
  const loadMs = performance.now() - loadStarted;
  const stayed = outcomes.filter((outcome) => outcome.leftAt === null);
  const left = outcomes.filter((outcome) => outcome.leftAt !== null);

  // Every upstream call ends: those of clients that left promptly, the rest by their timeouts.
  const allClosed = await upstreamQuiet(TURN_TIMEOUT_MS + 2000);
  const requests = upstream.requests.slice(requestsBefore);
  const requestsOf = new Map<string, RecordedRequest[]>();
  for (const request of requests) {
    const tag = tagOf(request) ?? '';
    requestsOf.set(tag, [...(requestsOf.get(tag) ?? []), request]);
  }

  // Once every turn has let go of its slot (and released rows are ended), the stored rows.
  await eventually(async () => registry.open === 0 && repository.releasedCount === 0, 5000);
  const keys = new Set(list.map(keyOf));
  const turnRows = (
    await db
      .select({ id: turns.id, clientMsgId: turns.clientMsgId, status: turns.status })
      .from(turns)
  ).filter((row) => keys.has(row.clientMsgId));
  const statusOf = new Map(turnRows.map((row) => [row.clientMsgId, row.status]));
  const failedKeys = new Set(
    turnRows.filter((row) => storageFailed?.has(row.id)).map((row) => row.clientMsgId),
  );

  // What each client saw.
  const problems = stayed.flatMap((outcome) =>
    streamViolations(outcome, failedKeys.has(keyOf(outcome.plan))),
  );
  if (!allClosed) {
    for (const request of requests.filter((item) => item.closedAt === null)) {
      problems.push(`${tagOf(request)}: ${request.model} ${request.type} never closed`);
    }
  }
  // Clients that left mid-stage: the call they left behind was aborted (allClosed covers the
  // rest: a call nobody aborts stays open for good, since these steps never finish by themselves).
  const abortLatencies: number[] = [];
  for (const outcome of outcomes) {
    const { plan, leftAt } = outcome;
    if (plan.leave !== 'text' && plan.leave !== 'image') continue;
    if (leftAt === null) {
      // Only a turn that timed out before that stage may end without it.
      const last = outcome.response?.frames.at(-1)?.data;
      if (last?.type !== 'error' || last.code !== 'timeout') {
        problems.push(`${plan.tag}: planned to leave during the ${plan.leave}, never did`);
      }
      continue;
    }
    const held = (requestsOf.get(plan.tag) ?? []).filter((request) => isHeld(stepOf.get(request)));
    // The delta the client left on came from a held chat call (an image call may not have
    // been sent yet when the client left).
    if (plan.leave === 'text' && held.length === 0) {
      problems.push(`${plan.tag}: left during the text, but no chat call was held open`);
    }
    // Left at the first attempt of four: had the chain not been aborted, each attempt would
    // time out and the next begin. (Two: attempt 1 may time out before the leave is seen.)
    const imageCalls = held.filter((request) => request.type === 'image').length;
    if (plan.leave === 'image' && imageCalls > 2) {
      problems.push(`${plan.tag}: left at its first image attempt, yet ${imageCalls} were made`);
    }
    for (const request of held) {
      // From when the call was both sent and abandoned (under load it may arrive late).
      const from = Math.max(leftAt, request.receivedAt);
      abortLatencies.push((request.closedAt ?? Infinity) - from);
      if (request.closedAt !== null && !request.clientAborted) {
        problems.push(`${plan.tag}: ${request.model} ${request.type} was not aborted`);
      }
    }
  }
  // A turn whose upstream answers were all successes ends in `final`, or in a `timeout` error
  // when this machine is too busy to finish it within TURN_TIMEOUT_MS (or `internal` when the
  // seam failed its storage).
  let benignTimeouts = 0;
  for (const outcome of stayed) {
    const allGood = (requestsOf.get(outcome.plan.tag) ?? []).every((request) => {
      const step = stepOf.get(request);
      return step !== undefined && isSuccess(step);
    });
    const last = outcome.response?.frames.at(-1)?.data;
    if (!allGood || last?.type === 'final') continue;
    if (last?.type === 'error' && last.code === 'timeout') benignTimeouts += 1;
    else if (last?.type === 'error' && failedKeys.has(keyOf(outcome.plan))) continue;
    else
      problems.push(`${outcome.plan.tag}: upstream answered well, ended ${JSON.stringify(last)}`);
  }

  for (const outcome of outcomes) {
    const status = statusOf.get(keyOf(outcome.plan));
    const last = outcome.response?.frames.at(-1)?.data.type;
    let allowed = ['cancelled'];
    // Its terminal write failed: the status-only update (or the release sweep) ended it.
    if (failedKeys.has(keyOf(outcome.plan))) allowed = ['interrupted'];
    else if (outcome.leftAt === null) allowed = [last === 'final' ? 'completed' : 'failed'];
    // A client may leave while its turn is already being stored as finished.
    else if (outcome.plan.leave === 'random') allowed = ['cancelled', 'completed', 'failed'];
    // A client this slow to leave may have lost the race with TURN_TIMEOUT_MS.
    else if (outcome.leftAt - outcome.started > TURN_TIMEOUT_MS - 1000) {
      allowed = ['cancelled', 'failed'];
    }
    if (!status || !allowed.includes(status)) {
      problems.push(`${outcome.plan.tag}: stored ${status}, expected ${allowed.join(' or ')}`);
    }
  }
  if (turnRows.length !== list.length) {
    problems.push(`${turnRows.length} turn rows for ${list.length} turns`);
  }

  const frames = outcomes.flatMap((outcome) => outcome.response?.frames ?? []);
  const count = (type: Frame['type']): number =>
    frames.filter((frame) => frame.data.type === type).length;
  const errorCodes: Record<string, number> = {};
  for (const frame of frames) {
    if (frame.data.type === 'error') {
      errorCodes[frame.data.code] = (errorCodes[frame.data.code] ?? 0) + 1;
    }
  }
  const stayedMs = stayed.map((outcome) => outcome.ms);
  // A turn from the server's reading of its request (the deadline's start) to its last frame; the
  // rest of its client-measured time was spent before this process read the request at all.
  const arrivedAt = (outcome: Outcome): number =>
    arrivals.get(`/v1/sessions/${outcome.sessionId}/turns`)?.find((at) => at >= outcome.started) ??
    outcome.started;
  const fromArrivalMs = stayed.map(
    (outcome) =>
      (outcome.response?.frames.at(-1)?.at ?? outcome.started + outcome.ms) - arrivedAt(outcome),
  );
  const beforeArrivalMs = stayed.map((outcome) => arrivedAt(outcome) - outcome.started);
  const summary = {
    run: user,
    turns: list.length,
    concurrency: CONCURRENCY,
    seed: SEED,
    seconds: Number((loadMs / 1000).toFixed(1)),
    upstreamRequests: requests.length,
    final: count('final'),
    error: count('error'),
    errorCodes,
    image: count('image'),
    imageFailed: count('image_failed'),
    left: left.length,
    cancelled: turnRows.filter((row) => row.status === 'cancelled').length,
    storageFailed: failedKeys.size,
    p50ms: Math.round(percentile(stayedMs, 50)),
    p99ms: Math.round(percentile(stayedMs, 99)),
    maxMs: Math.round(Math.max(0, ...stayedMs)),
    fromArrivalP99Ms: Math.round(percentile(fromArrivalMs, 99)),
    beforeArrivalP99Ms: Math.round(percentile(beforeArrivalMs, 99)),
    turnTimeoutMs: TURN_TIMEOUT_MS,
    eventLoopDelayP99Ms: Math.round(lag.percentile(99) / 1e6),
    eventLoopDelayMaxMs: Math.round(lag.max / 1e6),
    benignTimeouts,
    abortLatencyP99Ms: Math.round(percentile(abortLatencies, 99)),
    abortLatencyMaxMs: Math.round(Math.max(0, ...abortLatencies)),
  };
  // statusOf: this run's turn rows, by client_msg_id.
  return { outcomes, problems, statusOf, summary };
}
type LoadResult = Awaited<ReturnType<typeof runLoad>>;

/** The bar of issue 12 item 8, held at full size only (a CI-size run is too short to judge). */
const FULL_SIZE = TURNS >= 600;

function expectDeadlineBars(summary: LoadResult['summary']): void {
  if (!FULL_SIZE) return;
  expect(summary.p99ms).toBeLessThanOrEqual(TURN_TIMEOUT_MS + 1000);
  expect(summary.abortLatencyP99Ms).toBeLessThanOrEqual(100);
}

/** Messages and images: nothing half-written, every image with its message and vice versa. */
async function storedConsistency(): Promise<string[]> {
  const { db } = app.app.get(DatabaseClient);
  const messageRows = await db
    .select({ id: messages.id, status: messages.status, metadata: messages.metadata })
    .from(messages);
  const imageRows = await db
    .select({ id: images.id, messageId: messages.id, metadata: messages.metadata })
    .from(images)
    .leftJoin(messages, eq(messages.id, images.messageId));
  const imageIds = new Set(imageRows.map((row) => row.id));
  return [
    ...messageRows
      .filter((row) => !['complete', 'cancelled', 'failed'].includes(row.status))
      .map((row) => `message ${row.id} ${row.status}`),
    // No image without its message, and each message points at the image stored for it.
    ...imageRows.filter((row) => row.messageId === null).map((row) => `image ${row.id} alone`),
    ...imageRows
      .filter((row) => row.metadata?.image?.image_id !== row.id)
      .map((row) => `image ${row.id} not its message's`),
    ...messageRows
      .filter((row) => row.metadata.image && !imageIds.has(row.metadata.image.image_id))
      .map((row) => `message ${row.id} without its image`),
  ];
}

async function runningRows(): Promise<string[]> {
  const { db } = app.app.get(DatabaseClient);
  const rows = await db
    .select({ clientMsgId: turns.clientMsgId, status: turns.status })
    .from(turns)
    .where(eq(turns.status, 'running'));
  return rows.map((row) => row.clientMsgId);
}

it(
  `survives ${TURNS} faulty turns at concurrency ${CONCURRENCY} and leaks nothing`,
  async () => {
    const gc = exposeGc();
    const server = app.app.getHttpServer() as Server;
    const before = resources(app);

    // Warm-up, all benign: lazy code paths exist before the heap baseline is taken.
    const actions: Action[] = ['reply_text', 'reply_text_image', 'reply_image'];
    const warm = await runAll(
      actions.map((action, index) => planOf(90_000 + index, action, 'none', 0)),
      1,
      'warm',
    );
    expect(warm.flatMap((outcome) => streamViolations(outcome))).toEqual([]);
    const heapBefore = heapAfterGc(gc);

    const list = Array.from({ length: TURNS }, (_, index) => makePlan(index));
    const { outcomes, problems, statusOf, summary } = await runLoad(list, 'load', null);
    const consistency = await storedConsistency();

    // Handles and heap, once idle keep-alive sockets have timed out.
    const idle = await eventually(
      async () => upstream.openConnections() === 0 && (await serverConnections(server)) === 0,
      10_000,
    ).catch(() => false);
    await new Promise((resolve) => setImmediate(resolve));
    const after = resources(app);
    const heapGrowthMb = (heapAfterGc(gc) - heapBefore) / 2 ** 20;
    const shutdown$: unknown = Reflect.get(app.app.get(TurnRunnerService), 'shutdown$');
    console.log(
      `fault-load ${JSON.stringify({
        ...summary,
        heapGrowthMb: Number(heapGrowthMb.toFixed(1)),
        handlesBefore: before.all,
        handlesAfter: after.all,
      })}`,
    );

    expect(outcomes).toHaveLength(TURNS);
    expect(untagged.map((request) => `${request.model} ${request.type}`)).toEqual([]);
    expect(problems).toEqual([]);
    expect([...statusOf.values()].filter((status) => status === 'interrupted')).toEqual([]);
    expect(await runningRows()).toEqual([]);
    expect(consistency).toEqual([]);
    expectDeadlineBars(summary);

    expect(idle).toBe(true);
    expect(shutdown$).toHaveProperty('observed', false);
    expect(after.sockets).toBeLessThanOrEqual(before.sockets + 2);
    expect(after.timers).toBeLessThanOrEqual(before.timers + 3);
    expect(heapGrowthMb).toBeLessThan(Math.max(24, (TURNS * 40) / 1024));

    // The run did exercise what it claims to.
    expect(summary.final).toBeGreaterThan(0);
    expect(summary.error).toBeGreaterThan(0);
    expect(summary.image).toBeGreaterThan(0);
    expect(summary.imageFailed).toBeGreaterThan(0);
    expect(summary.cancelled).toBeGreaterThan(0);
    if (TURNS >= 100) {
      const kinds = new Set([...stepOf.values()].map((step) => step.kind));
      expect([...kinds].sort()).toEqual([
        'complete',
        'cut',
        'error-chunk',
        'garbage',
        'image',
        'stall',
        'status',
        'stream',
        'zero-images',
      ]);
    }
  },
  90_000 + TURNS * 200,
);

/** Share of turns whose terminal writes the storage run fails. */
const STORAGE_FAILURE_SHARE = 0.1;

it(
  `survives ${TURNS} faulty turns while storage fails for 10% of finishes; no row stays running`,
  async () => {
    const database = app.app.get(DatabaseClient);
    // Chosen per turn (seeded by its id), so both full attempts of a chosen turn fail. Half of
    // those also lose their first status-only update: the release sweep must end them.
    const chosen = (turnId: string, salt: string): boolean =>
      random(seedOf(`${SEED}:${salt}:${turnId}`))() < STORAGE_FAILURE_SHARE;
    const storageFailed = new Set<string>();
    const interruptFailed = new Set<string>();
    database.injectFaults({
      failWhen: ({ kind, turnId }) => {
        if (turnId === undefined || !chosen(turnId, 'finish')) return false;
        if (kind === 'finish') {
          storageFailed.add(turnId);
          return true;
        }
        const once = kind === 'interrupt' && !interruptFailed.has(turnId);
        if (!once || random(seedOf(`${SEED}:sweep:${turnId}`))() >= 0.5) return false;
        interruptFailed.add(turnId);
        return true;
      },
    });
    const list = Array.from({ length: TURNS }, (_, index) => makePlan(50_000 + index));
    let result: LoadResult;
    try {
      result = await runLoad(list, 'storage', storageFailed);
    } finally {
      database.injectFaults({});
    }
    const { outcomes, problems, statusOf, summary } = result;
    const stillRunning = await runningRows();
    console.log(`fault-load ${JSON.stringify(summary)}`);

    expect(outcomes).toHaveLength(TURNS);
    expect(problems).toEqual([]);
    expect(stillRunning).toEqual([]);
    expectDeadlineBars(summary);
    // The run did exercise what it claims to: finishes failed, some of them seen by a client as
    // `internal`, and some rows were ended by the release sweep.
    expect(summary.storageFailed).toBeGreaterThanOrEqual(Math.floor(TURNS * 0.03));
    expect(summary.errorCodes['internal']).toBeGreaterThan(0);
    expect([...interruptFailed].length).toBeGreaterThan(0);

    // Every key whose storage failed is runnable again (not 409 duplicate_in_progress): rerun in
    // its own session, one at a time per session as its client ran them.
    const bySession = new Map<string, Outcome[]>();
    for (const outcome of outcomes) {
      if (statusOf.get(keyOf(outcome.plan)) !== 'interrupted') continue;
      bySession.set(outcome.sessionId, [...(bySession.get(outcome.sessionId) ?? []), outcome]);
    }
    const reruns = (
      await Promise.all(
        [...bySession.values()].map(async (group) => {
          const done: Outcome[] = [];
          for (const { plan, sessionId, token } of group) {
            done.push(await runTurn({ ...plan, leave: 'none' }, sessionId, token));
          }
          return done;
        }),
      )
    ).flat();
    expect(reruns.length).toBe(summary.storageFailed);
    expect(reruns.flatMap((outcome) => streamViolations(outcome))).toEqual([]);
    expect(await runningRows()).toEqual([]);
    expect(await storedConsistency()).toEqual([]);
  },
  90_000 + TURNS * 250,
);
