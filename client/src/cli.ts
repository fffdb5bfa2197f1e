#!/usr/bin/env node
/**
 * `easel chat`: one turn from the terminal. The reply streams to stdout, image attempts show as a
 * live progress line on stderr, the picture is saved to a file whose path is printed, and Ctrl-C
 * stops the turn through the stop route (api-reference §8a) before exiting.
 */
import { writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EaselClient } from './client.js';
import { EaselApiError, EaselError } from './errors.js';
import type { Frame, FrameOf, TurnImageOptions } from '../../src/contract/index.js';

const USAGE = `Usage: easel chat [options] "message"

  --url URL        Easel's address (default $EASEL_URL or http://localhost:3000)
  --token JWT      Bearer token (default $EASEL_TOKEN)
  --session ID     continue this session (default: a new one)
  --image          always draw a picture with the reply
  --image-only     only a picture
  --previews N     ask for N (1-3) previews per image attempt
  --out DIR        where pictures are saved (default: the current folder)
`;

/** How long Ctrl-C waits for the server's `cancelled` frame before leaving anyway. */
const STOP_WAIT_MS = 3000;

const EXTENSIONS: Record<string, string> = {
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
};

/** One status line on stderr, rewritten in place on a terminal, one line per update otherwise. */
function progress(text: string): void {
  if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${text}`);
  else process.stderr.write(`${text}\n`);
}

function endProgress(): void {
  if (process.stderr.isTTY) process.stderr.write('\n');
}

async function saveImage(
  client: EaselClient,
  frame: FrameOf<'image'>,
  folder: string,
): Promise<string> {
  const bytes = frame.data_url
    ? Buffer.from(frame.data_url.slice(frame.data_url.indexOf(',') + 1), 'base64')
    : Buffer.from(await (await client.images.get(frame.url)).arrayBuffer());
  const path = resolve(folder, `easel-${frame.message_id}.${EXTENSIONS[frame.mime] ?? 'bin'}`);
  await writeFile(path, bytes);
  return path;
}

function imageOptions(values: {
  image?: boolean;
  'image-only'?: boolean;
  previews?: string;
}): TurnImageOptions | undefined {
  const previews = values.previews === undefined ? undefined : Number(values.previews);
  if (previews !== undefined && !(Number.isInteger(previews) && previews >= 0 && previews <= 3)) {
    throw new EaselError('--previews takes 0 to 3');
  }
  if (!values.image && !values['image-only'] && previews === undefined) return undefined;
  return {
    ...(values.image || values['image-only'] ? { force: true } : {}),
    ...(values['image-only'] ? { mode: 'image_only' as const } : {}),
    ...(previews ? { partial_images: previews } : {}),
  };
}

async function chat(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      url: { type: 'string' },
      token: { type: 'string' },
      session: { type: 'string' },
      image: { type: 'boolean' },
      'image-only': { type: 'boolean' },
      previews: { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  const content = positionals.join(' ');
  if (values.help || (!content && !values['image-only'])) {
    process.stderr.write(USAGE);
    return values.help ? 0 : 2;
  }
  const client = new EaselClient({
    baseUrl: values.url ?? process.env.EASEL_URL ?? 'http://localhost:3000',
    token: values.token ?? process.env.EASEL_TOKEN,
  });
  const image = imageOptions(values);
  const sessionId =
    values.session ?? (await client.sessions.create({ title: content.slice(0, 80) })).id;
  if (!values.session) process.stderr.write(`session: ${sessionId}\n`);

  const controller = new AbortController();
  const stream = client.turns.stream(
    sessionId,
    { content, ...(image ? { image } : {}) },
    { signal: controller.signal },
  );
  let stopping = false;
  const onInterrupt = (): void => {
    if (stopping) {
      controller.abort();
      return;
    }
    stopping = true;
    progress('stopping…');
    // Ask the server to stop and keep reading until its `cancelled` frame; leave if it is slow
    // or does not know the route (leaving cancels a turn in the default `cancel` mode anyway).
    client.turns.cancel(sessionId, stream.clientMsgId).catch(() => controller.abort());
    setTimeout(() => controller.abort(), STOP_WAIT_MS).unref();
  };
  process.on('SIGINT', onInterrupt);

  let textOpen = false;
  const print = (line: string): void => {
    if (textOpen) process.stdout.write('\n');
    textOpen = false;
    process.stdout.write(`${line}\n`);
  };
  try {
    let attempt: FrameOf<'image_attempt'> | null = null;
    for await (const frame of stream as AsyncIterable<Frame>) {
      switch (frame.type) {
        case 'delta':
          process.stdout.write(frame.content);
          textOpen = true;
          break;
        case 'image_pending':
          progress('image: starting…');
          break;
        case 'image_attempt':
          attempt = frame;
          progress(
            `image: attempt ${frame.index}/${frame.total} ${frame.model} (${frame.variant})`,
          );
          break;
        case 'image_partial':
          if (attempt) {
            progress(
              `image: attempt ${attempt.index}/${attempt.total} ${attempt.model} (${attempt.variant}) preview ${frame.partial_index + 1}`,
            );
          }
          break;
        case 'image': {
          progress(`image: done by ${frame.model}, ${frame.width}×${frame.height}`);
          endProgress();
          print(`image: ${await saveImage(client, frame, values.out ?? process.cwd())}`);
          break;
        }
        case 'image_failed':
          progress(`image: failed (${frame.reason})`);
          endProgress();
          break;
        case 'final':
          if (textOpen) process.stdout.write('\n');
          return 0;
        case 'error':
          if (textOpen) process.stdout.write('\n');
          endProgress();
          process.stderr.write(
            `${frame.code === 'cancelled' ? 'stopped' : 'error'}: ${frame.user_message}\n`,
          );
          return frame.code === 'cancelled' ? 130 : 1;
        default:
          break;
      }
    }
    return 1;
  } catch (error) {
    if (controller.signal.aborted) {
      process.stderr.write('\nstopped\n');
      return 130;
    }
    throw error;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

async function main(): Promise<number> {
  const [command, ...rest] = process.argv.slice(2);
  if (command !== 'chat') {
    process.stderr.write(USAGE);
    return 2;
  }
  try {
    return await chat(rest);
  } catch (error) {
    if (error instanceof EaselApiError) {
      process.stderr.write(`error: ${error.code}: ${error.body.message}\n`);
    } else {
      process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
    }
    return 1;
  }
}

process.exitCode = await main();
