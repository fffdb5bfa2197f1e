import { randomBytes } from 'node:crypto';
import {
  createServer,
  STATUS_CODES,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type ServerResponse,
} from 'node:http';
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
      /** false: no `data: [DONE]` line (default true). */
      done?: boolean;
      /** false: no chunk carries a finish_reason (default true). */
      finishReason?: boolean;
    }
  /** 200 + SSE headers, then only `: OPENROUTER PROCESSING` comments every `commentEveryMs`, never a token. */
  | { kind: 'hang'; commentEveryMs?: number }
  /** Streams `content` chunks as fast as the client reads, until it goes away. */
  | { kind: 'endless'; content?: string }
  /** 200 with an HTML page (any route, streamed or not). */
  | { kind: 'html-200' }
  /**
   * Images API answer: streamed requests get `partials` partial_image events (default: the
   * request's partial_images), `delayMs` apart, then the completed event unless `completed` is
   * false; `splitBytes` writes the SSE bytes in pieces that small. Non-streamed: `{ data: [{ b64_json }] }`.
   */
  | {
      kind: 'images';
      partials?: number;
      mime?: 'image/png' | 'image/jpeg';
      width?: number;
      height?: number;
      delayMs?: number;
      splitBytes?: number;
      completed?: boolean;
      /** Partials (by partial_image_index) sent as something else: not an image, or 8 KiB too big. */
      badPartials?: Readonly<Record<number, 'garbage' | 'huge'>>;
    }
  /** Images API stream: `afterPartials` partial events (default 1), then an `event: error`. */
  | { kind: 'partial-then-error'; afterPartials?: number; code?: string; message?: string }
  /** 200 JSON that is not the API's shape. */
  | { kind: 'wrong-shape' }
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

export type RequestType = 'chat-stream' | 'completion' | 'image' | 'images-api';

export interface RecordedRequest {
  /** 0-based, in arrival order; restarts at 0 after `reset()`. */
  readonly index: number;
  readonly model: string;
  /**
   * `POST /images/generations` → images-api; else stream:true → chat-stream; modalities
   * includes 'image' → image; else completion.
   */
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
  readonly headers: IncomingHttpHeaders;
  /** performance.now() when the TCP socket that carried it closed (null while open). */
  socketClosedAt: number | null;
  readonly socketClosed: Promise<number>;
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
const CHAT_PATH = `${API_PREFIX}/chat/completions`;
const IMAGES_PATH = `${API_PREFIX}/images/generations`;

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

/** Callbacks per socket for its close: one listener a socket, however many requests reuse it. */
const socketCloseCallbacks = new WeakMap<Socket, (() => void)[]>();

function onSocketClose(socket: Socket, callback: () => void): void {
  if (socket.destroyed) return callback();
  let callbacks = socketCloseCallbacks.get(socket);
  if (!callbacks) {
    const list: (() => void)[] = [];
    socketCloseCallbacks.set(socket, list);
    socket.once('close', () => list.forEach((run) => run()));
    callbacks = list;
  }
  callbacks.push(callback);
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function requestType(path: string, body: Record<string, unknown>): RequestType {
  if (path === IMAGES_PATH) return 'images-api';
  if (body['stream'] === true) return 'chat-stream';
  const modalities = body['modalities'];
  return Array.isArray(modalities) && modalities.includes('image') ? 'image' : 'completion';
}

function defaultStep(type: RequestType): ChatScript {
  if (type === 'chat-stream') return { kind: 'stream' };
  if (type === 'image') return { kind: 'image' };
  if (type === 'images-api') return { kind: 'images' };
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
    options: {
      withUsage: boolean;
      processingComments: boolean;
      done: boolean;
      finishReason: boolean;
    },
  ): Promise<void> {
    this.startSse();
    if (options.processingComments) this.write(': OPENROUTER PROCESSING\n\n');
    for (const content of chunks) {
      if (!(await this.wait(delayMs))) return;
      this.data(this.contentChunk(content));
    }
    if (options.finishReason) this.data(this.chunk({ role: 'assistant', content: '' }, 'stop'));
    if (options.withUsage) {
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
    if (options.done) this.write('data: [DONE]\n\n');
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

  private html(): void {
    const page = '<!doctype html><html><body><h1>Bad gateway</h1></body></html>';
    this.res.writeHead(200, {
      'content-type': 'text/html; charset=utf-8',
      'content-length': Buffer.byteLength(page),
    });
    this.res.end(page);
  }

  private async hang(commentEveryMs: number): Promise<void> {
    this.startSse();
    while (await this.wait(commentEveryMs)) this.write(': OPENROUTER PROCESSING\n\n');
  }

  /** Writes as fast as the client reads (honouring back-pressure) until the response closes. */
  private async endless(content: string): Promise<void> {
    this.startSse();
    const payload = `data: ${JSON.stringify(this.contentChunk(content))}\n\n`;
    while (this.open) {
      if (!this.res.write(payload)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            this.res.off('drain', done);
            this.res.off('close', done);
            resolve();
          };
          this.res.once('drain', done);
          this.res.once('close', done);
        });
      } else {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  }

  private imageBytes(step: { mime?: string; width?: number; height?: number }): Buffer {
    const width = step.width ?? 64;
    const height = step.height ?? 64;
    return step.mime === 'image/jpeg' ? makeJpeg(width, height) : makePng(width, height);
  }

  private imagesEvent(type: string, fields: Record<string, unknown>): string {
    const data = {
      type: `image_generation.${type}`,
      created_at: this.created,
      size: '1024x1024',
      quality: 'auto',
      background: 'opaque',
      ...fields,
    };
    return `event: image_generation.${type}\ndata: ${JSON.stringify(data)}\n\n`;
  }

  private partialEvents(
    count: number,
    step: {
      mime?: string;
      width?: number;
      height?: number;
      badPartials?: Readonly<Record<number, 'garbage' | 'huge'>>;
    },
  ): string[] {
    const format = step.mime === 'image/jpeg' ? 'jpeg' : 'png';
    return Array.from({ length: count }, (_, i) => {
      const image = this.imageBytes({
        ...step,
        // Coarse to fine, like the real thing.
        width: Math.max(1, Math.round((step.width ?? 64) / 2 ** (count - i))),
        height: Math.max(1, Math.round((step.height ?? 64) / 2 ** (count - i))),
      });
      const bad = step.badPartials?.[i];
      const bytes =
        bad === 'garbage'
          ? Buffer.from('not a picture at all')
          : bad === 'huge'
            ? Buffer.concat([image, Buffer.alloc(8192)])
            : image;
      return this.imagesEvent('partial_image', {
        b64_json: bytes.toString('base64'),
        partial_image_index: i,
        output_format: format,
      });
    });
  }

  /** Writes `text` at once, or in `splitBytes` pieces a millisecond apart. */
  private async writeSplit(text: string, splitBytes: number | undefined): Promise<boolean> {
    if (splitBytes === undefined) {
      this.write(text);
      return this.open;
    }
    const bytes = Buffer.from(text, 'utf8');
    for (let offset = 0; offset < bytes.length; offset += splitBytes) {
      if (!this.open) return false;
      this.res.write(bytes.subarray(offset, offset + splitBytes));
      if (!(await this.wait(1))) return false;
    }
    return this.open;
  }

  private imagesJson(data: unknown[], outputFormat = 'png'): void {
    sendJson(this.res, 200, {
      created: this.created,
      data,
      output_format: outputFormat,
      usage: {
        input_tokens: FAKE_PROMPT_TOKENS,
        output_tokens: 1,
        total_tokens: FAKE_PROMPT_TOKENS + 1,
      },
    });
  }

  private startImagesSse(): void {
    this.res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      'x-request-id': this.record.generationId,
    });
    this.res.flushHeaders();
  }

  /** `POST /images/generations`, streamed (SSE events) or not (JSON), per its step. */
  private async respondImagesApi(step: ChatScript): Promise<void> {
    const body = this.record.body;
    const streaming = body['stream'] === true;
    const asked = typeof body['partial_images'] === 'number' ? body['partial_images'] : 0;
    this.res.setHeader('x-request-id', this.record.generationId);
    switch (step.kind) {
      case 'images': {
        const format = step.mime === 'image/jpeg' ? 'jpeg' : 'png';
        const b64 = this.imageBytes(step).toString('base64');
        if (!streaming) {
          if (!(await this.wait(step.delayMs ?? 0))) return;
          this.imagesJson([{ b64_json: b64 }], format);
          return;
        }
        this.startImagesSse();
        for (const event of this.partialEvents(step.partials ?? asked, step)) {
          if (!(await this.wait(step.delayMs ?? 0))) return;
          if (!(await this.writeSplit(event, step.splitBytes))) return;
        }
        if (!(await this.wait(step.delayMs ?? 0))) return;
        if (step.completed !== false) {
          const completed = this.imagesEvent('completed', {
            b64_json: b64,
            output_format: format,
            usage: {
              input_tokens: FAKE_PROMPT_TOKENS,
              output_tokens: 1,
              total_tokens: FAKE_PROMPT_TOKENS + 1,
              input_tokens_details: { image_tokens: 0, text_tokens: FAKE_PROMPT_TOKENS },
            },
          });
          if (!(await this.writeSplit(completed, step.splitBytes))) return;
        }
        if (this.open) this.res.end();
        return;
      }
      case 'zero-images':
        this.imagesJson([]);
        return;
      case 'garbage':
        this.imagesJson([
          { b64_json: Buffer.from('this is not an image at all').toString('base64') },
        ]);
        return;
      case 'partial-then-error':
        this.startImagesSse();
        for (const event of this.partialEvents(step.afterPartials ?? 1, {})) this.write(event);
        this.write(
          `event: error\ndata: ${JSON.stringify({
            type: 'error',
            error: {
              code: step.code ?? 'server_error',
              message: step.message ?? 'Generation failed',
            },
          })}\n\n`,
        );
        if (this.open) this.res.end();
        return;
      case 'error-chunk':
        if (!streaming) {
          sendJson(this.res, 200, errorBody(step));
          return;
        }
        this.startImagesSse();
        this.write(`event: error\ndata: ${JSON.stringify(errorBody(step))}\n\n`);
        if (this.open) this.res.end();
        return;
      case 'cut':
      case 'stall': {
        const count = step.kind === 'cut' ? step.afterChunks : (step.afterChunks ?? 0);
        if (!streaming) {
          const text = JSON.stringify({ created: this.created, data: [{ b64_json: 'AAAA' }] });
          this.res.writeHead(200, {
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(text),
          });
          if (step.kind === 'cut') {
            this.write(text.slice(0, Math.floor(text.length / 2)));
            this.cut();
          } else {
            this.res.flushHeaders();
          }
          return;
        }
        this.startImagesSse();
        for (const event of this.partialEvents(count, {})) this.write(event);
        if (step.kind === 'cut') this.cut();
        return;
      }
      default:
        return this.respondImagesApi({ kind: 'images' });
    }
  }

  /**
   * Streaming requests get SSE for every step except status and the image kinds (which answer their
   * JSON body as-is); non-stream requests get JSON, with 'cut' sending half a body, 'error-chunk'
   * a 200 `{"error":…}` body (OpenRouter's late-failure shape) and 'stall' headers only.
   * Images API requests are answered by {@link respondImagesApi}.
   */
  async respond(step: ChatScript): Promise<void> {
    const streaming = this.record.type === 'chat-stream';
    if (step.kind === 'reset') {
      this.res.socket?.destroy();
      return;
    }
    if (step.kind === 'html-200') {
      this.html();
      return;
    }
    if (step.kind === 'wrong-shape') {
      sendJson(this.res, 200, { object: 'list', items: [] });
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
    if (this.record.type === 'images-api') return this.respondImagesApi(step);
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
        return this.stream(step.chunks ?? FAKE_DEFAULT_CHUNKS, step.delayMs ?? 0, {
          withUsage: step.usage ?? true,
          processingComments: step.processingComments ?? true,
          done: step.done ?? true,
          finishReason: step.finishReason ?? true,
        });
      case 'hang':
        return this.hang(step.commentEveryMs ?? 1000);
      case 'endless':
        return this.endless(step.content ?? 'la ');
      case 'complete':
        return this.stream([step.content], 0, {
          withUsage: true,
          processingComments: true,
          done: true,
          finishReason: true,
        });
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
    if (req.method !== 'POST' || (path !== CHAT_PATH && path !== IMAGES_PATH)) {
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
    const type = requestType(path, body);
    const model = typeof body['model'] === 'string' ? body['model'] : '';
    let resolveClosed: (at: number) => void = () => undefined;
    let resolveSocketClosed: (at: number) => void = () => undefined;
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
      generationId: `${type === 'image' || type === 'images-api' ? 'gen-img' : 'gen'}-${index}-${randomBytes(6).toString('hex')}`,
      authorization: req.headers.authorization ?? null,
      headers: req.headers,
      socketClosedAt: null,
      socketClosed: new Promise<number>((resolve) => {
        resolveSocketClosed = resolve;
      }),
      clientAborted: false,
    };
    onSocketClose(req.socket, () => {
      record.socketClosedAt = performance.now();
      resolveSocketClosed(record.socketClosedAt);
    });
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
