import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { ActionType } from '../../src/contract/vocabulary.js';
import type { ChatScript, RequestType } from './fake-upstream.js';
import type { TurnResponse } from './sse-client.js';

/**
 * The fault load's plan: which turns run, how each client behaves, and what the fake upstream
 * answers each request of a turn. Pure and seeded, so the test (main thread) and the load driver
 * (a worker thread, see load-driver.ts) agree on it and a failing run repeats with the same seed.
 */

export const CHAT_MODELS = ['chat-a', 'chat-b', 'chat-c'];
export const IMAGE_MODELS = ['img-a', 'img-b'];
export const COMPOSER = 'composer';

export type Action = ActionType;
/** `text`/`image`: leave while that stage is surely still running upstream; `random`: any frame. */
export type Leave = 'none' | 'text' | 'image' | 'random';

export interface Plan {
  /** The run's seed: with the tag, it picks every upstream answer of the turn. */
  readonly seed: number;
  readonly tag: string;
  readonly action: Action;
  readonly leave: Leave;
  /** For `random`: leave after this frame id (if the turn gets that far). */
  readonly leaveAfter: number;
  readonly body: Record<string, unknown>;
}

/** Epoch ms on a clock both threads share (`performance.now()` has an origin per thread). */
export function epochNow(): number {
  return performance.timeOrigin + performance.now();
}

/** What one client saw of one turn; times are {@link epochNow} ms, frames' `at` included. */
export interface Outcome {
  readonly plan: Plan;
  /** The client's session and token (a key is unique within its session). */
  readonly sessionId: string;
  readonly token: string;
  readonly response: TurnResponse | null;
  /** Why the request failed (null when it got a response). */
  readonly thrown: string | null;
  readonly started: number;
  readonly leftAt: number | null;
  readonly ms: number;
}

/** One request the fake upstream received; times are {@link epochNow} ms. */
export interface UpstreamCall {
  readonly model: string;
  readonly type: RequestType;
  /** The turn it belongs to (see {@link tagOf}). */
  readonly tag: string | null;
  /** Its scripted answer; null when no planned turn claimed it (the fake's default answered). */
  readonly step: ChatScript | null;
  readonly receivedAt: number;
  readonly closedAt: number | null;
  readonly clientAborted: boolean;
}

/** mulberry32: small, fast, good enough to pick faults. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function seedOf(text: string): number {
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

export function planOf(
  seed: number,
  index: number,
  action: Action,
  leave: Leave,
  leaveAfter: number,
): Plan {
  const tag = `t${String(index).padStart(5, '0')}`;
  const content = `[${tag}] ${action === 'reply_text' ? 'tell me something' : 'draw a lighthouse'}`;
  const image =
    action === 'reply_text'
      ? {}
      : { image: { force: true, mode: action === 'reply_image' ? 'image_only' : 'text_image' } };
  return {
    seed,
    tag,
    action,
    leave,
    leaveAfter,
    body: { content, client_msg_id: `load-${seed}-${tag}`, ...image },
  };
}

/** Turn `index` of a run: its action and whether (and when) its client leaves. */
export function makePlan(seed: number, index: number): Plan {
  const next = random(seedOf(`${seed}:plan:${index}`));
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
  return planOf(seed, index, action, leave, between(next, 1, 8));
}

export const keyOf = (plan: Plan): string => String(plan.body['client_msg_id']);

const TAG = /\[(t\d{5})\]/g;

/** The tag of the turn an upstream request belongs to: the last one in its last user message. */
export function tagOf(body: Record<string, unknown>): string | null {
  const list = body['messages'];
  if (!Array.isArray(list)) return null;
  const users = list.filter(
    (message): message is { role: string; content: unknown } =>
      typeof message === 'object' && message !== null && message.role === 'user',
  );
  const content = users.at(-1)?.content;
  const text = Array.isArray(content) ? JSON.stringify(content) : String(content ?? '');
  return [...text.matchAll(TAG)].at(-1)?.[1] ?? null;
}

export function isSuccess(step: ChatScript): boolean {
  return step.kind === 'stream' || step.kind === 'complete' || step.kind === 'image';
}

/** Steps that never finish on their own: only the app's abort (or a timeout) closes them. */
export function isHeld(step: ChatScript | null): boolean {
  return step?.kind === 'stall' || (step?.kind === 'image' && (step.delayMs ?? 0) >= 60_000);
}

/** The scripted answer for the `nth` request of a planned turn to `request.model`. */
export function stepFor(
  plan: Plan,
  request: { readonly model: string; readonly type: RequestType },
  nth: number,
): ChatScript {
  const next = random(seedOf(`${plan.seed}:${plan.tag}:${request.model}:${nth}`));
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
