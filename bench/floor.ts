/**
 * The floor: the least work any relay can do here. `node:http` in, `node:http` out, one
 * JSON.parse per upstream chunk and one SSE frame per delta; no framework, no storage.
 */
import { Agent, createServer, request, type ServerResponse } from 'node:http';
import { readBody, report, serveStats } from './ipc.js';

const upstream = new URL(`${process.env.UPSTREAM_URL ?? ''}/chat/completions`);
const agent = new Agent({ keepAlive: true, maxSockets: Infinity });

interface UpstreamChunk {
  choices?: Array<{ delta?: { content?: unknown } }>;
}

function relay(content: string, res: ServerResponse): void {
  const body = JSON.stringify({
    model: 'bench/chat',
    stream: true,
    messages: [{ role: 'user', content }],
  });
  const call = request(
    upstream,
    {
      method: 'POST',
      agent,
      headers: {
        authorization: 'Bearer x',
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
      },
    },
    (upstreamRes) => {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' });
      upstreamRes.setEncoding('utf8');
      let buffer = '';
      let id = 0;
      upstreamRes.on('data', (text: string) => {
        buffer += text;
        let end = buffer.indexOf('\n\n');
        while (end !== -1) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          end = buffer.indexOf('\n\n');
          if (!event.startsWith('data: ')) continue;
          const data = event.slice(6);
          if (data === '[DONE]') {
            res.end(`id: ${++id}\ndata: {"type":"done"}\n\n`);
            return;
          }
          const delta = (JSON.parse(data) as UpstreamChunk).choices?.[0]?.delta?.content;
          if (typeof delta === 'string' && delta !== '') {
            res.write(
              `id: ${++id}\ndata: ${JSON.stringify({ type: 'delta', content: delta })}\n\n`,
            );
          }
        }
      });
      upstreamRes.on('error', () => res.destroy());
    },
  );
  call.on('error', () => res.destroy());
  res.on('close', () => call.destroy());
  call.end(body);
}

const server = createServer((req, res) => {
  readBody(req)
    .then((text) => {
      const { content } = JSON.parse(text) as { content?: unknown };
      relay(typeof content === 'string' ? content : '', res);
    })
    .catch(() => res.writeHead(400).end());
});

serveStats();
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  report({ type: 'ready', port: typeof address === 'object' && address ? address.port : 0 });
});
