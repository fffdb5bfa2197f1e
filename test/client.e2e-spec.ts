import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  EaselApiError,
  EaselClient,
  type Frame,
  reduceFrames,
  type TurnInput,
} from '../client/src/index.js';
import { turnBody } from './harness/api.js';
import { useUpstream } from './harness/app.js';
import { buildClient, runChat } from './harness/client-cli.js';
import { FAKE_DEFAULT_CHUNKS } from './harness/fake-upstream.js';

/** @easel/client against the real Easel server (fake upstream), and the built `easel` CLI. */

const REPLY = FAKE_DEFAULT_CHUNKS.join('');
const PNG_MAGIC = Buffer.from([0x89, 0x50, 0x4e, 0x47]);

// The CLI test runs what `npm run build -w client` ships.
beforeAll(buildClient, 120_000);
const suite = useUpstream({
  CHAT_MODELS: 'chat',
  IMAGE_MODELS: 'p1,p2',
  IMAGE_ATTEMPT_TIMEOUT_MS: '2000',
  TURN_TIMEOUT_MS: '10000',
});
let easel: EaselClient;
beforeAll(() => {
  easel = new EaselClient({ baseUrl: suite.baseUrl, token: suite.token });
});

async function turn(sessionId: string, input: TurnInput): Promise<Frame[]> {
  const frames: Frame[] = [];
  for await (const frame of easel.turns.stream(sessionId, input)) frames.push(frame);
  return frames;
}

async function failure(promise: Promise<unknown>): Promise<EaselApiError> {
  const error = await promise.then(
    () => null,
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(EaselApiError);
  return error as EaselApiError;
}

describe('sessions through the client', () => {
  it('creates, reads, lists and deletes', async () => {
    const created = await easel.sessions.create({ title: 'Client', system_prompt: 'Be brief.' });
    expect(created).toMatchObject({ title: 'Client', system_prompt: 'Be brief.' });
    expect(await easel.sessions.get(created.id)).toEqual(created);
    const page = await easel.sessions.list({ limit: 100 });
    expect(page.items.map((session) => session.id)).toContain(created.id);
    expect(await easel.sessions.delete(created.id)).toBeUndefined();
    const gone = await failure(easel.sessions.get(created.id));
    expect([gone.status, gone.code]).toEqual([404, 'session_not_found']);
  });

  it('answers another user’s session as not found', async () => {
    const mine = await easel.sessions.create();
    const bob = new EaselClient({ baseUrl: suite.baseUrl, token: await suite.app.token('bob') });
    expect((await failure(bob.sessions.get(mine.id))).code).toBe('session_not_found');
    expect((await failure(bob.messages.list(mine.id))).code).toBe('session_not_found');
  });
});

describe('turns through the client', () => {
  it('streams a text turn and reduces it to the stored conversation', async () => {
    const session = await easel.sessions.create();
    const frames = await turn(session.id, turnBody('hello'));
    const state = reduceFrames(frames);

    expect(state.status).toBe('complete');
    expect(state.messages).toHaveLength(1);
    expect(state.messages[0]).toMatchObject({
      text: REPLY,
      status: 'done',
      actionType: 'reply_text',
      model: 'chat',
      image: null,
    });
    const history = await easel.messages.list(session.id);
    expect(history.items.map((message) => [message.id, message.role, message.content])).toEqual([
      [state.messages[0].id, 'assistant', REPLY],
      [state.userMessageId, 'user', 'hello'],
    ]);
    expect(history.next_cursor).toBeNull();
  });

  it('streams a forced image turn: a failed attempt, then the picture', async () => {
    suite.upstream.script('p1', { kind: 'status', status: 500, code: 'boom' });
    const session = await easel.sessions.create();
    const state = reduceFrames(
      await turn(
        session.id,
        turnBody('a lighthouse', { image: { force: true, aspect_ratio: '16:9' } }),
      ),
    );

    expect(state.status).toBe('complete');
    expect(state.actionType).toBe('reply_text_image');
    const [message] = state.messages;
    expect(message.text).toBe(REPLY);
    expect(message.image?.status).toBe('ready');
    // The default composer makes a `composed` and an `original` attempt per model.
    expect(message.image?.attempts.map((item) => [item.model, item.variant, item.outcome])).toEqual(
      [
        ['p1', 'composed', 'failed'],
        ['p1', 'original', 'failed'],
        ['p2', 'composed', 'ok'],
      ],
    );
    const result = message.image!.result!;
    expect(result.dataUrl).toMatch(/^data:image\/png;base64,/);
    const blob = await easel.images.get(result.url);
    expect(blob.type).toBe(result.mime);
    expect(Buffer.from(await blob.arrayBuffer()).subarray(0, 4)).toEqual(PNG_MAGIC);

    await easel.messages.saveImageCopy(session.id, message.id, 'https://cdn.example/copy.png');
    const [stored] = (await easel.messages.list(session.id)).items;
    expect(stored.image?.durable_url).toBe('https://cdn.example/copy.png');
    expect(stored.image?.attempts.map((item) => [item.model, item.outcome])).toEqual([
      ['p1', 'status'],
      ['p1', 'status'],
      ['p2', 'ok'],
    ]);
  });

  it('throws typed pre-stream errors: 404, 400, 409', async () => {
    const missing = await failure(turn('00000000-0000-0000-0000-000000000000', turnBody('x')));
    expect([missing.status, missing.code]).toEqual([404, 'session_not_found']);

    const session = await easel.sessions.create();
    const invalid = await failure(turn(session.id, { content: 'x', client_msg_id: 'short' }));
    expect([invalid.status, invalid.code]).toEqual([400, 'invalid_payload']);

    const first = turnBody('first');
    await turn(session.id, first);
    const conflict = await failure(turn(session.id, { ...first, content: 'other' }));
    expect([conflict.status, conflict.code]).toEqual([409, 'idempotency_conflict']);
  });

  it('replays a finished turn with the same key', async () => {
    const session = await easel.sessions.create();
    const input = turnBody('again');
    const first = reduceFrames(await turn(session.id, input));
    const replay = reduceFrames(await turn(session.id, input));
    expect(replay.replayed).toBe(true);
    expect(replay.messages.map((message) => [message.id, message.text])).toEqual(
      first.messages.map((message) => [message.id, message.text]),
    );
  });
});

describe('the easel CLI', () => {
  let out: string;
  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), 'easel-cli-'));
  });
  afterAll(async () => {
    await rm(out, { recursive: true, force: true });
  });

  it('streams a text reply to stdout', async () => {
    const run = await runChat(suite.token, ['--url', suite.baseUrl, 'hello there']);
    expect(run.stderr).toMatch(/^session: \S+/m);
    expect([run.code, run.stdout]).toEqual([0, `${REPLY}\n`]);
  });

  it('draws a picture: progress on stderr, saves the file and prints its path', async () => {
    suite.upstream.script('p1', { kind: 'status', status: 500 });
    const session = await easel.sessions.create();
    const run = await runChat(suite.token, [
      '--url',
      suite.baseUrl,
      '--session',
      session.id,
      '--image',
      '--out',
      out,
      'a lighthouse',
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toContain('image: attempt 1/4 p1 (composed)');
    expect(run.stderr).toContain('image: attempt 3/4 p2 (composed)');
    expect(run.stderr).toMatch(/image: done by p2/);
    const path = /^image: (.+)$/m.exec(run.stdout)?.[1];
    expect(path).toBeDefined();
    expect(path!.startsWith(out)).toBe(true);
    expect((await readFile(path!)).subarray(0, 4)).toEqual(PNG_MAGIC);
    expect(run.stdout.startsWith(REPLY)).toBe(true);
  });

  it('reports a typed error and exits 1', async () => {
    const run = await runChat(suite.token, ['--url', suite.baseUrl, '--session', 'nope', 'hi']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain('error: session_not_found');
  });
});
