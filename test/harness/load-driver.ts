import { readlinkSync } from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parentPort } from 'node:worker_threads';
import { type ChatScript, type RecordedRequest, startFakeUpstream } from './fake-upstream.js';
import {
  epochNow,
  type Outcome,
  type Plan,
  stepFor,
  tagOf,
  type UpstreamCall,
} from './load-plan.js';
import { createHttpTransport } from '../../src/provider/http-transport.js';
import { postTurn, type ReceivedFrame, type TurnResponse } from './sse-client.js';

/**
 * The fault load's generator: the fake upstream, scripted per request from the turns' plans, and
 * the load clients. It runs in a worker thread (bundled and started by load-generator.ts), so the
 * app under test has the test's thread to itself, and answers {@link LoadDriver} calls.
 */

export interface RunClient {
  readonly token: string;
  /** Omitted: the client makes a session of its own first. */
  readonly sessionId?: string;
}

export interface RunResult {
  readonly outcomes: Outcome[];
  /** This thread's event-loop delay during the run (the clients' and the upstream's). */
  readonly eventLoopDelayP99Ms: number;
  readonly eventLoopDelayMaxMs: number;
}

export interface LoadDriver {
  /** `clients` take turns off one queue of `plans`, each turn on its client's session. */
  run(baseUrl: string, plans: readonly Plan[], clients: readonly RunClient[]): Promise<RunResult>;
  upstreamCallCount(): Promise<number>;
  /** The upstream requests received so far, from the `from`th on. */
  upstreamCalls(from: number): Promise<UpstreamCall[]>;
  /**
   * Waits until every upstream call has closed and no new one follows (an abandoned chain that is
   * not aborted keeps starting attempts); false if that takes longer than `ms`.
   */
  upstreamQuiet(ms: number): Promise<boolean>;
  /** Sockets open to the fake upstream. */
  upstreamConnections(): Promise<number>;
  close(): Promise<void>;
}

export type DriverRequest = {
  [K in keyof LoadDriver]: { id: number; method: K; args: Parameters<LoadDriver[K]> };
}[keyof LoadDriver];

export type DriverMessage =
  | { type: 'ready'; upstreamUrl: string; threadId: number | null }
  | { type: 'result'; id: number; value: unknown }
  | { type: 'failed'; id: number; error: string };

const port = parentPort;
if (!port) throw new Error('load-driver runs in a worker thread (see load-generator.ts)');
const send = (message: DriverMessage): void => port.postMessage(message);

/** This thread's id for the kernel (Linux), which CPU placement takes; null elsewhere. */
function linuxThreadId(): number | null {
  try {
    return Number(readlinkSync('/proc/thread-self').split('/').pop());
  } catch {
    return null;
  }
}

/** The fake upstream stamps requests, and sse-client frames, with this thread's clock. */
const toEpoch = (at: number): number => performance.timeOrigin + at;

/**
 * The clients' HTTP: the app's own upstream transport (node:http, keep-alive), at a fraction of
 * Node's fetch's CPU, which this thread shares the machine's cores with the app for.
 */
const http = createHttpTransport();

const upstream = await startFakeUpstream();
const plans = new Map<string, Plan>();
const steps = new Map<RecordedRequest, ChatScript>();
const seen = new Map<string, number>();
// Runs before the fake picks a step for the request: scripting the model now decides it.
upstream.onRequest((request) => {
  const tag = tagOf(request.body);
  const plan = tag === null ? undefined : plans.get(tag);
  if (!plan) return;
  const key = `${plan.tag}:${request.model}`;
  const nth = seen.get(key) ?? 0;
  seen.set(key, nth + 1);
  const step = stepFor(plan, request, nth);
  steps.set(request, step);
  upstream.script(request.model, step);
});

function callOf(request: RecordedRequest): UpstreamCall {
  return {
    model: request.model,
    type: request.type,
    tag: tagOf(request.body),
    step: steps.get(request) ?? null,
    receivedAt: toEpoch(request.receivedAt),
    closedAt: request.closedAt === null ? null : toEpoch(request.closedAt),
    clientAborted: request.clientAborted,
  };
}

/** Whether `promise` settles within `ms`. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([promise.then(() => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function upstreamQuiet(ms: number): Promise<boolean> {
  const until = performance.now() + ms;
  for (;;) {
    const count = upstream.requests.length;
    const left = until - performance.now();
    if (left <= 0) return false;
    if (!(await within(Promise.all(upstream.requests.map((r) => r.closed)), left))) return false;
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (upstream.requests.length === count) return true;
  }
}

/** `POST /v1/sessions` → the new session id. */
async function createSession(baseUrl: string, token: string): Promise<string> {
  const response = await http(`${baseUrl}/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: '{}',
  });
  if (response.status !== 201) {
    throw new Error(`POST /v1/sessions: HTTP ${response.status} ${await response.text()}`);
  }
  return ((await response.json()) as { id: string }).id;
}

const inEpoch = (response: TurnResponse): TurnResponse => ({
  ...response,
  frames: response.frames.map((frame) => ({ ...frame, at: toEpoch(frame.at) })),
});

async function runTurn(
  baseUrl: string,
  plan: Plan,
  sessionId: string,
  token: string,
): Promise<Outcome> {
  plans.set(plan.tag, plan);
  const started = epochNow();
  let leftAt: number | null = null;
  const leaveOn = (frame: ReceivedFrame): boolean => {
    if (frame.data.type === 'final' || frame.data.type === 'error') return false;
    if (plan.leave === 'text') return frame.data.type === 'delta';
    if (plan.leave === 'image') return frame.data.type === 'image_attempt';
    return plan.leave === 'random' && frame.id === plan.leaveAfter;
  };
  const outcome = { plan, sessionId, token, started };
  try {
    const response = await postTurn(baseUrl, sessionId, token, plan.body, {
      fetch: http,
      onFrame: (frame, disconnect) => {
        if (leftAt !== null || !leaveOn(frame)) return;
        leftAt = epochNow();
        disconnect();
      },
    });
    const ms = epochNow() - started;
    return { ...outcome, response: inEpoch(response), thrown: null, leftAt, ms };
  } catch (thrown) {
    const ms = epochNow() - started;
    return { ...outcome, response: null, thrown: String(thrown), leftAt, ms };
  }
}

const driver: LoadDriver = {
  async run(baseUrl, list, clients) {
    const lag = monitorEventLoopDelay({ resolution: 10 });
    lag.enable();
    const outcomes: Outcome[] = [];
    let next = 0;
    await Promise.all(
      clients.map(async ({ token, sessionId }) => {
        const session = sessionId ?? (await createSession(baseUrl, token));
        for (let index = next++; index < list.length; index = next++) {
          outcomes.push(await runTurn(baseUrl, list[index], session, token));
        }
      }),
    );
    lag.disable();
    return {
      outcomes,
      eventLoopDelayP99Ms: Math.round(lag.percentile(99) / 1e6),
      eventLoopDelayMaxMs: Math.round(lag.max / 1e6),
    };
  },
  upstreamCallCount: async () => upstream.requests.length,
  upstreamCalls: async (from) => upstream.requests.slice(from).map(callOf),
  upstreamQuiet,
  upstreamConnections: async () => upstream.openConnections(),
  close: () => upstream.close(),
};

port.on('message', (request: DriverRequest) => {
  const method = driver[request.method] as (...args: unknown[]) => Promise<unknown>;
  method(...request.args).then(
    (value) => send({ type: 'result', id: request.id, value }),
    (error: unknown) =>
      send({
        type: 'failed',
        id: request.id,
        error: error instanceof Error ? (error.stack ?? error.message) : String(error),
      }),
  );
});
send({ type: 'ready', upstreamUrl: upstream.baseUrl, threadId: linuxThreadId() });
