/**
 * The frames of the turn stream (docs/api-reference.md §5, §8a, §13), declared once: the JSON schemas published
 * in OpenAPI (api-reference §5) and the TypeScript types of server and client both derive from the
 * declarations below.
 */
import {
  boolean,
  type Infer,
  integer,
  type JsonSchema,
  literal,
  nullable,
  object,
  oneOf,
  optional,
  string,
  array,
} from './schema.js';
import {
  ACTION_TYPES,
  IMAGE_FAILURE_REASONS,
  IMAGE_VARIANTS,
  MAX_PARTIAL_IMAGES,
  STREAM_ERROR_CODES,
} from './vocabulary.js';

const messageId = string({ description: 'The assistant message this frame belongs to.' });
const actionType = oneOf(ACTION_TYPES);
const generationId = nullable(string({ description: "The upstream's generation id." }));

const usage = nullable(
  object({
    prompt_tokens: integer({ minimum: 0 }),
    completion_tokens: integer({ minimum: 0 }),
    total_tokens: integer({ minimum: 0 }),
  }),
);

const FRAME_DECLARATIONS = {
  meta: object(
    {
      type: literal('meta'),
      message_id: messageId,
      action_type: actionType,
      model: optional(string({ description: 'The chat model that served the reply.' })),
    },
    { description: 'A message starts.' },
  ),
  delta: object(
    { type: literal('delta'), message_id: messageId, content: string() },
    { description: 'A piece of the reply text.' },
  ),
  done: object(
    {
      type: literal('done'),
      message_id: messageId,
      truncated: boolean({ description: 'True when the text stopped early (error, stop).' }),
      usage,
      generation_id: generationId,
    },
    { description: "The message's text is complete." },
  ),
  image_pending: object(
    { type: literal('image_pending'), message_id: messageId },
    { description: 'An image is now being made for this message.' },
  ),
  image_attempt: object(
    {
      type: literal('image_attempt'),
      message_id: messageId,
      model: string(),
      variant: oneOf(IMAGE_VARIANTS),
      index: integer({ minimum: 1, description: '1-based position in the plan.' }),
      total: integer({ minimum: 1, description: 'Length of the plan.' }),
    },
    { description: 'An image attempt begins, before its HTTP call.' },
  ),
  image_partial: object(
    {
      type: literal('image_partial'),
      message_id: messageId,
      index: integer({ minimum: 1, description: "The attempt's index." }),
      partial_index: integer({
        minimum: 0,
        maximum: MAX_PARTIAL_IMAGES - 1,
        description: '0-based, rising.',
      }),
      data_url: string({ description: 'A base64 `data:` URL of the preview.' }),
      mime: string(),
    },
    { description: "A preview of the running attempt's picture (api-reference §13)." },
  ),
  image: object(
    {
      type: literal('image'),
      message_id: messageId,
      url: string({ description: 'Signed; loads in <img> with no header.' }),
      data_url: optional(string({ description: 'Base64 `data:` URL, when inline images are on.' })),
      mime: string(),
      width: integer({ minimum: 1 }),
      height: integer({ minimum: 1 }),
      image_prompt: nullable(string()),
      model: string(),
      generation_id: generationId,
    },
    { description: 'The finished picture.' },
  ),
  image_failed: object(
    {
      type: literal('image_failed'),
      message_id: messageId,
      reason: oneOf(IMAGE_FAILURE_REASONS),
    },
    { description: 'No picture this turn.' },
  ),
  final: object(
    {
      type: literal('final'),
      user_message_id: string(),
      message_ids: array(string(), { description: 'The assistant message ids, in order.' }),
      action_type: actionType,
      replayed: boolean({ description: 'True when the frames come from the stored turn.' }),
    },
    { description: 'The turn succeeded; always the last frame.' },
  ),
  error: object(
    {
      type: literal('error'),
      code: oneOf(STREAM_ERROR_CODES),
      retryable: boolean(),
      message: string(),
      user_message: string({ description: 'A sentence fit to show an end user.' }),
    },
    { description: 'The turn failed or was stopped; always the last frame.' },
  ),
};

type Declarations = typeof FRAME_DECLARATIONS;

export type FrameType = keyof Declarations;
export type FrameOf<T extends FrameType> = Infer<Declarations[T]>;
/** Any frame of the turn stream. */
export type Frame = { [T in FrameType]: FrameOf<T> }[FrameType];
/** The frames that end a turn (exactly one of them, always last). */
export type TerminalFrame = FrameOf<'final'> | FrameOf<'error'>;

export type MetaFrame = FrameOf<'meta'>;
export type DeltaFrame = FrameOf<'delta'>;
export type DoneFrame = FrameOf<'done'>;
export type ImagePendingFrame = FrameOf<'image_pending'>;
export type ImageAttemptFrame = FrameOf<'image_attempt'>;
export type ImagePartialFrame = FrameOf<'image_partial'>;
export type ImageFrame = FrameOf<'image'>;
export type ImageFailedFrame = FrameOf<'image_failed'>;
export type FinalFrame = FrameOf<'final'>;
export type ErrorFrame = FrameOf<'error'>;
export type Usage = NonNullable<DoneFrame['usage']>;

/** The OpenAPI component name of each frame's schema. */
export const FRAME_SCHEMA_NAMES = {
  meta: 'MetaFrame',
  delta: 'DeltaFrame',
  done: 'DoneFrame',
  image_pending: 'ImagePendingFrame',
  image_attempt: 'ImageAttemptFrame',
  image_partial: 'ImagePartialFrame',
  image: 'ImageFrame',
  image_failed: 'ImageFailedFrame',
  final: 'FinalFrame',
  error: 'ErrorFrame',
} as const satisfies Record<FrameType, string>;
export type FrameSchemaName = (typeof FRAME_SCHEMA_NAMES)[FrameType];

export const FRAME_TYPES = Object.keys(FRAME_DECLARATIONS) as readonly FrameType[];

/** Schema name → JSON schema of that frame (closed objects, `required` as the protocol says). */
export const FRAME_SCHEMAS = Object.fromEntries(
  FRAME_TYPES.map((type) => [FRAME_SCHEMA_NAMES[type], FRAME_DECLARATIONS[type].json]),
) as Record<FrameSchemaName, JsonSchema>;

/** True for the frame types this contract knows (clients ignore the others, api-reference §4). */
export function isFrameType(type: unknown): type is FrameType {
  return typeof type === 'string' && Object.hasOwn(FRAME_DECLARATIONS, type);
}

export function isTerminalFrame(frame: Frame): frame is TerminalFrame {
  return frame.type === 'final' || frame.type === 'error';
}

export interface FrameOpenApi {
  /** To merge into `components.schemas`. */
  readonly schemas: Record<FrameSchemaName, JsonSchema>;
  /** The schema of a `200 text/event-stream` response: one frame per `data:` line. */
  readonly eventStream: JsonSchema;
}

/**
 * The OpenAPI pieces of api-reference §5: the frame schemas as components, and the turn/resume routes'
 * event-stream schema as a `oneOf` of references with a `type` discriminator.
 */
export function frameOpenApi(componentsPath = '#/components/schemas/'): FrameOpenApi {
  const mapping = Object.fromEntries(
    FRAME_TYPES.map((type) => [type, `${componentsPath}${FRAME_SCHEMA_NAMES[type]}`]),
  );
  return {
    schemas: JSON.parse(JSON.stringify(FRAME_SCHEMAS)) as Record<FrameSchemaName, JsonSchema>,
    eventStream: {
      description:
        'Each SSE event is `id: <n>` + `data: <one frame as compact JSON>`; `: ping` comments ' +
        'keep the connection alive. Clients ignore frame types they do not know.',
      oneOf: Object.values(mapping).map(($ref) => ({ $ref })),
      discriminator: { propertyName: 'type', mapping },
    },
  };
}
