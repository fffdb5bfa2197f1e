import type {
  ActionType,
  Frame,
  ImageFailureReason,
  StreamErrorCode,
  Usage,
} from '../../contract/index.js';
import type { MessageMetadata } from '../../database/schema.js';
import type { AttemptStart, ImagePreview } from '../../image-gen/image-gen.types.js';

/**
 * The constructors of the turn stream's frames (docs/api-reference.md §5): every frame the live
 * path, the replay and the frame log send is built by one function below. The frame types
 * themselves are declared once, with their JSON schemas, in `src/contract/frames.ts`.
 */
export type { Frame, FrameOf } from '../../contract/index.js';

/** A stored image as messages keep it: what an `image` frame shows. */
export type StoredImage = NonNullable<MessageMetadata['image']>;

export function metaFrame(messageId: string, actionType: ActionType, model: string | null): Frame {
  return {
    type: 'meta',
    message_id: messageId,
    action_type: actionType,
    ...(model ? { model } : {}),
  };
}

export function deltaFrame(messageId: string, content: string): Frame {
  return { type: 'delta', message_id: messageId, content };
}

export function doneFrame(
  messageId: string,
  ending: { truncated: boolean; usage: Usage | null; generationId: string | null },
): Frame {
  return {
    type: 'done',
    message_id: messageId,
    truncated: ending.truncated,
    usage: ending.usage,
    generation_id: ending.generationId,
  };
}

/** The `done` of a message cut short by a failure or a stop. */
export function truncatedFrame(messageId: string): Frame {
  return doneFrame(messageId, { truncated: true, usage: null, generationId: null });
}

export function imagePendingFrame(messageId: string): Frame {
  return { type: 'image_pending', message_id: messageId };
}

export function imageAttemptFrame(messageId: string, attempt: AttemptStart): Frame {
  return {
    type: 'image_attempt',
    message_id: messageId,
    model: attempt.model,
    variant: attempt.variant,
    index: attempt.index,
    total: attempt.total,
  };
}

export function imagePartialFrame(messageId: string, preview: ImagePreview): Frame {
  return {
    type: 'image_partial',
    message_id: messageId,
    index: preview.index,
    partial_index: preview.partialIndex,
    data_url: preview.dataUrl,
    mime: preview.mime,
  };
}

/** `url` is the signed URL; `bytes` are inlined as `data_url` when given (IMAGE_INLINE). */
export function imageFrame(
  messageId: string,
  image: StoredImage,
  url: string,
  bytes: Buffer | null,
): Frame {
  return {
    type: 'image',
    message_id: messageId,
    url,
    ...(bytes ? { data_url: `data:${image.mime};base64,${bytes.toString('base64')}` } : {}),
    mime: image.mime,
    width: image.width,
    height: image.height,
    image_prompt: image.image_prompt,
    model: image.model,
    generation_id: image.generation_id,
  };
}

export function imageFailedFrame(messageId: string, reason: ImageFailureReason): Frame {
  return { type: 'image_failed', message_id: messageId, reason };
}

export function finalFrame(
  userMessageId: string,
  messageIds: readonly string[],
  actionType: ActionType,
  replayed: boolean,
): Frame {
  return {
    type: 'final',
    user_message_id: userMessageId,
    message_ids: [...messageIds],
    action_type: actionType,
    replayed,
  };
}

export function errorFrame(error: {
  code: StreamErrorCode;
  retryable: boolean;
  message: string;
  user_message: string;
}): Frame {
  return {
    type: 'error',
    code: error.code,
    retryable: error.retryable,
    message: error.message,
    user_message: error.user_message,
  };
}
