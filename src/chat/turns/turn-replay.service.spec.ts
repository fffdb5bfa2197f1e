import { lastValueFrom, toArray } from 'rxjs';
import { loadConfig } from '../../config/app-config.js';
import type { MessageMetadata } from '../../database/schema.js';
import { ImageUrlSigner } from '../../images/image-url.signer.js';
import type { ImageStore } from '../../images/image-store.js';
import type { MessageRow, MessagesRepository } from '../sessions/messages.repository.js';
import type { Frame } from './frames.js';
import { TurnReplayService } from './turn-replay.service.js';
import type { TurnRow } from './turns.repository.js';

/** The replay rebuilds the live orders from stored rows, against repository doubles. */
const config = loadConfig({});
const BYTES = Buffer.from('stored image bytes');
const attempts = [{ model: 'p1', variant: 'single' as const, outcome: 'ok' as const, ms: 3 }];

function message(id: string, fields: Partial<MessageRow> = {}): MessageRow {
  return {
    id,
    sessionId: 's',
    turnId: 't',
    role: 'assistant',
    content: 'hello',
    clientMsgId: null,
    actionType: 'reply_text',
    status: 'complete',
    model: 'chat-model',
    metadata: { usage: null, generation_id: 'gen' },
    seq: 1,
    createdAt: new Date(),
    ...fields,
  };
}

function turn(fields: Partial<TurnRow>): TurnRow {
  return {
    id: 't',
    sessionId: 's',
    userId: 'u',
    clientMsgId: 'key-00001',
    requestHash: 'h',
    userMessageId: 'user-msg',
    actionType: 'reply_text',
    status: 'completed',
    owner: '',
    streamSlot: null,
    messageIds: [],
    error: null,
    createdAt: new Date(),
    finishedAt: new Date(),
    ...fields,
  };
}

const image: NonNullable<MessageMetadata['image']> = {
  image_id: 'img-1',
  mime: 'image/png',
  model: 'p1',
  image_prompt: 'a fox',
  width: 4,
  height: 3,
  generation_id: 'gen-img',
  durable_url: null,
  attempts,
};

function replay(rows: MessageRow[], stored: TurnRow): Promise<Frame[]> {
  const messages = {
    inOrder: async (ids: readonly string[]) =>
      ids.flatMap((id) => rows.filter((row) => row.id === id)),
  } as unknown as MessagesRepository;
  const store = {
    read: async (id: string) => (id === 'img-1' ? BYTES : null),
  } as unknown as ImageStore;
  const service = new TurnReplayService(config, messages, store, new ImageUrlSigner(config));
  return lastValueFrom(service.frames$(stored).pipe(toArray()));
}

const typesOf = (frames: Frame[]): string[] => frames.map((frame) => frame.type);

describe('TurnReplayService', () => {
  it('reply_text: one delta with the whole text, final replayed', async () => {
    const frames = await replay([message('m1')], turn({ messageIds: ['m1'] }));
    expect(typesOf(frames)).toEqual(['meta', 'delta', 'done', 'final']);
    expect(frames[1]).toEqual({ type: 'delta', message_id: 'm1', content: 'hello' });
    expect(frames[3]).toEqual(
      expect.objectContaining({ replayed: true, message_ids: ['m1'], user_message_id: 'user-msg' }),
    );
  });

  it('reply_text_image: the stored image with a fresh signed url and its bytes inline', async () => {
    const row = message('m1', { actionType: 'reply_text_image', metadata: { image } });
    const frames = await replay(
      [row],
      turn({ actionType: 'reply_text_image', messageIds: ['m1'] }),
    );
    expect(typesOf(frames)).toEqual(['meta', 'delta', 'done', 'image_pending', 'image', 'final']);
    const frame = frames[4] as Extract<Frame, { type: 'image' }>;
    expect(frame.url).toContain('/v1/images/img-1?');
    expect(frame.data_url).toBe(`data:image/png;base64,${BYTES.toString('base64')}`);
  });

  it('reply_image success: image_pending(X) → meta(X) → image(X) → done(X)', async () => {
    const row = message('x', {
      actionType: 'reply_image',
      content: '',
      model: 'p1',
      metadata: { image, generation_id: 'gen-img' },
    });
    const frames = await replay([row], turn({ actionType: 'reply_image', messageIds: ['x'] }));
    expect(typesOf(frames)).toEqual(['image_pending', 'meta', 'image', 'done', 'final']);
  });

  it('degraded reply_image: X failed first, then Y; X is in no message id', async () => {
    const row = message('y', {
      metadata: {
        image_failed: { reason: 'chain_exhausted', attempts, pending_message_id: 'x' },
      },
    });
    const frames = await replay([row], turn({ actionType: 'reply_image', messageIds: ['y'] }));
    expect(typesOf(frames)).toEqual([
      'image_pending',
      'image_failed',
      'meta',
      'delta',
      'done',
      'final',
    ]);
    expect(frames[0]).toEqual({ type: 'image_pending', message_id: 'x' });
    expect(frames.at(-1)).toEqual(expect.objectContaining({ message_ids: ['y'] }));
  });

  it('a failed turn replays its truncated text and its error', async () => {
    const row = message('m1', { status: 'failed', metadata: { truncated: true } });
    const frames = await replay(
      [row],
      turn({
        status: 'failed',
        messageIds: ['m1'],
        error: {
          code: 'upstream_unavailable',
          retryable: true,
          message: 'cut',
          user_message: 'try again',
        },
      }),
    );
    expect(typesOf(frames)).toEqual(['meta', 'delta', 'done', 'error']);
    expect(frames[2]).toEqual(expect.objectContaining({ truncated: true }));
    expect(frames[3]).toEqual(
      expect.objectContaining({ code: 'upstream_unavailable', retryable: true }),
    );
  });
});
