/**
 * The peer: the Vercel AI SDK as its Node.js HTTP example wires it — `streamText` with the
 * OpenAI-compatible provider, `pipeUIMessageStreamToResponse(res)` on a `node:http` server.
 */
import { createServer } from 'node:http';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { streamText } from 'ai';
import { readBody, report, serveStats } from './ipc.js';

const provider = createOpenAICompatible({
  name: 'bench',
  baseURL: process.env.UPSTREAM_URL ?? '',
  apiKey: 'x',
});

const server = createServer((req, res) => {
  readBody(req)
    .then((text) => {
      const { content } = JSON.parse(text) as { content?: unknown };
      // Same duty as the other two: stop the upstream call when the client leaves.
      const controller = new AbortController();
      res.on('close', () => controller.abort());
      const result = streamText({
        model: provider.chatModel('bench/chat'),
        prompt: typeof content === 'string' ? content : '',
        abortSignal: controller.signal,
      });
      result.pipeUIMessageStreamToResponse(res);
    })
    .catch(() => res.writeHead(400).end());
});

serveStats();
server.listen(0, '127.0.0.1', () => {
  const address = server.address();
  report({ type: 'ready', port: typeof address === 'object' && address ? address.port : 0 });
});
