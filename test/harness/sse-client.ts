import type { Frame } from '../../src/chat/turns/frames.js';
import type { Fetch } from '../../src/provider/http-transport.js';
import { type FrameContract, frameContract } from './frame-contract.js';

export interface ReceivedFrame {
  readonly id: number;
  readonly data: Frame;
  readonly at: number;
}

export interface TurnResponse {
  readonly status: number;
  readonly contentType: string;
  readonly frames: ReceivedFrame[];
  readonly comments: string[];
  /** The JSON body of a pre-stream error. */
  readonly json: Record<string, unknown> | null;
  readonly raw: string;
}

export interface TurnOptions {
  /** Called for every frame; call `disconnect()` to drop the connection like a client that left. */
  readonly onFrame?: (frame: ReceivedFrame, disconnect: () => void) => void;
  readonly headers?: Record<string, string>;
  /** The HTTP client; Node's fetch (a browser's) unless told otherwise. */
  readonly fetch?: Fetch;
}

function parseBlock(block: string, frames: ReceivedFrame[], comments: string[]): void {
  let id: number | null = null;
  let data = '';
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) comments.push(line.slice(1).trim());
    else if (line.startsWith('id: ')) id = Number(line.slice(4));
    else if (line.startsWith('data: ')) data += line.slice(6);
    else if (line !== '') throw new Error(`unexpected SSE line: ${line}`);
  }
  if (data !== '') {
    if (id === null) throw new Error(`frame without id: ${block}`);
    frames.push({ id, data: JSON.parse(data) as Frame, at: performance.now() });
  }
}

/** The frames of a whole SSE body read as text; throws on a line that is not a frame or comment. */
export function parseFrames(raw: string): ReceivedFrame[] {
  const frames: ReceivedFrame[] = [];
  for (const block of raw.split('\n\n')) parseBlock(block, frames, []);
  return frames;
}

const contracts = new Map<string, Promise<FrameContract>>();

/** The frame schemas the server publishes at /docs/openapi.json (fetched once per server). */
function publishedContract(baseUrl: string): Promise<FrameContract> {
  let contract = contracts.get(baseUrl);
  if (!contract) {
    contract = fetch(`${baseUrl}/docs/openapi.json`)
      .then((response) => response.json() as Promise<object>)
      .then((document: object) => frameContract(document));
    contracts.set(baseUrl, contract);
  }
  return contract;
}

/**
 * POSTs a turn and reads the stream frame by frame, as a browser's fetch reader would. Every frame
 * received is checked against the frame schemas of the server's own OpenAPI document.
 */
export function postTurn(
  baseUrl: string,
  sessionId: string,
  token: string,
  body: unknown,
  options: TurnOptions = {},
): Promise<TurnResponse> {
  return readTurn(baseUrl, `/v1/sessions/${sessionId}/turns`, options, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      ...options.headers,
    },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

/** `GET …/turns/:client_msg_id/events` (a resume), read and checked like {@link postTurn}. */
export function getTurnEvents(
  baseUrl: string,
  sessionId: string,
  clientMsgId: string,
  token: string,
  options: TurnOptions & { after?: number } = {},
): Promise<TurnResponse> {
  const query = options.after === undefined ? '' : `?after=${options.after}`;
  return readTurn(
    baseUrl,
    `/v1/sessions/${sessionId}/turns/${clientMsgId}/events${query}`,
    options,
    {
      headers: { authorization: `Bearer ${token}`, ...options.headers },
    },
  );
}

async function readTurn(
  baseUrl: string,
  path: string,
  options: TurnOptions,
  init: RequestInit,
): Promise<TurnResponse> {
  const controller = new AbortController();
  const send = options.fetch ?? fetch;
  const response = await send(`${baseUrl}${path}`, { ...init, signal: controller.signal });
  const contentType = response.headers.get('content-type') ?? '';
  if (!contentType.startsWith('text/event-stream')) {
    const raw = await response.text();
    return {
      status: response.status,
      contentType,
      frames: [],
      comments: [],
      json: JSON.parse(raw),
      raw,
    };
  }
  const frames: ReceivedFrame[] = [];
  const comments: string[] = [];
  let raw = '';
  let buffer = '';
  let disconnected = false;
  const disconnect = (): void => {
    disconnected = true;
    controller.abort();
  };
  const decoder = new TextDecoder();
  const reader = response.body!.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      const text = decoder.decode(value, { stream: true });
      raw += text;
      buffer += text;
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const before = frames.length;
        parseBlock(block, frames, comments);
        if (frames.length > before) options.onFrame?.(frames[frames.length - 1], disconnect);
        if (disconnected) break;
      }
      if (disconnected) break;
    }
  } catch (error) {
    if (!disconnected) throw error;
  }
  // Every frame any suite receives must match the published OpenAPI document.
  (await publishedContract(baseUrl)).assert(frames.map((frame) => frame.data));
  return { status: response.status, contentType, frames, comments, json: null, raw };
}

export const types = (response: TurnResponse): string[] =>
  response.frames.map((frame) => frame.data.type);

/** Frame types with runs of deltas folded, so orders read like the contract. */
export const shape = (response: TurnResponse): string[] =>
  types(response).filter((type, index, list) => type !== 'delta' || list[index - 1] !== 'delta');

/** The reply text the deltas among `frames` carry. */
export const replyText = (frames: readonly ReceivedFrame[]): string =>
  frames.map((frame) => (frame.data.type === 'delta' ? frame.data.content : '')).join('');

/** Frame ids count up by one from `first` (1 for a whole stream, the cursor + 1 for a resume). */
export function expectIdsFrom(response: TurnResponse, first = 1): void {
  expect(response.frames.map((frame) => frame.id)).toEqual(
    response.frames.map((_, index) => index + first),
  );
}

/** Polls until `check` holds (for effects that land after the stream, like a cancelled row). */
export async function eventually<T>(
  check: () => Promise<T | null | undefined | false>,
  ms = 3000,
): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > until) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export type FrameOf<T extends Frame['type']> = Extract<Frame, { type: T }>;

/** Every frame of one type, in stream order. */
export function framesOf<T extends Frame['type']>(response: TurnResponse, type: T): FrameOf<T>[] {
  return response.frames
    .filter((item) => item.data.type === type)
    .map((item) => item.data as FrameOf<T>);
}

/** The first frame of a type; throws (naming what came instead) when there is none. */
export function frameOf<T extends Frame['type']>(response: TurnResponse, type: T): FrameOf<T> {
  const [found] = framesOf(response, type);
  if (!found) throw new Error(`no ${type} frame in ${types(response).join(',')}`);
  return found;
}
