/**
 * The wire vocabulary of protocol.md, declared once. Every union type below derives from its
 * list, so a value added here reaches the server's validation, the OpenAPI document and the
 * client together. This folder imports nothing: the browser client ships it as is.
 */

/** api-reference §3: what a turn does. */
export const ACTION_TYPES = ['reply_text', 'reply_image', 'reply_text_image'] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

/** api-reference §3: `image.mode` of a forced image turn. */
export const IMAGE_MODES = ['text_image', 'image_only'] as const;
export type ImageMode = (typeof IMAGE_MODES)[number];

/** api-reference §3: `image.aspect_ratio`. */
export const ASPECT_RATIOS = ['1:1', '3:4', '4:3', '9:16', '16:9'] as const;
export type AspectRatio = (typeof ASPECT_RATIOS)[number];

/** api-reference §7: which prompt an image attempt sends. */
export const IMAGE_VARIANTS = ['composed', 'original', 'single'] as const;
export type ImageVariant = (typeof IMAGE_VARIANTS)[number];

/** api-reference §7: `image_failed.reason`. */
export const IMAGE_FAILURE_REASONS = ['chain_exhausted', 'zero_images', 'config_error'] as const;
export type ImageFailureReason = (typeof IMAGE_FAILURE_REASONS)[number];

/** api-reference §2: a stored attempt's `outcome`. */
export const ATTEMPT_OUTCOMES = [
  'ok',
  'transport',
  'status',
  'zero_images',
  'decode',
  'timeout',
] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

/** api-reference §2: `Message.role`. */
export const MESSAGE_ROLES = ['user', 'assistant'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

/** api-reference §2: `Message.status`, also what the stop route reports once a turn has ended (§8a). */
export const MESSAGE_STATUSES = ['complete', 'cancelled', 'failed'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

/** api-reference §8a: `on_disconnect`, what a turn does when its last client leaves. */
export const ON_DISCONNECT = ['cancel', 'continue'] as const;
export type OnDisconnect = (typeof ON_DISCONNECT)[number];

/** api-reference §5 + §8a: the `code` of an in-stream `error` frame. */
export const STREAM_ERROR_CODES = [
  'upstream_unavailable',
  'rate_limited',
  'timeout',
  'internal',
  'cancelled',
] as const;
export type StreamErrorCode = (typeof STREAM_ERROR_CODES)[number];

/**
 * api-reference §10 + §8a: the `code` of an error answered before a stream starts. Besides the protocol's list,
 * the codes the server's exception filter already answers for transport-level failures
 * (`forbidden` for a bad image signature, `payload_too_large`, `method_not_allowed`,
 * `unsupported_media_type`, `internal` for a 500).
 */
export const API_ERROR_CODES = [
  'invalid_payload',
  'unauthorized',
  'forbidden',
  'session_not_found',
  'not_found',
  'turn_not_found',
  'method_not_allowed',
  'duplicate_in_progress',
  'idempotency_conflict',
  'resume_expired',
  'payload_too_large',
  'unsupported_media_type',
  'image_disabled',
  'rate_limited',
  'internal',
  'unavailable',
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/** api-reference §8a: what the stop route answers — `cancelling` (202) while running, else the stored status. */
export const STOP_STATUSES = ['cancelling', ...MESSAGE_STATUSES] as const;
export type StopStatus = (typeof STOP_STATUSES)[number];

/** api-reference §13: `image.partial_images` bounds. */
export const MAX_PARTIAL_IMAGES = 3;

/** api-reference §3: `client_msg_id`. */
export const CLIENT_MSG_ID_PATTERN = '^[A-Za-z0-9_-]{8,64}$';
