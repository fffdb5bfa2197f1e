import type { ActionType, MessageMetadata, MessageStatus } from '../database/schema.js';
import type { ChatMessage } from '../provider/llm-provider.js';
import type { TurnRequestDto } from './dto/turn-request.dto.js';
import type { NewMessage } from './messages.repository.js';

/** An assistant message as it streams; stored when it gets an image or when the turn ends. */
export interface AssistantDraft {
  readonly id: string;
  actionType: ActionType;
  content: string;
  model: string | null;
  status: MessageStatus;
  /** `meta` went out and `done` has not: a failure now must send `done(truncated)` first. */
  open: boolean;
  metadata: MessageMetadata;
}

/**
 * The state of one live turn. `phase` guards the single terminal write: once the turn is
 * finishing (final or error) a late disconnect must not also store it as cancelled.
 */
export class TurnRun {
  phase: 'live' | 'finishing' | 'ended' = 'live';
  /** Set when a `reply_image` drawing failed: the diagnostic that its text reply Y carries. */
  imageFailure: MessageMetadata['image_failed'] | null = null;
  private readonly drafts = new Map<string, AssistantDraft>();

  constructor(
    readonly turnId: string,
    readonly sessionId: string,
    readonly userId: string,
    readonly userMessageId: string,
    readonly actionType: ActionType,
  ) {}

  draft(id: string, actionType: ActionType, model: string | null): AssistantDraft {
    const draft: AssistantDraft = {
      id,
      actionType,
      content: '',
      model,
      status: 'complete',
      open: false,
      metadata: {},
    };
    this.drafts.set(id, draft);
    return draft;
  }

  get(id: string): AssistantDraft {
    const draft = this.drafts.get(id);
    if (!draft) throw new Error(`no draft ${id} in turn ${this.turnId}`);
    return draft;
  }

  get messageIds(): string[] {
    return [...this.drafts.keys()];
  }

  openDrafts(): AssistantDraft[] {
    return [...this.drafts.values()].filter((draft) => draft.open);
  }

  /** Rows to store; drafts still open get `status` (cancelled or failed). */
  rows(openStatus: MessageStatus): NewMessage[] {
    return [...this.drafts.values()].map((draft) =>
      this.row(draft, draft.open ? openStatus : draft.status),
    );
  }

  row(draft: AssistantDraft, status: MessageStatus = draft.status): NewMessage {
    return {
      id: draft.id,
      sessionId: this.sessionId,
      turnId: this.turnId,
      role: 'assistant',
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
