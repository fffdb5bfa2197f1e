import { concat, lastValueFrom, map, Observable, of, Subject, timer, toArray } from 'rxjs';
import { loadConfig } from '../../config/app-config.js';
import type { ImageGenService } from '../../image-gen/image-gen.service.js';
import type { ImageGenEvent, ImageGenRequest } from '../../image-gen/image-gen.types.js';
import { ImageUrlSigner } from '../../images/image-url.signer.js';
import type { MessagesRepository, NewMessage } from '../sessions/messages.repository.js';
import type { TurnRequestDto } from './dto/turn-request.dto.js';
import type { Frame } from './frames.js';
import type { ReplyEvent, ReplyStreamService } from './reply-stream.service.js';
import { TurnActionsService } from './turn-actions.service.js';
import { TurnRun } from './turn-run.js';

/**
 * The three actions' frame orders, against doubles of the reply stream, the image chain and the
 * messages repository: what is sent, in which order, and what the run would store.
 */
const config = loadConfig({ IMAGE_MODELS: 'p1,p2', IMAGE_COMPOSE_MODEL: 'off' });
const PNG = Buffer.from('89504e470d0a1a0a', 'hex');

const reply = (...pieces: string[]): ReplyEvent[] => [
  { type: 'start', model: 'chat-model' },
  ...pieces.map((content): ReplyEvent => ({ type: 'delta', content })),
  { type: 'end', usage: null, generationId: 'gen-1' },
];

const drawn: ImageGenEvent[] = [
  { type: 'attempt', model: 'p1', variant: 'single', index: 1, total: 2 },
  {
    type: 'partial',
    index: 1,
    partialIndex: 0,
    mime: 'image/png',
    dataUrl: 'data:image/png;base64,AA',
  },
  {
    type: 'done',
    result: {
      ok: true,
      attempts: [{ model: 'p1', variant: 'single', outcome: 'ok', ms: 5 }],
      image: {
        bytes: PNG,
        mime: 'image/png',
        width: 4,
        height: 3,
        model: 'p1',
        prompt: 'a fox',
        generationId: 'img-1',
      },
    },
  },
];

const failedDrawing: ImageGenEvent[] = [
  { type: 'attempt', model: 'p1', variant: 'single', index: 1, total: 1 },
  {
    type: 'done',
    result: {
      ok: false,
      reason: 'chain_exhausted',
      message: 'all failed',
      attempts: [{ model: 'p1', variant: 'single', outcome: 'status', status: 500, ms: 5 }],
    },
  },
];

interface Doubles {
  readonly actions: TurnActionsService;
  readonly saved: NewMessage[];
  readonly replyContexts: string[][];
  readonly drawRequests: ImageGenRequest[];
}

function doubles(replies: Observable<ReplyEvent>[], drawing: Observable<ImageGenEvent>): Doubles {
  const saved: NewMessage[] = [];
  const replyContexts: string[][] = [];
  const drawRequests: ImageGenRequest[] = [];
  const messages = {
    saveWithImage: async (message: NewMessage) => void saved.push(message),
  } as unknown as MessagesRepository;
  const replyStream = {
    stream$: (context: readonly { content: string }[]) => {
      replyContexts.push(context.map((message) => message.content));
      return replies.shift() ?? of();
    },
  } as unknown as ReplyStreamService;
  const imageGen = {
    generate$: (request: ImageGenRequest) => {
      drawRequests.push(request);
      return drawing;
    },
  } as unknown as ImageGenService;
  const actions = new TurnActionsService(
    config,
    messages,
    replyStream,
    imageGen,
    new ImageUrlSigner(config),
  );
  return { actions, saved, replyContexts, drawRequests };
}

function live(actionType: TurnRun['actionType'], request: Partial<TurnRequestDto> = {}) {
  return {
    run: new TurnRun('turn-1', 'session-1', 'user-msg-1', actionType),
    request: { content: 'draw a fox', client_msg_id: 'key-00001', ...request } as TurnRequestDto,
    context: [{ role: 'user' as const, content: 'draw a fox' }],
  };
}

const run = (frames$: Observable<Frame>): Promise<Frame[]> =>
  lastValueFrom(frames$.pipe(toArray()));
const typesOf = (frames: Frame[]): string[] => frames.map((frame) => frame.type);

/** Plays one turn of `actionType` to its end: its frames, its run and what the doubles saw. */
async function play(
  actionType: TurnRun['actionType'],
  replies: Observable<ReplyEvent>[],
  drawing: Observable<ImageGenEvent>,
  request: Partial<TurnRequestDto> = {},
) {
  const seen = doubles(replies, drawing);
  const turn = live(actionType, request);
  const frames = await run(seen.actions.frames$(turn));
  return { ...seen, turn, frames, types: typesOf(frames) };
}

describe('TurnActionsService', () => {
  it('reply_text: meta → delta+ → done, and the run holds the complete text', async () => {
    const { types, turn } = await play('reply_text', [of(...reply('Hel', 'lo'))], of());

    expect(types).toEqual(['meta', 'delta', 'delta', 'done']);
    expect(turn.run.rows('cancelled')).toEqual([
      expect.objectContaining({ content: 'Hello', status: 'complete', model: 'chat-model' }),
    ]);
  });

  it('reply_text_image: the image (with its preview) follows done, stored before its frame', async () => {
    const { frames, types, saved, drawRequests } = await play(
      'reply_text_image',
      [of(...reply('A fox.'))],
      of(...drawn),
      { image: { force: true, partial_images: 1 } },
    );

    expect(types).toEqual([
      'meta',
      'delta',
      'done',
      'image_pending',
      'image_attempt',
      'image_partial',
      'image',
    ]);
    expect(drawRequests[0]).toEqual(
      expect.objectContaining({ partialImages: 1, subject: 'draw a fox' }),
    );
    expect(saved).toHaveLength(1);
    const image = frames.find((frame) => frame.type === 'image');
    expect(image).toEqual(
      expect.objectContaining({ data_url: `data:image/png;base64,${PNG.toString('base64')}` }),
    );
    expect(saved[0].metadata?.image?.image_id).toBeDefined();
    expect(image && 'url' in image && image.url).toContain(saved[0].metadata!.image!.image_id);
  });

  it('reply_image success: image_pending(X) → attempt → meta(X) → image(X) → done(X)', async () => {
    const { frames, types, turn, replyContexts } = await play('reply_image', [], of(...drawn));

    expect(types).toEqual([
      'image_pending',
      'image_attempt',
      'image_partial',
      'meta',
      'image',
      'done',
    ]);
    const ids = new Set(frames.map((frame) => ('message_id' in frame ? frame.message_id : null)));
    expect(ids.size).toBe(1);
    expect(replyContexts).toEqual([]);
    expect(turn.run.messageIds).toEqual([...ids]);
  });

  it('reply_image failure: image_failed(X), then a text reply Y ≠ X carrying the diagnostic', async () => {
    const { frames, types, turn, replyContexts } = await play(
      'reply_image',
      [of(...reply('Sorry.'))],
      of(...failedDrawing),
    );

    expect(types).toEqual([
      'image_pending',
      'image_attempt',
      'image_failed',
      'meta',
      'delta',
      'done',
    ]);
    const x = (frames[0] as { message_id: string }).message_id;
    const y = (frames[3] as { message_id: string }).message_id;
    expect(y).not.toBe(x);
    expect(turn.run.messageIds).toEqual([y]);
    expect(turn.run.rows('failed')[0].metadata?.image_failed).toEqual(
      expect.objectContaining({ reason: 'chain_exhausted', pending_message_id: x }),
    );
    // Y's model is told the picture could not be made.
    expect(replyContexts[0].at(-1)).toMatch(/could not be made/);
  });

  it('concurrent: the drawing starts with the turn, its frames wait for meta', async () => {
    const started: string[] = [];
    const text$ = timer(30).pipe(
      map(() => 'x'),
      mergeText(reply('slow ', 'text')),
    );
    const drawing = new Subject<ImageGenEvent>();
    const { actions } = doubles([text$], drawingNow(drawing, started));
    const turn = live('reply_text_image', { image: { force: true, concurrent: true } });
    const framesPromise = run(actions.frames$(turn));
    // The drawing is subscribed before any text arrived, and finishes first.
    expect(started).toEqual(['drawing']);
    for (const event of drawn) drawing.next(event);
    drawing.complete();
    const frames = await framesPromise;

    expect(typesOf(frames).slice(0, 2)).toEqual(['meta', 'image_pending']);
    expect(typesOf(frames).filter((type) => type.startsWith('image'))).toEqual([
      'image_pending',
      'image_attempt',
      'image_partial',
      'image',
    ]);
  });
});

/** Emits the reply events after `source` fires once (a reply that starts late). */
function mergeText(events: ReplyEvent[]) {
  return (source: Observable<string>): Observable<ReplyEvent> =>
    concat(source.pipe(map(() => events[0])), of(...events.slice(1)));
}

/** A drawing whose subscription is recorded (so a test can see when the work started). */
function drawingNow(source: Subject<ImageGenEvent>, started: string[]): Observable<ImageGenEvent> {
  return new Observable<ImageGenEvent>((subscriber) => {
    started.push('drawing');
    return source.subscribe(subscriber);
  });
}
