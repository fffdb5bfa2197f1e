/** The load client: POSTs a turn, reads its SSE frames, and times every stamped delta. */
import { type Agent, request } from 'node:http';
import { nowUs } from './ipc.js';

export type SystemName = 'floor' | 'peer' | 'easel';

type FrameKind = 'delta' | 'done' | 'image_pending' | 'image' | 'end' | 'error' | 'other';

interface Classified {
  readonly kind: FrameKind;
  readonly text: string;
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null
    ? (value as Record<string, unknown>)[key]
    : undefined;
}

function text(value: unknown): string {
  return typeof value === 'string' ? value : '';
}

/** Each system names its frames its own way; these map them onto the few kinds we time. */
const CLASSIFY: Record<SystemName, (frame: unknown) => Classified> = {
  floor: (frame) => {
    const type = field(frame, 'type');
    if (type === 'delta') return { kind: 'delta', text: text(field(frame, 'content')) };
    return { kind: type === 'done' ? 'done' : 'other', text: '' };
  },
  // AI SDK UI message stream: start, start-step, text-start, text-delta…, text-end, finish-step,
  // finish, then `[DONE]`.
  peer: (frame) => {
    const type = field(frame, 'type');
    if (type === 'text-delta') return { kind: 'delta', text: text(field(frame, 'delta')) };
    if (type === 'error') return { kind: 'error', text: text(field(frame, 'errorText')) };
    return { kind: type === 'finish' ? 'done' : 'other', text: '' };
  },
  easel: (frame) => {
    const type = field(frame, 'type');
    switch (type) {
      case 'delta':
        return { kind: 'delta', text: text(field(frame, 'content')) };
      case 'done':
      case 'image_pending':
        return { kind: type, text: '' };
      case 'image':
        return { kind: 'image', text: text(field(frame, 'url')) };
      case 'final':
        return { kind: 'end', text: '' };
      case 'error':
        return { kind: 'error', text: text(field(frame, 'message')) };
      default:
        return { kind: 'other', text: '' };
    }
  },
};

export interface StreamSpec {
  readonly port: number;
  readonly path: string;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface StreamOutcome {
  /** 200, every stamped chunk arrived, no error frame. */
  readonly ok: boolean;
  readonly stamps: number;
  readonly error: string | null;
  /** Client receipt (µs) of `done` and of `image_pending`, for the image-turn gap. */
  readonly doneAt: number | null;
  readonly pendingAt: number | null;
  /** When the request was sent and when its `image` frame arrived (µs): time to image. */
  readonly startedAt: number;
  readonly imageAt: number | null;
  /** The signed URL of the `image` frame (Easel image turns). */
  readonly imageUrl: string | null;
}

/** What a batch of streams saw, shared by all its streams. */
export class Recorder {
  /** Added latency per stamped chunk: client receipt − upstream send, µs. */
  readonly latenciesUs: number[] = [];
  /**
   * Added time to first token, per stream: receipt of the first `delta` − the upstream's send
   * of the first chunk it carries (µs). What the relay adds before a reader sees any text.
   */
  readonly firstTokenUs: number[] = [];
  deltaFrames = 0;
  frames = 0;
  constructor(private readonly onStamp: (count: number) => void = () => undefined) {}

  stamp(receivedAt: number, stamps: readonly number[]): void {
    for (const sentAt of stamps) this.latenciesUs.push(receivedAt - sentAt);
    this.onStamp(stamps.length);
  }
}

const STAMP = /\[t(\d+)\]/g;

function stampsIn(content: string): number[] {
  const stamps: number[] = [];
  for (const match of content.matchAll(STAMP)) stamps.push(Number(match[1]));
  return stamps;
}

function dataOf(block: string): string | null {
  let data: string | null = null;
  for (const line of block.split('\n')) {
    if (line.startsWith('data:')) {
      const value = line.slice(line[5] === ' ' ? 6 : 5);
      data = data === null ? value : `${data}\n${value}`;
    }
  }
  return data;
}

/** Runs one stream to its end; never rejects (failures come back as `ok: false`). */
export function runStream(
  agent: Agent,
  system: SystemName,
  spec: StreamSpec,
  expectedStamps: number,
  recorder: Recorder,
): Promise<StreamOutcome> {
  const classify = CLASSIFY[system];
  return new Promise((resolve) => {
    let stamps = 0;
    let error: string | null = null;
    let doneAt: number | null = null;
    let pendingAt: number | null = null;
    let imageUrl: string | null = null;
    let imageAt: number | null = null;
    const startedAt = nowUs();
    let settled = false;
    const finish = (failure: string | null): void => {
      if (settled) return;
      settled = true;
      error ??= failure;
      if (error === null && stamps !== expectedStamps) {
        error = `got ${stamps} of ${expectedStamps} stamped chunks`;
      }
      resolve({
        ok: error === null,
        stamps,
        error,
        doneAt,
        pendingAt,
        startedAt,
        imageAt,
        imageUrl,
      });
    };
    const req = request(
      {
        host: '127.0.0.1',
        port: spec.port,
        path: spec.path,
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(spec.body),
          ...spec.headers,
        },
      },
      (res) => {
        res.setEncoding('utf8');
        if (res.statusCode !== 200) {
          let body = '';
          res.on('data', (part: string) => (body += part));
          res.on('end', () => finish(`HTTP ${res.statusCode}: ${body.slice(0, 200)}`));
          return;
        }
        let buffer = '';
        res.on('data', (part: string) => {
          const receivedAt = nowUs();
          buffer += part;
          let end = buffer.indexOf('\n\n');
          while (end !== -1) {
            const data = dataOf(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
            end = buffer.indexOf('\n\n');
            if (data === null || data === '[DONE]') continue;
            recorder.frames += 1;
            const frame = classify(JSON.parse(data) as unknown);
            if (frame.kind === 'delta') {
              recorder.deltaFrames += 1;
              const found = stampsIn(frame.text);
              if (stamps === 0 && found.length > 0) {
                recorder.firstTokenUs.push(receivedAt - found[0]);
              }
              stamps += found.length;
              recorder.stamp(receivedAt, found);
            } else if (frame.kind === 'done') doneAt ??= receivedAt;
            else if (frame.kind === 'image_pending') pendingAt ??= receivedAt;
            else if (frame.kind === 'image') {
              imageUrl ??= frame.text;
              imageAt ??= receivedAt;
            } else if (frame.kind === 'error') error ??= `error frame: ${frame.text}`;
          }
        });
        res.on('end', () => finish(null));
        res.on('error', (cause: Error) => finish(cause.message));
      },
    );
    req.on('error', (cause: Error) => finish(cause.message));
    req.end(spec.body);
  });
}
