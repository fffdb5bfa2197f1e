/**
 * The wire vocabulary (docs/api-reference.md), declared once. Types, database columns and
 * Swagger enums all derive from these lists. Pure TypeScript: the client package shares it.
 */

export const ACTION_TYPES = ['reply_text', 'reply_image', 'reply_text_image'] as const;
export type ActionType = (typeof ACTION_TYPES)[number];

export const IMAGE_MODES = ['text_image', 'image_only'] as const;
export type ImageMode = (typeof IMAGE_MODES)[number];

export const ASPECT_RATIOS = ['1:1', '3:4', '4:3', '9:16', '16:9'] as const;
export type AspectRatio = (typeof ASPECT_RATIOS)[number];

export const IMAGE_VARIANTS = ['composed', 'original', 'single'] as const;
export type ImageVariant = (typeof IMAGE_VARIANTS)[number];

export const IMAGE_FAILURE_REASONS = ['chain_exhausted', 'zero_images', 'config_error'] as const;
export type ImageFailureReason = (typeof IMAGE_FAILURE_REASONS)[number];

export const ATTEMPT_OUTCOMES = [
  'ok',
  'transport',
  'status',
  'zero_images',
  'decode',
  'timeout',
] as const;
export type AttemptOutcome = (typeof ATTEMPT_OUTCOMES)[number];

export const MESSAGE_ROLES = ['user', 'assistant'] as const;
export type MessageRole = (typeof MESSAGE_ROLES)[number];

export const MESSAGE_STATUSES = ['complete', 'cancelled', 'failed'] as const;
export type MessageStatus = (typeof MESSAGE_STATUSES)[number];

export const ON_DISCONNECT = ['cancel', 'continue'] as const;
export type OnDisconnect = (typeof ON_DISCONNECT)[number];

/** Codes of the in-stream `error` frame. */
export const STREAM_ERROR_CODES = [
  'upstream_unavailable',
  'rate_limited',
  'timeout',
  'internal',
  'cancelled',
] as const;
export type StreamErrorCode = (typeof STREAM_ERROR_CODES)[number];

/** Codes of the JSON errors answered before a stream starts (and by the REST routes). */
export const API_ERROR_CODES = [
  'invalid_payload',
  'unauthorized',
  'forbidden',
  'session_not_found',
  'not_found',
  'turn_not_found',
  'duplicate_in_progress',
  'idempotency_conflict',
  'resume_expired',
  'method_not_allowed',
  'payload_too_large',
  'unsupported_media_type',
  'image_disabled',
  'rate_limited',
  'internal',
  'unavailable',
] as const;
export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

/** Token usage as the upstream reports it. */
export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** One image attempt's outcome, as stored on the message and listed in its history. */
export interface Attempt {
  model: string;
  variant: ImageVariant;
  outcome: AttemptOutcome;
  status?: number;
  error_code?: string;
  ms: number;
}
