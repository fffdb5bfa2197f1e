import { Ajv } from 'ajv';
import { frameContract } from '../../test/harness/frame-contract.js';
import {
  type Frame,
  type FrameOf,
  type FrameType,
  FRAME_SCHEMA_NAMES,
  FRAME_SCHEMAS,
  FRAME_TYPES,
  frameOpenApi,
  isFrameType,
} from './frames.js';

/** One valid frame of every type, typed by the contract (tsc proves the type accepts them). */
const SAMPLES: Frame[] = [
  { type: 'meta', message_id: 'm1', action_type: 'reply_text', model: 'chat-1' },
  { type: 'meta', message_id: 'm1', action_type: 'reply_image' },
  { type: 'delta', message_id: 'm1', content: 'Hello' },
  {
    type: 'done',
    message_id: 'm1',
    truncated: false,
    usage: { prompt_tokens: 1, completion_tokens: 2, total_tokens: 3 },
    generation_id: 'gen-1',
  },
  { type: 'done', message_id: 'm1', truncated: true, usage: null, generation_id: null },
  { type: 'image_pending', message_id: 'm1' },
  {
    type: 'image_attempt',
    message_id: 'm1',
    model: 'p1',
    variant: 'composed',
    index: 1,
    total: 2,
  },
  {
    type: 'image_partial',
    message_id: 'm1',
    index: 1,
    partial_index: 0,
    data_url: 'data:image/png;base64,AAAA',
    mime: 'image/png',
  },
  {
    type: 'image',
    message_id: 'm1',
    url: 'http://localhost/v1/images/i1?exp=1&sig=s',
    data_url: 'data:image/png;base64,AAAA',
    mime: 'image/png',
    width: 64,
    height: 48,
    image_prompt: null,
    model: 'p1',
    generation_id: null,
  },
  {
    type: 'image',
    message_id: 'm1',
    url: 'http://localhost/v1/images/i1?exp=1&sig=s',
    mime: 'image/jpeg',
    width: 1,
    height: 1,
    image_prompt: 'a cat',
    model: 'p1',
    generation_id: 'gen-img-1',
  },
  { type: 'image_failed', message_id: 'm1', reason: 'config_error' },
  {
    type: 'final',
    user_message_id: 'u1',
    message_ids: ['m1'],
    action_type: 'reply_text_image',
    replayed: false,
  },
  {
    type: 'error',
    code: 'cancelled',
    retryable: false,
    message: 'Stopped.',
    user_message: 'The reply was stopped.',
  },
];

/**
 * Frames the contract forbids. Each `@ts-expect-error` proves the TypeScript type rejects it;
 * the tests prove the JSON schema rejects it too — so type and schema agree.
 */
const WRONG: Array<[string, unknown]> = [
  // @ts-expect-error message_id is required
  ['meta without message_id', { type: 'meta', action_type: 'reply_text' } satisfies Frame],
  [
    'meta with an unknown action',
    // @ts-expect-error action_type is a closed vocabulary
    { type: 'meta', message_id: 'm', action_type: 'reply_video' } satisfies Frame,
  ],
  [
    'delta with an extra field',
    // @ts-expect-error frames are closed objects
    { type: 'delta', message_id: 'm', content: 'x', extra: 1 } satisfies Frame,
  ],
  [
    'done without usage',
    // @ts-expect-error usage is required (null when unknown)
    { type: 'done', message_id: 'm', truncated: false, generation_id: null } satisfies Frame,
  ],
  [
    'image with a null model',
    {
      type: 'image',
      message_id: 'm',
      url: 'u',
      mime: 'image/png',
      width: 1,
      height: 1,
      image_prompt: null,
      // @ts-expect-error model is not nullable
      model: null,
      generation_id: null,
    } satisfies Frame,
  ],
  [
    'image_attempt with an unknown variant',
    {
      type: 'image_attempt',
      message_id: 'm',
      model: 'p',
      // @ts-expect-error variant is a closed vocabulary
      variant: 'remix',
      index: 1,
      total: 1,
    } satisfies Frame,
  ],
  [
    'image_partial with a string index',
    {
      type: 'image_partial',
      message_id: 'm',
      // @ts-expect-error index is a number
      index: '1',
      partial_index: 0,
      data_url: 'data:,',
      mime: 'image/png',
    } satisfies Frame,
  ],
  [
    'error with a pre-stream code',
    {
      type: 'error',
      // @ts-expect-error in-stream codes only
      code: 'session_not_found',
      retryable: false,
      message: 'm',
      user_message: 'u',
    } satisfies Frame,
  ],
  [
    'final without replayed',
    // @ts-expect-error replayed is required
    { type: 'final', user_message_id: 'u', message_ids: [], action_type: 'reply_text' } as Frame,
  ],
];

const ajv = new Ajv({ allErrors: true, strict: false });
const validators = new Map(
  FRAME_TYPES.map((type) => [type, ajv.compile(FRAME_SCHEMAS[FRAME_SCHEMA_NAMES[type]])]),
);
const valid = (frame: unknown): boolean => {
  const type = (frame as { type?: unknown }).type;
  return isFrameType(type) && validators.get(type)!(frame) === true;
};

/** A minimal OpenAPI document publishing the frames the way the server's document does. */
function document(without?: FrameType): Record<string, unknown> {
  const { schemas, eventStream } = frameOpenApi();
  const { mapping } = eventStream.discriminator as { mapping: Record<string, string> };
  const kept = Object.entries(mapping).filter(([type]) => type !== without);
  const schema = {
    ...eventStream,
    oneOf: kept.map(([, $ref]) => ({ $ref })),
    discriminator: { propertyName: 'type', mapping: Object.fromEntries(kept) },
  };
  const stream = { 200: { content: { 'text/event-stream': { schema } } } };
  return {
    openapi: '3.0.0',
    paths: {
      '/v1/sessions/{session_id}/turns': { post: { responses: stream } },
      '/v1/sessions/{session_id}/turns/{client_msg_id}/events': { get: { responses: stream } },
    },
    components: { schemas: { Other: { type: 'object' }, ...schemas } },
  };
}

describe('frame schemas', () => {
  it('has a sample for every frame type, and the schema accepts each sample', () => {
    expect(new Set(SAMPLES.map((frame) => frame.type))).toEqual(new Set(FRAME_TYPES));
    for (const frame of SAMPLES) expect([frame, valid(frame)]).toEqual([frame, true]);
  });

  it.each(WRONG)('rejects %s (as the type does)', (_label, frame) => {
    expect(valid(frame)).toBe(false);
  });

  it('names every schema, closes every object and requires what the protocol requires', () => {
    expect(Object.keys(FRAME_SCHEMAS).sort()).toEqual(
      [
        'MetaFrame',
        'DeltaFrame',
        'DoneFrame',
        'ImagePendingFrame',
        'ImageAttemptFrame',
        'ImagePartialFrame',
        'ImageFrame',
        'ImageFailedFrame',
        'FinalFrame',
        'ErrorFrame',
      ].sort(),
    );
    for (const schema of Object.values(FRAME_SCHEMAS)) {
      expect(schema.additionalProperties).toBe(false);
      expect(schema.required).toContain('type');
    }
    expect(FRAME_SCHEMAS.MetaFrame.required).toEqual(['type', 'message_id', 'action_type']);
    expect(FRAME_SCHEMAS.ImageFrame.required).not.toContain('data_url');
    expect(FRAME_SCHEMAS.ImageFrame.required).toContain('image_prompt');
    const done = FRAME_SCHEMAS.DoneFrame.properties as Record<string, Record<string, unknown>>;
    expect(done.usage.nullable).toBe(true);
    expect(done.generation_id.nullable).toBe(true);
    expect(done.truncated.nullable).toBeUndefined();
  });

  it('publishes a oneOf with a type discriminator mapping every frame', () => {
    const { eventStream } = frameOpenApi();
    const mapping = (eventStream.discriminator as { mapping: Record<string, string> }).mapping;
    expect(Object.keys(mapping).sort()).toEqual([...FRAME_TYPES].sort());
    expect(mapping.image_partial).toBe('#/components/schemas/ImagePartialFrame');
    expect(eventStream.oneOf).toEqual(Object.values(mapping).map(($ref) => ({ $ref })));
    expect((eventStream.discriminator as { propertyName: string }).propertyName).toBe('type');
  });

  it('hands out copies, so a caller editing the document cannot change the contract', () => {
    const { schemas } = frameOpenApi();
    (schemas.MetaFrame.required as string[]).push('model');
    expect(FRAME_SCHEMAS.MetaFrame.required).not.toContain('model');
  });

  it('derives the frame types (a compile-time check)', () => {
    const attempt: FrameOf<'image_attempt'> = {
      type: 'image_attempt',
      message_id: 'm',
      model: 'p',
      variant: 'single',
      index: 1,
      total: 1,
    };
    expect(valid(attempt)).toBe(true);
  });
});

describe('frameContract (test/harness)', () => {
  it('accepts the frames the document describes', () => {
    const contract = frameContract(document());
    expect([...contract.types].sort()).toEqual([...FRAME_TYPES].sort());
    expect(contract.check(SAMPLES)).toEqual([]);
    expect(() => contract.assert(SAMPLES)).not.toThrow();
  });

  it('names every frame that does not match, and unknown types', () => {
    const contract = frameContract(document());
    const problems = contract.check([
      SAMPLES[0],
      { type: 'delta', message_id: 'm', content: 'x', extra: 1 },
      { type: 'surprise' },
    ]);
    expect(problems).toEqual([
      'frame 2 (delta): / must NOT have additional properties',
      'frame 3 (surprise): type not described by the document',
    ]);
    expect(() => contract.assert(WRONG.map(([, frame]) => frame))).toThrow(
      /frames do not match the OpenAPI document/,
    );
    for (const [, frame] of WRONG) expect(contract.check([frame])).not.toEqual([]);
  });

  it('rejects a frame whose schema the document lacks', () => {
    const contract = frameContract(document('image_partial'));
    const partial = SAMPLES.find((frame) => frame.type === 'image_partial');
    expect(contract.check([partial])).toEqual([
      'frame 1 (image_partial): type not described by the document',
    ]);
    expect(frameContract(document()).check([partial])).toEqual([]);
  });

  it('refuses a document without a described event stream', () => {
    expect(() => frameContract({ openapi: '3.0.0', paths: {} })).toThrow(/text\/event-stream/);
    const untyped = {
      paths: {
        '/t': {
          post: {
            responses: {
              200: { content: { 'text/event-stream': { schema: { type: 'string' } } } },
            },
          },
        },
      },
    };
    expect(() => frameContract(untyped)).toThrow(/discriminator/);
  });
});
