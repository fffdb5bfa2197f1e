import { performance } from 'node:perf_hooks';
import { clientMsgId, turnBody, type UserClient, userClient } from './harness/api.js';
import { bounded, useChildSuite } from './harness/child-server.js';
import {
  type ChatScript,
  FAKE_DEFAULT_CHUNKS,
  type RecordedRequest,
} from './harness/fake-upstream.js';
import { eventually, frameOf, type ReceivedFrame, types } from './harness/sse-client.js';

// The built server in a child process, killed for real: no shutdown hook gets to run.
const suite = useChildSuite();

/** The user's text in a chat request (its last user message). */
function userText(request: RecordedRequest): string {
  const messages = request.body['messages'] as { role: string; content: string }[];
  return messages.filter((message) => message.role === 'user').at(-1)?.content ?? '';
}

interface OpenTurn {
  readonly frames: ReceivedFrame[];
  /** Resolves once the first delta has arrived. */
  readonly streaming: Promise<void>;
  /** Settles when the connection ends (it is expected to break when the server dies). */
  readonly ended: Promise<unknown>;
}

function openTurn(client: UserClient, sessionId: string, body: object): OpenTurn {
  const frames: ReceivedFrame[] = [];
  let onDelta: () => void = () => undefined;
  const streaming = new Promise<void>((resolve) => (onDelta = resolve));
  const ended = client
    .turn(sessionId, body, {
      onFrame: (frame) => {
        frames.push(frame);
        if (frame.data.type === 'delta') onDelta();
      },
    })
    .catch((error: unknown) => error);
  return { frames, streaming, ended };
}

interface TurnState {
  client_msg_id: string;
  status: string;
  finished: boolean;
}

async function turnStates(): Promise<TurnState[]> {
  return suite.store.query<TurnState>(
    'select client_msg_id, status, finished_at is not null as finished from turns order by client_msg_id',
  );
}

it('marks turns a SIGKILLed server left running as interrupted, and runs them again', async () => {
  // The first two chat calls send one chunk and then nothing; later calls stream in full.
  const stall: ChatScript = { kind: 'stall', chunks: ['Half'], afterChunks: 1 };
  suite.upstream.script('m1', stall, stall, { kind: 'stream' });

  const first = await suite.start();
  const token = await first.token();
  const alice = userClient(first.baseUrl, token);
  const [sessionA, sessionB] = await Promise.all([alice.session(), alice.session()]);
  // turnStates() orders by key: these keys sort A before B.
  const bodyA = { content: 'question A', client_msg_id: clientMsgId('crash-a') };
  const bodyB = { content: 'question B', client_msg_id: clientMsgId('crash-b') };
  const turnA = openTurn(alice, sessionA, bodyA);
  const turnB = openTurn(alice, sessionB, bodyB);
  await bounded(Promise.all([turnA.streaming, turnB.streaming]), 20_000, 'both turns streaming');

  const killedAt = performance.now();
  first.kill('SIGKILL');
  const exit = await bounded(first.exited, 10_000, 'the killed server exiting');
  expect(exit).toMatchObject({ code: null, signal: 'SIGKILL' });
  await bounded(Promise.all([turnA.ended, turnB.ended]), 10_000, 'both streams breaking');
  // The clients saw the stream break: no terminal frame was ever sent.
  for (const turn of [turnA, turnB]) {
    const sent = turn.frames.map((frame) => frame.data.type);
    expect(sent).toEqual(['meta', 'delta']);
  }

  // The kernel closed the dead server's upstream sockets.
  expect(suite.upstream.requests).toHaveLength(2);
  for (const request of suite.upstream.requests) {
    const closedAt = await request.closed;
    expect(request.clientAborted).toBe(true);
    expect(closedAt - killedAt).toBeLessThan(2000);
  }
  await eventually(async () => suite.upstream.openConnections() === 0, 3000);

  // What the crash left behind: both turns still marked running.
  expect(await turnStates()).toEqual([
    { client_msg_id: bodyA.client_msg_id, status: 'running', finished: false },
    { client_msg_id: bodyB.client_msg_id, status: 'running', finished: false },
  ]);

  // Same data, new process: it boots (startChild waits for /readyz 200).
  const second = await suite.start();
  const again = userClient(second.baseUrl, token);

  // The same key runs the turn again (a 409 duplicate_in_progress if it were still running).
  const rerun = await again.turn(sessionA, bodyA);
  expect(rerun.status).toBe(200);
  expect(types(rerun)).toEqual([
    'meta',
    ...FAKE_DEFAULT_CHUNKS.map(() => 'delta'),
    'done',
    'final',
  ]);
  const final = frameOf(rerun, 'final');
  expect(final.replayed).toBe(false);
  expect(suite.upstream.requests).toHaveLength(3);
  expect(suite.upstream.requests[2].type).toBe('chat-stream');
  expect(userText(suite.upstream.requests[2])).toBe('question A');

  // Now it is finished: the same key replays it without calling the provider.
  const replay = await again.turn(sessionA, bodyA);
  expect(replay.frames.at(-1)?.data).toMatchObject({
    type: 'final',
    replayed: true,
    message_ids: final.message_ids,
  });
  expect(suite.upstream.requests).toHaveLength(3);

  // One user message (kept from the first run) and the complete reply.
  const items = await again.history(sessionA);
  expect(items.map((item) => [item.role, item.status, item.content])).toEqual([
    ['assistant', 'complete', FAKE_DEFAULT_CHUNKS.join('')],
    ['user', 'complete', 'question A'],
  ]);
  expect(items[1].id).toBe(final.user_message_id);
  expect(items[0].id).toBe(final.message_ids[0]);

  second.kill('SIGTERM');
  expect(await bounded(second.exited, 20_000, 'the server exiting')).toMatchObject({
    code: 0,
    signal: null,
  });

  // No row stays running: the rerun one completed, the other is interrupted (runnable again).
  expect(await turnStates()).toEqual([
    { client_msg_id: bodyA.client_msg_id, status: 'completed', finished: true },
    { client_msg_id: bodyB.client_msg_id, status: 'interrupted', finished: true },
  ]);
}, 120_000);

// Several instances share a database only on PostgreSQL: an embedded PGlite folder has one process.
const onSharedPostgres = process.env.TEST_DATABASE_URL ? it : it.skip;

onSharedPostgres(
  "leaves a live instance's running turns alone and frees those of a dead one",
  async () => {
    suite.upstream.script(
      'm1',
      { kind: 'stall', chunks: ['Held'], afterChunks: 1 },
      { kind: 'stream' },
    );
    const owner = await suite.start();
    const token = await owner.token();
    const onOwner = userClient(owner.baseUrl, token);
    const sessionId = await onOwner.session();
    const body = turnBody('shared question');
    const held = openTurn(onOwner, sessionId, body);
    await bounded(held.streaming, 20_000, 'the turn streaming');

    // A peer booting on the same database must not take over a turn that is still running.
    const peer = await suite.start();
    const onPeer = userClient(peer.baseUrl, token);
    const state = async (): Promise<string | undefined> =>
      (await turnStates()).find((turn) => turn.client_msg_id === body.client_msg_id)?.status;
    expect(await state()).toBe('running');
    const duplicate = await onPeer.turn(sessionId, body);
    expect(duplicate.status).toBe(409);
    expect(duplicate.json).toMatchObject({ code: 'duplicate_in_progress' });

    // Its owner dies: the next sweep (here, another instance's boot) frees the key.
    owner.kill('SIGKILL');
    await bounded(owner.exited, 10_000, 'the owner exiting');
    await bounded(held.ended, 10_000, 'the stream breaking');
    const third = await suite.start();
    expect(await state()).toBe('interrupted');
    const rerun = await onPeer.turn(sessionId, body);
    expect(rerun.frames.at(-1)?.data).toMatchObject({ type: 'final', replayed: false });

    for (const child of [peer, third]) child.kill('SIGTERM');
    await Promise.all([peer.exited, third.exited]);
  },
  120_000,
);
