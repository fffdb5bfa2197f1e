import { randomBytes } from 'node:crypto';
import { createServer, STATUS_CODES, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { encodePng } from '../../src/provider/demo/png.js';

/** One scripted answer. Steps that do not match the request's type still apply (see `respond`). */
export type ChatScript =
  | {
      kind: 'stream';
      chunks?: string[];
      delayMs?: number;
      usage?: boolean;
      processingComments?: boolean;
    }
  | { kind: 'status'; status: number; code?: string; message?: string }
  /** Sends that many chunks, then destroys the socket. */
  | { kind: 'cut'; chunks?: string[]; afterChunks: number }
  /** Destroys the socket before any response byte, like a keep-alive socket the server dropped. */
  | { kind: 'reset' }
  | {
      kind: 'error-chunk';
      chunks?: string[];
      afterChunks: number;
      code?: string | number;
      message?: string;
    }
  /** 200 + headers (+ optional chunks), then never another byte. */
  | { kind: 'stall'; chunks?: string[]; afterChunks?: number }
  /** Non-stream completion (prompt composer). */
  | { kind: 'complete'; content: string }
  | {
      kind: 'image';
      mime?: 'image/png' | 'image/jpeg';
      width?: number;
      height?: number;
      delayMs?: number;
    }
  | { kind: 'zero-images' }
  /** 200 with an images[] entry whose data URL is not a decodable image. */
  | { kind: 'garbage' };

export type RequestType = 'chat-stream' | 'completion' | 'image';

export interface RecordedRequest {
  /** 0-based, in arrival order; restarts at 0 after `reset()`. */
  readonly index: number;
  readonly model: string;
  /** stream:true → chat-stream; modalities includes 'image' → image; else completion. */
  readonly type: RequestType;
  readonly body: Record<string, unknown>;
  /** performance.now() when the body had been read. */
  readonly receivedAt: number;
  /** performance.now() when its response closed (finished, cut, or the client went away). */
  closedAt: number | null;
  readonly closed: Promise<number>;
  /** The `id` the answer carries (`gen-…`, or `gen-img-…` for image requests). */
  readonly generationId: string;
  /** The Authorization header as sent, or null. */
  readonly authorization: string | null;
  /** True when the client closed the connection before the answer was complete. */
  clientAborted: boolean;
}

export interface FakeUpstream {
  /** e.g. http://127.0.0.1:PORT/api/v1 (use as LLM_BASE_URL). */
  readonly baseUrl: string;
  readonly requests: RecordedRequest[];
  /** Replaces the model's queue; each request pops the next step, the last step repeats. */
  script(model: string, ...steps: ChatScript[]): void;
  /** Called synchronously when a request's body has been read, before it is answered. */
  onRequest(listener: (req: RecordedRequest) => void): () => void;
  /** Sockets currently open. */
  openConnections(): number;
  /** Clears scripts and recorded requests (listeners stay). */
  reset(): void;
  close(): Promise<void>;
}

export const FAKE_DEFAULT_CHUNKS: readonly string[] = [
  'Hello',
  ' from',
  ' the',
  ' fake',
  ' upstream.',
];
export const FAKE_DEFAULT_COMPLETION = 'A detailed picture of the subject';
/** Every answer reports this many prompt tokens; completion tokens = number of content chunks. */
export const FAKE_PROMPT_TOKENS = 12;

const API_PREFIX = '/api/v1';

/** A real, decodable RGB PNG with a simple diagonal gradient. */
export function makePng(width: number, height: number): Buffer {
  const pixels = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const offset = (y * width + x) * 3;
      pixels[offset] = Math.round((255 * x) / Math.max(1, width - 1));
      pixels[offset + 1] = Math.round((255 * y) / Math.max(1, height - 1));
      pixels[offset + 2] = 160;
    }
  }
  return encodePng({ width, height, channels: 3, pixels });
}

function segment(marker: number, payload: readonly number[]): number[] {
  const length = payload.length + 2;
  return [0xff, marker, length >> 8, length & 0xff, ...payload];
}

/**
 * A real, decodable baseline JPEG (uniform grey): one-code Huffman tables make every 8×8 block
 * "DC diff 0, end of block", i.e. two zero bits.
 */
export function makeJpeg(width: number, height: number): Buffer {
  const oneCodeTable = (tableClass: number): number[] =>
    segment(0xc4, [tableClass << 4, 1, ...new Array<number>(15).fill(0), 0x00]);
  const blocks = Math.ceil(width / 8) * Math.ceil(height / 8);
  const bits = blocks * 2;
  const scan = new Array<number>(Math.ceil(bits / 8)).fill(0);
  // Pad the last byte with 1-bits, as the format requires.
  if (bits % 8 !== 0) scan[scan.length - 1] = (1 << (8 - (bits % 8))) - 1;
  return Buffer.from([
    0xff,
    0xd8,
    ...segment(
      0xe0,
      [0x4a, 0x46, 0x49, 0x46, 0x00, 0x01, 0x01, 0x00, 0x00, 0x01, 0x00, 0x01, 0, 0],
    ),
    ...segment(0xdb, [0x00, ...new Array<number>(64).fill(1)]),
    ...segment(0xc0, [8, height >> 8, height & 0xff, width >> 8, width & 0xff, 1, 1, 0x11, 0]),
    ...oneCodeTable(0),
    ...oneCodeTable(1),
    ...segment(0xda, [1, 1, 0x00, 0, 63, 0]),
    ...scan,
    0xff,
    0xd9,
  ]);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requestType(body: Record<string, unknown>): RequestType {
  if (body['stream'] === true) return 'chat-stream';
  const modalities = body['modalities'];
  return Array.isArray(modalities) && modalities.includes('image') ? 'image' : 'completion';
}

function defaultStep(type: RequestType): ChatScript {
  if (type === 'chat-stream') return { kind: 'stream' };
  if (type === 'image') return { kind: 'image' };
  return { kind: 'complete', content: FAKE_DEFAULT_COMPLETION };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function errorBody(step: Extract<ChatScript, { kind: 'error-chunk' }>): unknown {
  return {
    error: {
      code: step.code ?? 'server_error',
      message: step.message ?? 'Provider returned error',
    },
  };
}

function usage(completionTokens: number): Record<string, number> {
  return {
    prompt_tokens: FAKE_PROMPT_TOKENS,
    completion_tokens: completionTokens,
    total_tokens: FAKE_PROMPT_TOKENS + completionTokens,
  };
}

/** Answers one recorded request according to its step; stops writing once the response closed. */
class Answer {
  private readonly created = Math.floor(Date.now() / 1000);
  /** Set when the script itself cuts the connection, so it is not counted as a client abort. */
  cutByScript = false;

  constructor(
    private readonly record: RecordedRequest,
    private readonly res: ServerResponse,
  ) {}

  private get open(): boolean {
    return this.record.closedAt === null;
  }

  /** Resolves true after `ms`, or false as soon as the response closes (its timer cleared). */
  private wait(ms: number): Promise<boolean> {
    if (!this.open) return Promise.resolve(false);
    if (ms <= 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const onClose = (): void => {
        clearTimeout(timer);
        resolve(false);
      };
      const timer = setTimeout(() => {
        this.res.off('close', onClose);
        resolve(true);
      }, ms);
      this.res.once('close', onClose);
    });
  }

  private write(text: string): void {
    if (this.open) this.res.write(text);
  }

  private cut(): void {
    this.cutByScript = true;
    // Destroy once the bytes already queued are handed to the kernel, so they do arrive.
    this.res.write('', () => this.res.socket?.destroy());
  }

  private startSse(): void {
    this.res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
    this.res.flushHeaders();
  }

  private data(payload: unknown): void {
    this.write(`data: ${JSON.stringify(payload)}\n\n`);
  }

  private chunk(delta: Record<string, unknown>, finishReason: string | null): unknown {
    return {
      id: this.record.generationId,
      object: 'chat.completion.chunk',
      created: this.created,
      model: this.record.model,
      provider: 'FakeProvider',
      choices: [{ index: 0, delta, finish_reason: finishReason }],
    };
  }

  private contentChunk(content: string): unknown {
    return this.chunk({ role: 'assistant', content }, null);
  }

  /** Opens the SSE response and sends the first `count` content chunks at once. */
  private startSseWith(chunks: readonly string[], count: number): void {
    this.startSse();
    for (const content of chunks.slice(0, count)) this.data(this.contentChunk(content));
  }

  private completion(message: Record<string, unknown>, completionTokens: number): unknown {
    return {
      id: this.record.generationId,
      object: 'chat.completion',
      created: this.created,
      model: this.record.model,
      provider: 'FakeProvider',
      choices: [{ index: 0, message: { role: 'assistant', ...message }, finish_reason: 'stop' }],
      usage: usage(completionTokens),
    };
  }

  private async stream(
    chunks: readonly string[],
    delayMs: number,
    withUsage: boolean,
    processingComments: boolean,
  ): Promise<void> {
    this.startSse();
    if (processingComments) this.write(': OPENROUTER PROCESSING\n\n');
    for (const content of chunks) {
      if (!(await this.wait(delayMs))) return;
      this.data(this.contentChunk(content));
    }
    this.data(this.chunk({ role: 'assistant', content: '' }, 'stop'));
    if (withUsage) {
      this.data({
        id: this.record.generationId,
        object: 'chat.completion.chunk',
        created: this.created,
        model: this.record.model,
        provider: 'FakeProvider',
        choices: [],
        usage: usage(chunks.length),
      });
    }
    this.write('data: [DONE]\n\n');
    if (this.open) this.res.end();
  }

  private imageBody(url: string): unknown {
    return this.completion({ content: '', images: [{ type: 'image_url', image_url: { url } }] }, 1);
  }

  /** The 2xx JSON body a non-stream request gets for steps that answer successfully. */
  private jsonSuccess(step: ChatScript): unknown {
    switch (step.kind) {
      case 'image': {
        const width = step.width ?? 64;
        const height = step.height ?? 64;
        const mime = step.mime ?? 'image/png';
        const bytes = mime === 'image/jpeg' ? makeJpeg(width, height) : makePng(width, height);
        return this.imageBody(`data:${mime};base64,${bytes.toString('base64')}`);
      }
      case 'garbage':
        return this.imageBody(
          `data:image/png;base64,${Buffer.from('this is not an image at all').toString('base64')}`,
        );
      case 'zero-images':
        return this.completion({ content: 'I cannot draw that, sorry.' }, 6);
      case 'complete':
        return this.completion({ content: step.content }, 1);
      default: {
        const chunks = 'chunks' in step && step.chunks ? step.chunks : FAKE_DEFAULT_CHUNKS;
        return this.completion({ content: chunks.join('') }, chunks.length);
      }
    }
  }

  /**
   * Streaming requests get SSE for every step except status and the image kinds (which answer their
   * JSON body as-is); non-stream requests get JSON, with 'cut' sending half a body, 'error-chunk'
   * a 200 `{"error":…}` body (OpenRouter's late-failure shape) and 'stall' headers only.
   */
  async respond(step: ChatScript): Promise<void> {
    const streaming = this.record.type === 'chat-stream';
    if (step.kind === 'reset') {
      this.res.socket?.destroy();
      return;
    }
    if (step.kind === 'status') {
      const error: Record<string, unknown> = {
        message: step.message ?? STATUS_CODES[step.status] ?? 'Upstream error',
      };
      if (step.code !== undefined) error['code'] = step.code;
      sendJson(this.res, step.status, { error });
      return;
    }
    if (step.kind === 'image' && !(await this.wait(step.delayMs ?? 0))) return;
    if (
      !streaming ||
      step.kind === 'image' ||
      step.kind === 'zero-images' ||
      step.kind === 'garbage'
    ) {
      await this.respondJson(step);
      return;
    }
    switch (step.kind) {
      case 'stream':
        return this.stream(
          step.chunks ?? FAKE_DEFAULT_CHUNKS,
          step.delayMs ?? 0,
          step.usage ?? true,
          step.processingComments ?? true,
        );
      case 'complete':
        return this.stream([step.content], 0, true, true);
      case 'cut':
        this.startSseWith(step.chunks ?? FAKE_DEFAULT_CHUNKS, step.afterChunks);
        this.cut();
        return;
      case 'error-chunk':
        this.startSseWith(step.chunks ?? FAKE_DEFAULT_CHUNKS, step.afterChunks);
        this.data(errorBody(step));
        if (this.open) this.res.end();
        return;
      case 'stall': {
        // Without an explicit afterChunks, a stall sends its own chunks (none by default).
        const chunks = step.chunks ?? (step.afterChunks === undefined ? [] : FAKE_DEFAULT_CHUNKS);
        this.startSseWith(chunks, step.afterChunks ?? chunks.length);
        return;
      }
    }
  }

  private async respondJson(
    step: Exclude<ChatScript, { kind: 'status' | 'reset' }>,
  ): Promise<void> {
    if (step.kind === 'stall') {
      this.res.writeHead(200, { 'content-type': 'application/json' });
      this.res.flushHeaders();
      return;
    }
    if (step.kind === 'error-chunk') {
      sendJson(this.res, 200, errorBody(step));
      return;
    }
    const text = JSON.stringify(this.jsonSuccess(step));
    if (step.kind === 'cut') {
      this.res.writeHead(200, {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(text),
      });
      this.write(text.slice(0, Math.floor(text.length / 2)));
      this.cut();
      return;
    }
    this.res.writeHead(200, {
      'content-type': 'application/json',
      'content-length': Buffer.byteLength(text),
    });
    this.res.end(text);
  }
}

/** A real HTTP server on 127.0.0.1 (random port) speaking OpenRouter's chat-completions format. */
export async function startFakeUpstream(): Promise<FakeUpstream> {
  const scripts = new Map<string, ChatScript[]>();
  const requests: RecordedRequest[] = [];
  const listeners = new Set<(req: RecordedRequest) => void>();
  const sockets = new Set<Socket>();
  let nextIndex = 0;

  const nextStep = (model: string, type: RequestType): ChatScript => {
    const queue = scripts.get(model);
    if (!queue || queue.length === 0) return defaultStep(type);
    return (queue.length > 1 ? queue.shift() : queue[0]) ?? defaultStep(type);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = new URL(req.url ?? '/', 'http://fake').pathname;
    if (req.method !== 'POST' || path !== `${API_PREFIX}/chat/completions`) {
      req.resume();
      sendJson(res, 404, {
        error: { code: 'not_found', message: `No route for ${req.method} ${path}` },
      });
      return;
    }
    const parts: Buffer[] = [];
    for await (const part of req) parts.push(Buffer.isBuffer(part) ? part : Buffer.from(part));
    let body: unknown;
    try {
      body = JSON.parse(Buffer.concat(parts).toString('utf8'));
    } catch {
      body = null;
    }
    if (!isRecord(body)) {
      sendJson(res, 400, {
        error: { code: 'invalid_json', message: 'Body must be a JSON object' },
      });
      return;
    }

    const index = nextIndex++;
    const type = requestType(body);
    const model = typeof body['model'] === 'string' ? body['model'] : '';
    let resolveClosed: (at: number) => void = () => undefined;
    const record: RecordedRequest = {
      index,
      model,
      type,
      body,
      receivedAt: performance.now(),
      closedAt: null,
      closed: new Promise<number>((resolve) => {
        resolveClosed = resolve;
      }),
      generationId: `${type === 'image' ? 'gen-img' : 'gen'}-${index}-${randomBytes(6).toString('hex')}`,
      authorization: req.headers.authorization ?? null,
      clientAborted: false,
    };
    const answer = new Answer(record, res);
    res.once('close', () => {
      record.closedAt = performance.now();
      record.clientAborted = !res.writableFinished && !answer.cutByScript;
      resolveClosed(record.closedAt);
    });
    requests.push(record);
    for (const listener of [...listeners]) listener(record);
    await answer.respond(nextStep(model, type));
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      sendJson(res, 500, { error: { code: 'fake_upstream_bug', message: String(error) } });
    });
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;

  return {
    baseUrl: `http://127.0.0.1:${port}${API_PREFIX}`,
    requests,
    script(model, ...steps) {
      scripts.set(model, [...steps]);
    },
    onRequest(listener) {
      listeners.add(listener);
      return () => {
        listeners.delete(listener);
      };
    },
    openConnections: () => sockets.size,
    reset() {
      scripts.clear();
      requests.length = 0;
      nextIndex = 0;
    },
    async close() {
      const socketsClosed = [...sockets].map(
        (socket) => new Promise<void>((resolve) => socket.once('close', () => resolve())),
      );
      server.closeAllConnections();
      // Also sockets the HTTP layer no longer tracks (e.g. ones whose request is still unread).
      for (const socket of sockets) socket.destroy();
      await Promise.all([
        ...socketsClosed,
        new Promise<void>((resolve, reject) => {
          server.close((error) => (error ? reject(error) : resolve()));
        }),
      ]);
    },
  };
}
