import type { ActionType, MessageStatus, Usage } from '../../contract/index.js';
import type { MessageMetadata } from '../../database/schema.js';
import type { ChatMessage } from '../../provider/llm-provider.js';
import type { MessageValues } from '../sessions/messages.repository.js';
import type { TurnRequestDto } from './dto/turn-request.dto.js';
import type { StoredImage } from './frames.js';

export type ImageFailure = NonNullable<MessageMetadata['image_failed']>;

/** An assistant message as it streams; stored when it gets an image or when the turn ends. */
interface AssistantDraft {
  readonly id: string;
  readonly actionType: ActionType;
  readonly model: string | null;
  content: string;
  /** `meta` went out and `done` has not: a failure now must send `done(truncated)` first. */
  open: boolean;
  metadata: MessageMetadata;
}

/**
 * The state of one live turn, changed only through its named transitions. The phase guards the
 * single terminal write: once the turn is finishing (final or error) a late disconnect must not
 * also store it as cancelled.
 */
export class TurnRun {
  private phase: 'live' | 'finishing' | 'ended' = 'live';
  /** Set when a `reply_image` drawing failed: the diagnostic its text reply Y carries. */
  private imageFailure: ImageFailure | null = null;
  private readonly drafts = new Map<string, AssistantDraft>();

  constructor(
    readonly turnId: string,
    readonly sessionId: string,
    readonly userMessageId: string,
    readonly actionType: ActionType,
  ) {}

  /** `meta` is going out: the message exists, open until its `done`. */
  openMessage(id: string, actionType: ActionType, model: string): void {
    const metadata: MessageMetadata = this.imageFailure ? { image_failed: this.imageFailure } : {};
    this.drafts.set(id, { id, actionType, model, content: '', open: true, metadata });
  }

  append(id: string, content: string): void {
    this.draft(id).content += content;
  }

  closeMessage(id: string, usage: Usage | null, generationId: string | null): void {
    const draft = this.draft(id);
    draft.open = false;
    draft.metadata = { ...draft.metadata, usage, generation_id: generationId };
  }

  /** A `reply_image` whose drawing succeeded: its message X is complete from the start. */
  addImageMessage(id: string, model: string, generationId: string | null): void {
    this.drafts.set(id, {
      id,
      actionType: 'reply_image',
      model,
      content: '',
      open: false,
      metadata: { generation_id: generationId },
    });
  }

  /** The message's image; returns the row to store with it. */
  attachImage(id: string, image: StoredImage): MessageValues {
    const draft = this.draft(id);
    draft.metadata = { ...draft.metadata, image };
    return this.row(draft, 'complete');
  }

  /** The image of a `reply_text_image` message could not be made. */
  failImage(id: string, failure: ImageFailure): void {
    const draft = this.draft(id);
    draft.metadata = { ...draft.metadata, image_failed: failure };
  }

  /** A `reply_image` drawing failed: the text reply Y that follows carries the diagnostic. */
  degrade(failure: ImageFailure): void {
    this.imageFailure = failure;
  }

  /** The failed drawing's diagnostic when no message carries it (Y failed before its `meta`). */
  get orphanedImageFailure(): ImageFailure | null {
    return this.drafts.size === 0 ? this.imageFailure : null;
  }

  /** The turn starts its terminal write; false when it has already ended (nothing to store). */
  finish(): boolean {
    if (this.phase !== 'live') return false;
    this.phase = 'finishing';
    return true;
  }

  end(): void {
    this.phase = 'ended';
  }

  /** The client left: true when the turn was still live, and is now ended as cancelled. */
  abandon(): boolean {
    if (this.phase !== 'live') return false;
    this.phase = 'ended';
    return true;
  }

  get messageIds(): string[] {
    return [...this.drafts.keys()];
  }

  openMessageIds(): string[] {
    return [...this.drafts.values()].filter((draft) => draft.open).map((draft) => draft.id);
  }

  /** Rows to store; messages still open get `openStatus` (cancelled or failed). */
  rows(openStatus: MessageStatus): MessageValues[] {
    return [...this.drafts.values()].map((draft) =>
      this.row(draft, draft.open ? openStatus : 'complete'),
    );
  }

  private draft(id: string): AssistantDraft {
    const draft = this.drafts.get(id);
    if (!draft) throw new Error(`no message ${id} in turn ${this.turnId}`);
    return draft;
  }

  private row(draft: AssistantDraft, status: MessageStatus): MessageValues {
    return {
      id: draft.id,
      sessionId: this.sessionId,
      turnId: this.turnId,
      role: 'assistant',
      clientMsgId: null,
      content: draft.content,
      actionType: draft.actionType,
      status,
      model: draft.model,
      metadata: draft.open ? { ...draft.metadata, truncated: true } : draft.metadata,
    };
  }
}

/** A turn that has passed every check and is about to stream. */
export interface LiveTurn {
  readonly run: TurnRun;
  readonly request: TurnRequestDto;
  /** System prompt, earlier messages and this turn's user message. */
  readonly context: ChatMessage[];
}
