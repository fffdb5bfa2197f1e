/**
 * The fake OpenRouter-style upstream all three systems relay from. Each content chunk carries
 * its own send time (`[t<µs>]`, monotonic clock), so a client can tell per delta how long the
 * relay in between took. `arm(n)` holds the next n streams until `release` (reporting each
 * one held), which makes n streams truly concurrent and gives the orchestrator a quiet moment to sample memory.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { crc32, deflateSync } from 'node:zlib';
import { isCommand, nowUs, report, serveStats } from './ipc.js';

const CHUNKS = Number(process.env.BENCH_CHUNKS ?? '20');
const INTERVAL_MS = Number(process.env.BENCH_INTERVAL_MS ?? '20');
const DEFAULT_IMAGE_DELAY_MS = Number(process.env.BENCH_IMAGE_DELAY_MS ?? '20');
let imageDelayMs = DEFAULT_IMAGE_DELAY_MS;

function pngChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])));
  return Buffer.concat([head, data, crc]);
}

/**
 * A real size×size PNG, grey or (`noisy`) random pixels that deflate cannot shrink, so the file
 * is about 3·size² bytes. Easel sniffs and stores what it gets.
 */
function makePng(size: number, noisy = false): Buffer {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8;
  ihdr[9] = 2;
  const rows = noisy
    ? randomBytes((size * 3 + 1) * size)
    : Buffer.alloc((size * 3 + 1) * size, 0x80);
  for (let y = 0; y < size; y++) rows[y * (size * 3 + 1)] = 0;
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    pngChunk('IHDR', ihdr),
    pngChunk('IDAT', deflateSync(rows)),
    pngChunk('IEND', Buffer.alloc(0)),
  ]);
}

const dataUrl = (png: Buffer): string => `data:image/png;base64,${png.toString('base64')}`;
const SMALL_IMAGE_URL = dataUrl(makePng(32));
let imageUrl = SMALL_IMAGE_URL;

let sequence = 0;
let expecting = 0;
let armedChunks = CHUNKS;
let held: Array<() => void> = [];

function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('error', reject);
    req.on('end', () => {
      try {
        const body: unknown = JSON.parse(Buffer.concat(parts).toString('utf8'));
        resolve(typeof body === 'object' && body !== null ? (body as Record<string, unknown>) : {});
      } catch (error) {
        reject(error instanceof Error ? error : new Error(String(error)));
      }
    });
  });
}

function sendJson(res: ServerResponse, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(200, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}

function stream(res: ServerResponse, model: string, chunks: number): void {
  const id = `gen-bench-${++sequence}`;
  const created = Math.floor(Date.now() / 1000);
  const head = `{"id":"${id}","object":"chat.completion.chunk","created":${created},"model":"${model}"`;
  let sent = 0;
  let timer: NodeJS.Timeout | undefined;
  res.on('close', () => clearTimeout(timer));
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
  res.write(': OPENROUTER PROCESSING\n\n');

  const tick = (): void => {
    if (res.destroyed) return;
    if (sent < chunks) {
      const role = sent === 0 ? '"role":"assistant",' : '';
      sent += 1;
      // Stamped as late as possible: the line is written right after the clock is read.
      const stamp = nowUs();
      res.write(
        `data: ${head},"choices":[{"index":0,"delta":{${role}"content":" w[t${stamp}]"},"finish_reason":null}]}\n\n`,
      );
      timer = setTimeout(tick, INTERVAL_MS);
      return;
    }
    res.write(`data: ${head},"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n`);
    res.write(
      `data: ${head},"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":${chunks},"total_tokens":${12 + chunks}}}\n\n`,
    );
    res.end('data: [DONE]\n\n');
  };
  // A random phase per stream, as real streams have: 1 000 streams do not tick in lockstep.
  const start = (): void => {
    timer = setTimeout(tick, Math.random() * INTERVAL_MS);
  };
  if (held.length < expecting) {
    held.push(start);
    report({ type: 'held', count: held.length });
  } else {
    start();
  }
}

async function answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
  if (req.method !== 'POST' || !req.url?.endsWith('/chat/completions')) {
    res.writeHead(404).end();
    return;
  }
  const body = await readJson(req);
  const model = typeof body['model'] === 'string' ? body['model'] : 'bench/chat';
  if (body['stream'] === true) {
    return stream(res, model, held.length < expecting ? armedChunks : CHUNKS);
  }
  const modalities = body['modalities'];
  if (Array.isArray(modalities) && modalities.includes('image')) {
    await new Promise((resolve) => setTimeout(resolve, imageDelayMs));
    return sendJson(res, {
      id: `gen-img-${++sequence}`,
      object: 'chat.completion',
      model,
      choices: [
        {
          index: 0,
          finish_reason: 'stop',
          message: {
            role: 'assistant',
            content: '',
            images: [{ type: 'image_url', image_url: { url: imageUrl } }],
          },
        },
      ],
    });
  }
  sendJson(res, {
    id: `gen-${++sequence}`,
    object: 'chat.completion',
    model,
    choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: 'ok' } }],
  });
}

const server = createServer((req, res) => {
  answer(req, res).catch(() => res.destroy());
});
// Longer than any run: a pooled connection never goes stale mid-bench (a relay under load
// can fire its own idle timer late and reuse a socket the server already closed).
server.keepAliveTimeout = 600_000;

serveStats();
process.on('message', (message: unknown) => {
  if (!isCommand(message)) return;
  if (message.cmd === 'arm') {
    expecting = message.count;
    armedChunks = message.chunks;
    held = [];
  } else if (message.cmd === 'image-bytes') {
    imageUrl =
      message.bytes <= 0
        ? SMALL_IMAGE_URL
        : dataUrl(makePng(Math.ceil(Math.sqrt(message.bytes / 3)), true));
  } else if (message.cmd === 'image-delay') {
    imageDelayMs = message.ms < 0 ? DEFAULT_IMAGE_DELAY_MS : message.ms;
  } else if (message.cmd === 'release') {
    const starts = held;
    expecting = 0;
    held = [];
    for (const start of starts) start();
  }
});

server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  report({ type: 'ready', port: typeof address === 'object' && address ? address.port : 0 });
});
