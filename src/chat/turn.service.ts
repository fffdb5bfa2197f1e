import { type BeforeApplicationShutdown, Inject, Injectable, Logger } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import {
  catchError,
  concat,
  defer,
  finalize,
  from,
  merge,
  type Observable,
  Subject,
  takeUntil,
  tap,
  timer,
} from 'rxjs';
import { ApiError } from '../common/api-error.js';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import type { ActionType } from '../database/schema.js';
import { Lifecycle } from '../health/lifecycle.service.js';
import type { ChatMessage } from '../provider/llm-provider.js';
import { ActionPlanner } from './action-planner.service.js';
import type { TurnRequestDto } from './dto/turn-request.dto.js';
import type { Frame, SseMessage } from './frames.js';
import { MessagesRepository, type TurnRow, TurnKeyTaken } from './messages.repository.js';
import { SessionService } from './session.service.js';
import type { SessionRow } from './sessions.repository.js';
import { toSse } from './sse.js';
import { StreamRegistry } from './stream-registry.service.js';
import { TurnFailure } from './turn-failure.js';
import { TurnReplayService } from './turn-replay.service.js';
import { type LiveTurn, TurnRun } from './turn-run.js';
import { TurnActions } from './turn-actions.service.js';

/** How long a drained turn's last bytes get to leave before the server closes (see shutdown). */
const FLUSH_MS = 100;

/** Runs chat turns: the checks before the stream, then the turn as one composed Observable. */
@Injectable()
export class TurnService implements BeforeApplicationShutdown {
  private readonly logger = new Logger(TurnService.name);
  /** Fires when the shutdown grace period ends: every live turn ends with a retryable error. */
  private readonly shutdown$ = new Subject<void>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly sessions: SessionService,
    private readonly messages: MessagesRepository,
    private readonly registry: StreamRegistry,
    private readonly planner: ActionPlanner,
    private readonly actions: TurnActions,
    private readonly replay: TurnReplayService,
    private readonly lifecycle: Lifecycle,
  ) {}

  /**
   * Everything that can be refused is refused here, before the stream starts, as JSON. `signal`
   * aborts when the connection ends; if that happens before the stream is subscribed, the turn
   * is settled as cancelled so its slot and key are not held.
   */
  async start(
    userId: string,
    sessionId: string,
    request: TurnRequestDto,
    signal: AbortSignal,
  ): Promise<Observable<SseMessage>> {
    if (this.lifecycle.draining) throw unavailable();
    const session = await this.sessions.owned(userId, sessionId);
    const forced = request.image?.force === true;
    const mode = request.image?.mode ?? 'text_image';
    // A forced image_only turn may leave content blank, but then image_prompt says what to draw.
    const subject =
      forced && mode === 'image_only'
        ? `${request.content}${request.image?.image_prompt ?? ''}`
        : request.content;
    if (subject.trim() === '') {
      const field = forced && mode === 'image_only' ? 'content or image.image_prompt' : 'content';
      throw ApiError.invalidPayload(`${field} must not be blank.`, [`${field} must not be blank`]);
    }
    if (forced && this.config.image.models.length === 0) {
      throw new ApiError(422, {
        code: 'image_disabled',
        message: 'Image generation is disabled on this server (IMAGE_MODELS is empty).',
        user_message: 'Pictures are not available right now.',
      });
    }

    const requestHash = hashRequest(request);
    const existing = await this.messages.findTurn(sessionId, request.client_msg_id);
    if (existing) {
      if (existing.requestHash !== requestHash) {
        throw new ApiError(409, {
          code: 'idempotency_conflict',
          message: 'This client_msg_id was already used in this session with a different request.',
          original_user_message_id: existing.userMessageId,
        });
      }
      if (existing.status === 'running') throw duplicateInProgress(existing.userMessageId);
      if (existing.status === 'completed' || existing.status === 'failed') {
        return this.replay.frames$(existing).pipe(toSse(this.config.sseHeartbeatMs));
      }
    }

    const release = this.registry.acquire(userId, this.config.maxStreamsPerUser);
    if (!release) {
      throw new ApiError(429, {
        code: 'rate_limited',
        message: `At most ${this.config.maxStreamsPerUser} turns may stream at once per user.`,
        user_message: 'Too many replies are in progress. Wait for one to finish.',
      });
    }
    try {
      const live = await this.begin(session, userId, request, requestHash, existing);
      return this.live$(live, release, signal);
    } catch (error) {
      release();
      throw error;
    }
  }

  private async begin(
    session: SessionRow,
    userId: string,
    request: TurnRequestDto,
    requestHash: string,
    existing: TurnRow | null,
  ): Promise<LiveTurn> {
    const actionType = this.actionOf(request);
    const turnId = existing?.id ?? randomUUID();
    const userMessageId = existing?.userMessageId ?? randomUUID();
    try {
      if (existing) {
        await this.messages.restartTurn(turnId, actionType);
      } else {
        await this.messages.beginTurn(
          {
            id: turnId,
            sessionId: session.id,
            userId,
            clientMsgId: request.client_msg_id,
            requestHash,
            userMessageId,
            actionType,
            status: 'running',
          },
          {
            id: userMessageId,
            sessionId: session.id,
            turnId,
            role: 'user',
            content: request.content,
            clientMsgId: request.client_msg_id,
            actionType: null,
            status: 'complete',
            model: null,
            metadata: {},
          },
        );
      }
    } catch (error) {
      if (!(error instanceof TurnKeyTaken)) throw error;
      const winner = await this.messages.findTurn(session.id, request.client_msg_id);
      throw duplicateInProgress(winner?.userMessageId ?? userMessageId);
    }
    const earlier = await this.messages.context(session.id, turnId, this.config.historyMessages);
    const context: ChatMessage[] = [
      ...(session.systemPrompt ? [{ role: 'system' as const, content: session.systemPrompt }] : []),
      ...earlier.map((row) => ({ role: row.role, content: row.content })),
      { role: 'user', content: request.content },
    ];
    return {
      run: new TurnRun(turnId, session.id, userId, userMessageId, actionType),
      request,
      context,
    };
  }

  /**
   * SIGTERM: refuse new turns, let open ones finish within SHUTDOWN_GRACE_MS, then end the rest
   * with a retryable `error` frame and wait for their rows to be written (the database closes
   * after this hook).
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.lifecycle.draining = true;
    if (this.registry.open === 0) return;
    this.logger.log(`draining ${this.registry.open} open turn(s)`);
    const idle = this.registry.whenIdle();
    const grace = new Promise<'grace'>((resolve) =>
      setTimeout(() => resolve('grace'), this.config.shutdownGraceMs).unref(),
    );
    if ((await Promise.race([idle, grace])) === 'grace') {
      this.shutdown$.next();
      await idle;
    }
    // The last frames are still being flushed; once they are, the keep-alive connections are
    // idle and the server's close() ends them instead of waiting for the client's timeout.
    await new Promise((resolve) => setTimeout(resolve, FLUSH_MS));
  }

  private actionOf(request: TurnRequestDto): ActionType {
    const image = request.image;
    if (!image) return 'reply_text';
    const mode = image.mode ?? 'text_image';
    if (image.force) return mode === 'image_only' ? 'reply_image' : 'reply_text_image';
    return this.planner.plan(image.image_prompt || request.content, mode);
  }

  private live$(live: LiveTurn, release: () => void, signal: AbortSignal): Observable<SseMessage> {
    const { run } = live;
    let subscribed = false;
    const settle = (): void => {
      if (run.phase !== 'live') return release();
      run.phase = 'ended';
      // The client left: keep what streamed, marked cancelled; the key stays runnable.
      void this.messages
        .finishTurn(run.turnId, 'cancelled', run.rows('cancelled'), null)
        .catch((error: unknown) =>
          this.logger.error(`storing cancelled turn ${run.turnId}: ${String(error)}`),
        )
        .finally(release);
    };
    signal.addEventListener('abort', () => subscribed || settle(), { once: true });

    const deadline$ = merge(
      timer(this.config.turnTimeoutMs).pipe(
        tap(() => {
          throw new TurnFailure(
            'timeout',
            `the turn took longer than ${this.config.turnTimeoutMs} ms`,
          );
        }),
      ),
      this.shutdown$.pipe(
        tap(() => {
          throw new TurnFailure(
            'upstream_unavailable',
            'The server is shutting down; run the turn again.',
          );
        }),
      ),
    );
    const frames$ = concat(
      this.actions.frames$(live),
      defer(() => this.final$(run)),
    ).pipe(
      takeUntil(deadline$),
      catchError((error: unknown) => this.failure$(run, error)),
      finalize(settle),
    );
    return defer(() => {
      subscribed = true;
      return frames$;
    }).pipe(toSse(this.config.sseHeartbeatMs));
  }

  /** Stores the finished turn, then says `final`: a replay can never miss what was streamed. */
  private async final$(run: TurnRun): Promise<Frame> {
    run.phase = 'finishing';
    await this.messages.finishTurn(run.turnId, 'completed', run.rows('complete'), null);
    run.phase = 'ended';
    return {
      type: 'final',
      user_message_id: run.userMessageId,
      message_ids: run.messageIds,
      action_type: run.actionType,
      replayed: false,
    };
  }

  /** `done(truncated)` for a message cut short, then the one `error` frame. */
  private failure$(run: TurnRun, error: unknown): Observable<Frame> {
    const failure =
      error instanceof TurnFailure
        ? error
        : new TurnFailure('internal', 'The turn failed unexpectedly.');
    if (!(error instanceof TurnFailure)) {
      this.logger.error(
        `turn ${run.turnId} failed: ${error instanceof Error ? error.stack : String(error)}`,
      );
    }
    const truncated = run.openDrafts().map((draft): Frame => ({
      type: 'done',
      message_id: draft.id,
      truncated: true,
      usage: null,
      generation_id: null,
    }));
    const stored = failure.toStored();
    const orphanedImageFailure = run.imageFailure && run.messageIds.length === 0;
    const error$ = defer(async (): Promise<Frame> => {
      run.phase = 'finishing';
      try {
        await this.messages.finishTurn(
          run.turnId,
          'failed',
          run.rows('failed'),
          orphanedImageFailure ? { ...stored, image_failed: run.imageFailure! } : stored,
        );
      } catch (persistError) {
        this.logger.error(`storing failed turn ${run.turnId}: ${String(persistError)}`);
      }
      run.phase = 'ended';
      return {
        type: 'error',
        code: failure.code,
        retryable: stored.retryable,
        message: stored.message,
        user_message: stored.user_message,
      };
    });
    return concat(from(truncated), error$);
  }
}

function unavailable(): ApiError {
  return new ApiError(503, {
    code: 'unavailable',
    message: 'The server is shutting down and takes no new turns.',
    user_message: 'The service is restarting. Please try again in a moment.',
  });
}

function duplicateInProgress(userMessageId: string): ApiError {
  return new ApiError(409, {
    code: 'duplicate_in_progress',
    message: 'A turn with this client_msg_id is still running.',
    original_user_message_id: userMessageId,
  });
}

/** Same key, same request: content and image options, in a fixed key order. */
function hashRequest(request: TurnRequestDto): string {
  const image = request.image;
  const canonical = JSON.stringify([
    request.content,
    image
      ? [
          image.force ?? false,
          image.mode ?? 'text_image',
          image.model ?? null,
          image.image_prompt ?? null,
          image.aspect_ratio ?? null,
          image.reference_image_url ?? null,
        ]
      : null,
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}
