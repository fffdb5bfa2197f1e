import { from, type Observable } from 'rxjs';
import type { ActionType, StoredUsage } from '../database/schema.js';
import type { ImageFailureReason, ImageVariant } from '../image-gen/image-gen.types.js';

/** The JSON frames of the turn stream (protocol §3 "Frames"). */
export type Frame =
  | { type: 'meta'; message_id: string; action_type: ActionType; model?: string }
  | { type: 'delta'; message_id: string; content: string }
  | {
      type: 'done';
      message_id: string;
      truncated: boolean;
      usage: StoredUsage | null;
      generation_id: string | null;
    }
  | { type: 'image_pending'; message_id: string }
  | {
      type: 'image_attempt';
      message_id: string;
      model: string;
      variant: ImageVariant;
      index: number;
      total: number;
    }
  | {
      type: 'image';
      message_id: string;
      url: string;
      data_url?: string;
      mime: string;
      width: number;
      height: number;
      image_prompt: string | null;
      model: string;
      generation_id: string | null;
    }
  | { type: 'image_failed'; message_id: string; reason: ImageFailureReason }
  | {
      type: 'final';
      user_message_id: string;
      message_ids: string[];
      action_type: ActionType;
      replayed: boolean;
    }
  | {
      type: 'error';
      code: TurnErrorCode;
      retryable: boolean;
      message: string;
      user_message: string;
    };

export type TurnErrorCode = 'upstream_unavailable' | 'rate_limited' | 'timeout' | 'internal';

/** What Nest's SSE writer takes: `id:` + `data:`, or a `: ping` comment. */
export type SseMessage = { id: string; data: Frame } | { comment: string };

export const PING: SseMessage = { comment: 'ping' };

/** Frames as an Observable, typed (rxjs's variadic `of` infers a tuple, not `Frame`). */
export function emit(...frames: Frame[]): Observable<Frame> {
  return from(frames);
}
