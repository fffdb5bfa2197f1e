import type { Frame, FrameOf } from '../../src/contract/index.js';
import { initialTurnState, reduceFrames, reduceTurn, type TurnState } from './reducer.js';

const meta = (id: string, action: FrameOf<'meta'>['action_type'], model = 'chat'): Frame => ({
  type: 'meta',
  message_id: id,
  action_type: action,
  model,
});
const delta = (id: string, content: string): Frame => ({ type: 'delta', message_id: id, content });
const done = (id: string, truncated = false): Frame => ({
  type: 'done',
  message_id: id,
  truncated,
  usage: truncated ? null : { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
  generation_id: truncated ? null : `gen-${id}`,
});
const pending = (id: string): Frame => ({ type: 'image_pending', message_id: id });
const attempt = (
  id: string,
  index: number,
  total: number,
  model = `p${index}`,
  variant: FrameOf<'image_attempt'>['variant'] = 'single',
): Frame => ({ type: 'image_attempt', message_id: id, model, variant, index, total });
const partial = (id: string, index: number, partialIndex: number): Frame => ({
  type: 'image_partial',
  message_id: id,
  index,
  partial_index: partialIndex,
  data_url: `data:image/png;base64,${index}-${partialIndex}`,
  mime: 'image/png',
});
const image = (id: string, model = 'p2'): Frame => ({
  type: 'image',
  message_id: id,
  url: `http://x/v1/images/${id}?exp=1&sig=s`,
  data_url: 'data:image/png;base64,FINAL',
  mime: 'image/png',
  width: 64,
  height: 32,
  image_prompt: 'a lighthouse at dusk',
  model,
  generation_id: 'gen-img',
});
const failed = (id: string, reason: FrameOf<'image_failed'>['reason']): Frame => ({
  type: 'image_failed',
  message_id: id,
  reason,
});
const final = (
  ids: string[],
  action: FrameOf<'final'>['action_type'],
  replayed = false,
): Frame => ({
  type: 'final',
  user_message_id: 'u1',
  message_ids: ids,
  action_type: action,
  replayed,
});
const error = (code: FrameOf<'error'>['code'], retryable = false): Frame => ({
  type: 'error',
  code,
  retryable,
  message: `${code} happened`,
  user_message: 'Something went wrong.',
});

const outcomes = (state: TurnState, index = 0): string[] =>
  (state.messages[index].image?.attempts ?? []).map((item) => `${item.model}:${item.outcome}`);

describe('reduceTurn', () => {
  it('reply_text: meta → delta+ → done → final', () => {
    const state = reduceFrames([
      meta('a1', 'reply_text', 'm1'),
      delta('a1', 'Hel'),
      delta('a1', 'lo'),
      done('a1'),
      final(['a1'], 'reply_text'),
    ]);
    expect(state.status).toBe('complete');
    expect(state.actionType).toBe('reply_text');
    expect(state.userMessageId).toBe('u1');
    expect(state.messages).toEqual([
      {
        id: 'a1',
        text: 'Hello',
        status: 'done',
        actionType: 'reply_text',
        model: 'm1',
        usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
        generationId: 'gen-a1',
        image: null,
        degradedFrom: null,
      },
    ]);
    expect(state.error).toBeNull();
  });

  it('shows text as it streams, before done', () => {
    const state = reduceFrames([meta('a1', 'reply_text'), delta('a1', 'Hi')]);
    expect(state.status).toBe('streaming');
    expect(state.messages[0]).toMatchObject({ text: 'Hi', status: 'streaming' });
  });

  it('reply_text_image: a failed attempt then a success', () => {
    const state = reduceFrames([
      meta('a1', 'reply_text_image'),
      delta('a1', 'Here it is.'),
      done('a1'),
      pending('a1'),
      attempt('a1', 1, 2, 'p1', 'composed'),
      attempt('a1', 2, 2, 'p1', 'original'),
      image('a1', 'p1'),
      final(['a1'], 'reply_text_image'),
    ]);
    const view = state.messages[0].image!;
    expect(view.status).toBe('ready');
    expect(view.total).toBe(2);
    expect(view.attempts.map((item) => [item.variant, item.outcome])).toEqual([
      ['composed', 'failed'],
      ['original', 'ok'],
    ]);
    expect(view.result).toEqual({
      url: 'http://x/v1/images/a1?exp=1&sig=s',
      dataUrl: 'data:image/png;base64,FINAL',
      mime: 'image/png',
      width: 64,
      height: 32,
      model: 'p1',
      imagePrompt: 'a lighthouse at dusk',
      generationId: 'gen-img',
    });
    expect(state.messages[0].text).toBe('Here it is.');
  });

  it('shows the spinner state between image_pending and the first attempt', () => {
    const state = reduceFrames([meta('a1', 'reply_text_image'), done('a1'), pending('a1')]);
    expect(state.messages[0].image).toMatchObject({ status: 'pending', attempts: [], total: null });
  });

  it('reply_text_image: chain exhausted', () => {
    const state = reduceFrames([
      meta('a1', 'reply_text_image'),
      delta('a1', 'text'),
      done('a1'),
      pending('a1'),
      attempt('a1', 1, 2),
      attempt('a1', 2, 2),
      failed('a1', 'chain_exhausted'),
      final(['a1'], 'reply_text_image'),
    ]);
    expect(state.status).toBe('complete');
    expect(state.messages[0].image).toMatchObject({
      status: 'failed',
      failureReason: 'chain_exhausted',
      result: null,
    });
    expect(outcomes(state)).toEqual(['p1:failed', 'p2:failed']);
  });

  it('reply_image success: image_pending(X) → attempt+ → meta(X) → image(X) → done(X) → final', () => {
    const state = reduceFrames([
      pending('x'),
      attempt('x', 1, 2),
      attempt('x', 2, 2),
      meta('x', 'reply_image', 'p2'),
      image('x'),
      done('x'),
      final(['x'], 'reply_image'),
    ]);
    expect(state.messages).toHaveLength(1);
    expect(state.messages[0]).toMatchObject({
      id: 'x',
      text: '',
      status: 'done',
      actionType: 'reply_image',
      degradedFrom: null,
    });
    expect(outcomes(state)).toEqual(['p1:failed', 'p2:ok']);
    expect(state.messages[0].image?.status).toBe('ready');
  });

  it('reply_image degradation: the text reply Y (≠ X) takes over the failure of X', () => {
    const frames = [
      pending('x'),
      attempt('x', 1, 2),
      attempt('x', 2, 2),
      failed('x', 'chain_exhausted'),
      meta('y', 'reply_text'),
      delta('y', 'I could not draw it.'),
      done('y'),
      final(['y'], 'reply_image'),
    ];
    const beforeMeta = reduceFrames(frames.slice(0, 4));
    expect(beforeMeta.messages.map((message) => message.id)).toEqual(['x']);
    expect(beforeMeta.messages[0].image?.status).toBe('failed');

    const state = reduceFrames(frames);
    expect(state.messages.map((message) => message.id)).toEqual(state.final!.message_ids);
    expect(state.messages[0]).toMatchObject({
      id: 'y',
      text: 'I could not draw it.',
      status: 'done',
      actionType: 'reply_text',
      degradedFrom: 'x',
    });
    expect(state.messages[0].image).toMatchObject({
      status: 'failed',
      failureReason: 'chain_exhausted',
    });
    expect(outcomes(state)).toEqual(['p1:failed', 'p2:failed']);
  });

  it('config_error: image_pending → image_failed with no attempt', () => {
    const state = reduceFrames([
      meta('a1', 'reply_text_image'),
      delta('a1', 'text'),
      done('a1'),
      pending('a1'),
      failed('a1', 'config_error'),
      final(['a1'], 'reply_text_image'),
    ]);
    expect(state.messages[0].image).toMatchObject({
      status: 'failed',
      failureReason: 'config_error',
      attempts: [],
    });
  });

  it('failure before any text: error alone', () => {
    const state = reduceFrames([error('upstream_unavailable', true)]);
    expect(state.status).toBe('failed');
    expect(state.messages).toEqual([]);
    expect(state.error).toEqual({
      code: 'upstream_unavailable',
      retryable: true,
      message: 'upstream_unavailable happened',
      userMessage: 'Something went wrong.',
    });
    expect(state.final).toBeNull();
  });

  it('failure after partial text: done(truncated) → error', () => {
    const state = reduceFrames([
      meta('a1', 'reply_text'),
      delta('a1', 'Half a sen'),
      done('a1', true),
      error('timeout'),
    ]);
    expect(state.status).toBe('failed');
    expect(state.messages[0]).toMatchObject({ text: 'Half a sen', status: 'truncated' });
    expect(state.error?.code).toBe('timeout');
  });

  it('api-reference §8a stop during the image: done(truncated) for nothing open, then error(cancelled)', () => {
    const state = reduceFrames([
      meta('a1', 'reply_text_image'),
      delta('a1', 'Drawing'),
      done('a1'),
      pending('a1'),
      attempt('a1', 1, 2),
      partial('a1', 1, 0),
      error('cancelled'),
    ]);
    expect(state.status).toBe('cancelled');
    expect(state.messages[0].status).toBe('done');
    expect(state.messages[0].image).toMatchObject({ status: 'stopped', preview: null });
    expect(outcomes(state)).toEqual(['p1:stopped']);
  });

  it('api-reference §8a stop while text streams', () => {
    const state = reduceFrames([
      meta('a1', 'reply_text'),
      delta('a1', 'Once upon'),
      done('a1', true),
      error('cancelled'),
    ]);
    expect(state.status).toBe('cancelled');
    expect(state.messages[0]).toMatchObject({ text: 'Once upon', status: 'truncated' });
  });

  it('api-reference §13 previews: a failed attempt’s previews are dropped when the next attempt starts', () => {
    const frames = [
      meta('a1', 'reply_text_image'),
      done('a1'),
      pending('a1'),
      attempt('a1', 1, 2),
      partial('a1', 1, 0),
      partial('a1', 1, 1),
    ];
    const first = reduceFrames(frames);
    expect(first.messages[0].image?.preview).toEqual({
      attemptIndex: 1,
      partialIndex: 1,
      dataUrl: 'data:image/png;base64,1-1',
      mime: 'image/png',
    });

    const second = reduceFrames([attempt('a1', 2, 2)], first);
    expect(second.messages[0].image?.preview).toBeNull();
    expect(second.messages[0].image?.attempts[0]).toMatchObject({ outcome: 'failed', previews: 2 });

    const late = reduceFrames([partial('a1', 1, 2)], second);
    expect(late.messages[0].image?.preview).toBeNull();

    const sharper = reduceFrames([partial('a1', 2, 0)], late);
    expect(sharper.messages[0].image?.preview?.attemptIndex).toBe(2);

    const finished = reduceFrames([image('a1'), final(['a1'], 'reply_text_image')], sharper);
    expect(finished.messages[0].image).toMatchObject({ status: 'ready', preview: null });
    expect(outcomes(finished)).toEqual(['p1:failed', 'p2:ok']);
  });

  it('api-reference §13 concurrent: text and image frames interleave, done and image in either order', () => {
    const head = [
      meta('a1', 'reply_text_image'),
      pending('a1'),
      delta('a1', 'A '),
      attempt('a1', 1, 1),
      partial('a1', 1, 0),
      delta('a1', 'picture'),
    ];
    for (const tail of [
      [done('a1'), image('a1')],
      [image('a1'), done('a1')],
    ]) {
      const state = reduceFrames([...head, ...tail, final(['a1'], 'reply_text_image')]);
      expect(state.status).toBe('complete');
      expect(state.messages).toHaveLength(1);
      expect(state.messages[0]).toMatchObject({ text: 'A picture', status: 'done' });
      expect(state.messages[0].image).toMatchObject({ status: 'ready', preview: null });
      expect(outcomes(state)).toEqual(['p1:ok']);
    }
  });

  it('marks a replayed turn', () => {
    const state = reduceFrames([
      meta('a1', 'reply_text'),
      delta('a1', 'all of it'),
      done('a1'),
      final(['a1'], 'reply_text', true),
    ]);
    expect(state.replayed).toBe(true);
  });

  it('ignores frame types it does not know and never mutates its input', () => {
    const before = reduceFrames([meta('a1', 'reply_text_image'), done('a1'), pending('a1')]);
    const copy = JSON.parse(JSON.stringify(before)) as TurnState;
    const unknown = { type: 'future_frame', message_id: 'a1' } as unknown as Frame;
    expect(reduceTurn(before, unknown)).toBe(before);
    reduceFrames(
      [attempt('a1', 1, 1), partial('a1', 1, 0), image('a1'), error('internal')],
      before,
    );
    expect(before).toEqual(copy);
    expect(initialTurnState).toEqual({
      status: 'streaming',
      messages: [],
      actionType: null,
      userMessageId: null,
      replayed: false,
      error: null,
      final: null,
    });
  });
});
