/**
 * The JSON shapes of the REST routes (docs/api-reference.md §2, §3 request, §10 errors, §8a stop), as plain types
 * over the vocabulary lists. The server's DTO classes implement them; the client returns them.
 */
import type {
  ActionType,
  ApiErrorCode,
  AspectRatio,
  AttemptOutcome,
  ImageFailureReason,
  ImageMode,
  ImageVariant,
  MessageRole,
  MessageStatus,
  OnDisconnect,
  StopStatus,
} from './vocabulary.js';

export interface Session {
  id: string;
  title: string | null;
  system_prompt: string | null;
  /** ISO 8601. */
  created_at: string;
  updated_at: string;
}

export interface CreateSessionRequest {
  /** ≤ 200 characters. */
  title?: string;
  /** ≤ 8000 characters; sent to the model before every turn. */
  system_prompt?: string;
}

/** A page of a list; pass `next_cursor` back (`cursor` for sessions, `before` for messages). */
export interface Page<T> {
  items: T[];
  next_cursor: string | null;
}

export type SessionPage = Page<Session>;
export type MessagePage = Page<Message>;

export interface ListSessionsQuery {
  /** 1..100. */
  limit?: number;
  cursor?: string;
}

export interface ListMessagesQuery {
  /** 1..100. */
  limit?: number;
  /** A message id: the page holds the messages older than it (newest first). */
  before?: string;
}

/** One image attempt as stored on the message. */
export interface Attempt {
  model: string;
  variant: ImageVariant;
  outcome: AttemptOutcome;
  /** Upstream HTTP status, for `status`. */
  status?: number;
  /** The upstream's error code, when it sent one. */
  error_code?: string;
  ms: number;
}

export interface MessageImage {
  /** Signed; loads in `<img>` with no header; expires. */
  url: string;
  mime: string;
  model: string;
  image_prompt: string | null;
  width: number;
  height: number;
  durable_url: string | null;
  attempts: Attempt[];
}

export interface MessageImageFailed {
  reason: ImageFailureReason;
  attempts: Attempt[];
}

export interface Message {
  id: string;
  session_id: string;
  role: MessageRole;
  content: string;
  client_msg_id: string | null;
  action_type: ActionType | null;
  status: MessageStatus;
  model: string | null;
  image: MessageImage | null;
  image_failed: MessageImageFailed | null;
  created_at: string;
}

/** `POST …/messages/:message_id/image`: the client's durable copy of a generated image. */
export interface ImageWriteBackRequest {
  /** Absolute http(s), ≤ 2048. */
  url: string;
}

export interface TurnImageOptions {
  force?: boolean;
  mode?: ImageMode;
  /** Tried first, then the configured chain. */
  model?: string;
  /** ≤ 2000; what to draw, defaults to the message. */
  image_prompt?: string;
  aspect_ratio?: AspectRatio;
  /** Absolute http(s), ≤ 2048. */
  reference_image_url?: string;
  /** api-reference §13: previews per attempt, 0..3 (default 0). */
  partial_images?: number;
  /** api-reference §13: draw while the text streams (reply_text_image only). */
  concurrent?: boolean;
}

export interface TurnRequest {
  /** ≤ 8000; not blank, except for a forced image_only turn. */
  content: string;
  /** The idempotency key, `^[A-Za-z0-9_-]{8,64}$`. */
  client_msg_id: string;
  /** Absent → text only; present → the planner decides, unless `force`. */
  image?: TurnImageOptions;
  /** api-reference §8a: what the turn does when its last client leaves (default `cancel`). */
  on_disconnect?: OnDisconnect;
}

/** The body of every error answered before a stream starts (api-reference §10, §8a). */
export interface ApiErrorBody {
  code: ApiErrorCode;
  message: string;
  /** A sentence fit to show an end user. */
  user_message?: string;
  /** With 409 `duplicate_in_progress`. */
  original_user_message_id?: string;
  /** With 400 `invalid_payload`: one line per rejected field. */
  details?: string[];
  [extra: string]: unknown;
}

/** `POST …/turns/:client_msg_id/cancel` (api-reference §8a). */
export interface StopResult {
  status: StopStatus;
}
