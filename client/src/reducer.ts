import type {
  ActionType,
  ErrorFrame,
  FinalFrame,
  Frame,
  ImageFailureReason,
  ImageVariant,
  StreamErrorCode,
  Usage,
} from '../../src/contract/index.js';

/**
 * A pure fold of a turn's frames into one view model, so any UI (React, Vue, a terminal)
 * renders a turn from one state object: `state = reduceTurn(state, frame)` per frame.
 */

/** `streaming` until the message's `done`; `truncated` when it stopped early. */
export type TextStatus = 'streaming' | 'done' | 'truncated';

/**
 * What is known of an attempt from the stream: `running` until the next attempt or
 * `image_failed` (→ `failed`) or `image` (→ `ok`) follows, `stopped` when the turn ended first.
 * The precise failure (`timeout`, `status`, …) is stored on the message (`Message.image*.attempts`).
 */
export type AttemptStatus = 'running' | 'ok' | 'failed' | 'stopped';

export interface AttemptView {
  readonly index: number;
  readonly total: number;
  readonly model: string;
  readonly variant: ImageVariant;
  readonly outcome: AttemptStatus;
  /** Previews received for this attempt (api-reference §13). */
  readonly previews: number;
}

export interface PreviewView {
  readonly attemptIndex: number;
  readonly partialIndex: number;
  readonly dataUrl: string;
  readonly mime: string;
}

export interface ImageResultView {
  readonly url: string;
  /** Inline copy, when the server sends one: show it without a second request. */
  readonly dataUrl: string | null;
  readonly mime: string;
  readonly width: number;
  readonly height: number;
  readonly model: string;
  readonly imagePrompt: string | null;
  readonly generationId: string | null;
}

export interface ImageView {
  /** `stopped`: the turn ended (error, stop) while the image was still being made. */
  readonly status: 'pending' | 'ready' | 'failed' | 'stopped';
  readonly attempts: readonly AttemptView[];
  /** The plan's length, once the first attempt began. */
  readonly total: number | null;
  /** The running attempt's latest preview; cleared when an attempt ends. */
  readonly preview: PreviewView | null;
  readonly result: ImageResultView | null;
  readonly failureReason: ImageFailureReason | null;
}

export interface MessageView {
  readonly id: string;
  readonly text: string;
  readonly status: TextStatus;
  /** Null until the message's `meta`. */
  readonly actionType: ActionType | null;
  readonly model: string | null;
  readonly usage: Usage | null;
  readonly generationId: string | null;
  readonly image: ImageView | null;
  /**
   * reply_image degradation (api-reference §6): the id of the picture-only message whose image failed and
   * which this text reply replaced. Its image state (the failure) moved here, as the server
   * stores it.
   */
  readonly degradedFrom: string | null;
}

export type TurnStatus = 'streaming' | 'complete' | 'failed' | 'cancelled';

export interface TurnError {
  readonly code: StreamErrorCode;
  readonly retryable: boolean;
  readonly message: string;
  readonly userMessage: string;
}

export interface TurnState {
  /** `complete` after `final`; `cancelled` after `error{cancelled}`; `failed` after another error. */
  readonly status: TurnStatus;
  /** The assistant messages in order (after `final`, exactly `final.message_ids`). */
  readonly messages: readonly MessageView[];
  readonly actionType: ActionType | null;
  readonly userMessageId: string | null;
  /** True when the server replayed a finished turn from its store. */
  readonly replayed: boolean;
  readonly error: TurnError | null;
  readonly final: FinalFrame | null;
}

export const initialTurnState: TurnState = {
  status: 'streaming',
  messages: [],
  actionType: null,
  userMessageId: null,
  replayed: false,
  error: null,
  final: null,
};

const newMessage = (id: string): MessageView => ({
  id,
  text: '',
  status: 'streaming',
  actionType: null,
  model: null,
  usage: null,
  generationId: null,
  image: null,
  degradedFrom: null,
});

const pendingImage: ImageView = {
  status: 'pending',
  attempts: [],
  total: null,
  preview: null,
  result: null,
  failureReason: null,
};

/** Applies `update` to the message (created when the frame is its first). */
function withMessage(
  state: TurnState,
  id: string,
  update: (message: MessageView) => MessageView,
): TurnState {
  const index = state.messages.findIndex((message) => message.id === id);
  if (index < 0) return { ...state, messages: [...state.messages, update(newMessage(id))] };
  const messages = [...state.messages];
  messages[index] = update(messages[index]);
  return { ...state, messages };
}

function withImage(
  state: TurnState,
  id: string,
  update: (image: ImageView) => ImageView,
): TurnState {
  return withMessage(state, id, (message) => ({
    ...message,
    image: update(message.image ?? pendingImage),
  }));
}

/** Ends the running attempt (there is at most one) with `outcome`. */
const settleAttempts = (attempts: readonly AttemptView[], outcome: AttemptStatus): AttemptView[] =>
  attempts.map((attempt) => (attempt.outcome === 'running' ? { ...attempt, outcome } : attempt));

/** A picture-only message whose image failed before any `meta`: the degraded X of api-reference §6. */
const isFailedPlaceholder = (message: MessageView): boolean =>
  message.actionType === null && message.text === '' && message.image?.status === 'failed';

function onMeta(state: TurnState, frame: Extract<Frame, { type: 'meta' }>): TurnState {
  const placeholder = state.messages.find(
    (message) => message.id !== frame.message_id && isFailedPlaceholder(message),
  );
  const base = placeholder
    ? { ...state, messages: state.messages.filter((message) => message !== placeholder) }
    : state;
  return withMessage(
    { ...base, actionType: base.actionType ?? frame.action_type },
    frame.message_id,
    (message) => ({
      ...message,
      actionType: frame.action_type,
      model: frame.model ?? message.model,
      ...(placeholder ? { image: placeholder.image, degradedFrom: placeholder.id } : {}),
    }),
  );
}

function onError(state: TurnState, frame: ErrorFrame): TurnState {
  return {
    ...state,
    status: frame.code === 'cancelled' ? 'cancelled' : 'failed',
    error: {
      code: frame.code,
      retryable: frame.retryable,
      message: frame.message,
      userMessage: frame.user_message,
    },
    messages: state.messages.map((message) => ({
      ...message,
      status: message.status === 'streaming' ? 'truncated' : message.status,
      image:
        message.image?.status === 'pending'
          ? {
              ...message.image,
              status: 'stopped',
              preview: null,
              attempts: settleAttempts(message.image.attempts, 'stopped'),
            }
          : message.image,
    })),
  };
}

export function reduceTurn(state: TurnState, frame: Frame): TurnState {
  switch (frame.type) {
    case 'meta':
      return onMeta(state, frame);
    case 'delta':
      return withMessage(state, frame.message_id, (message) => ({
        ...message,
        text: message.text + frame.content,
      }));
    case 'done':
      return withMessage(state, frame.message_id, (message) => ({
        ...message,
        status: frame.truncated ? 'truncated' : 'done',
        usage: frame.usage,
        generationId: frame.generation_id,
      }));
    case 'image_pending':
      return withImage(state, frame.message_id, (image) => image);
    case 'image_attempt':
      return withImage(state, frame.message_id, (image) => ({
        ...image,
        total: frame.total,
        // A new attempt makes the previous one's previews stale.
        preview: null,
        attempts: [
          ...settleAttempts(image.attempts, 'failed'),
          {
            index: frame.index,
            total: frame.total,
            model: frame.model,
            variant: frame.variant,
            outcome: 'running',
            previews: 0,
          },
        ],
      }));
    case 'image_partial':
      return withImage(state, frame.message_id, (image) => {
        const running = image.attempts.find((attempt) => attempt.outcome === 'running');
        // A preview of an attempt that is no longer running would show a stale picture.
        if (running?.index !== frame.index) return image;
        return {
          ...image,
          preview: {
            attemptIndex: frame.index,
            partialIndex: frame.partial_index,
            dataUrl: frame.data_url,
            mime: frame.mime,
          },
          attempts: image.attempts.map((attempt) =>
            attempt === running ? { ...attempt, previews: attempt.previews + 1 } : attempt,
          ),
        };
      });
    case 'image':
      return withImage(state, frame.message_id, (image) => ({
        ...image,
        status: 'ready',
        preview: null,
        attempts: settleAttempts(image.attempts, 'ok'),
        result: {
          url: frame.url,
          dataUrl: frame.data_url ?? null,
          mime: frame.mime,
          width: frame.width,
          height: frame.height,
          model: frame.model,
          imagePrompt: frame.image_prompt,
          generationId: frame.generation_id,
        },
      }));
    case 'image_failed':
      return withImage(state, frame.message_id, (image) => ({
        ...image,
        status: 'failed',
        preview: null,
        attempts: settleAttempts(image.attempts, 'failed'),
        failureReason: frame.reason,
      }));
    case 'final':
      return {
        ...state,
        status: 'complete',
        final: frame,
        actionType: frame.action_type,
        userMessageId: frame.user_message_id,
        replayed: frame.replayed,
      };
    case 'error':
      return onError(state, frame);
    default:
      // A frame type newer than this client (api-reference §4: additive): nothing to show.
      return state;
  }
}

/** Folds a whole list of frames (a replay, a test). */
export const reduceFrames = (
  frames: Iterable<Frame>,
  state: TurnState = initialTurnState,
): TurnState => Array.from(frames).reduce(reduceTurn, state);
