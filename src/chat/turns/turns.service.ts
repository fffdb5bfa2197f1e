import { Inject, Injectable } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import type { Observable } from 'rxjs';
import { ApiError } from '../../common/api-error.js';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import type { ActionType } from '../../contract/index.js';
import { LifecycleService } from '../../health/lifecycle.service.js';
import type { ChatMessage } from '../../provider/llm-provider.js';
import { MessagesRepository } from '../sessions/messages.repository.js';
import type { SessionRow } from '../sessions/sessions.repository.js';
import { SessionsService } from '../sessions/sessions.service.js';
import { ActionPlannerService } from './action-planner.service.js';
import type { TurnRequestDto } from './dto/turn-request.dto.js';
import type { SseMessage } from './frames.js';
import { toSse } from './sse.js';
import { StreamRegistryService } from './stream-registry.service.js';
import { TurnReplayService } from './turn-replay.service.js';
import { type LiveTurn, TurnRun } from './turn-run.js';
import { TurnRunnerService } from './turn-runner.service.js';
import { TurnKeyTaken, type TurnRow, TurnsRepository } from './turns.repository.js';

/** The turn request: every check before the stream, then a replay or a live run. */
@Injectable()
export class TurnsService {
  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly sessions: SessionsService,
    private readonly messages: MessagesRepository,
    private readonly turns: TurnsRepository,
    private readonly registry: StreamRegistryService,
    private readonly planner: ActionPlannerService,
    private readonly replay: TurnReplayService,
    private readonly runner: TurnRunnerService,
    private readonly lifecycle: LifecycleService,
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
    if (this.lifecycle.draining) throw ApiError.shuttingDown();
    const session = await this.sessions.owned(userId, sessionId);
    if (request.image?.force === true && this.config.image.models.length === 0) {
      throw ApiError.imageDisabled();
    }

    const requestHash = hashRequest(request);
    const existing = await this.turns.findByKey(sessionId, request.client_msg_id);
    if (existing) {
      if (existing.requestHash !== requestHash) {
        throw ApiError.idempotencyConflict(existing.userMessageId);
      }
      if (existing.status === 'running') throw ApiError.duplicateInProgress(existing.userMessageId);
      if (existing.status === 'completed' || existing.status === 'failed') {
        return this.replay.frames$(existing).pipe(toSse(this.config.sseHeartbeatMs));
      }
    }

    const release = this.registry.acquire(userId, this.config.maxStreamsPerUser);
    if (!release) throw ApiError.tooManyStreams(this.config.maxStreamsPerUser);
    try {
      const live = await this.begin(session, userId, request, requestHash, existing);
      return this.runner.run$(live, release, signal);
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
        await this.turns.restart(turnId, actionType);
      } else {
        await this.turns.begin(
          {
            id: turnId,
            sessionId: session.id,
            userId,
            clientMsgId: request.client_msg_id,
            requestHash,
            userMessageId,
            actionType,
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
      const winner = await this.turns.findByKey(session.id, request.client_msg_id);
      throw ApiError.duplicateInProgress(winner?.userMessageId ?? userMessageId);
    }
    const earlier = await this.messages.context(session.id, turnId, this.config.historyMessages);
    const context: ChatMessage[] = [
      ...(session.systemPrompt ? [{ role: 'system' as const, content: session.systemPrompt }] : []),
      ...earlier.map((row) => ({ role: row.role, content: row.content })),
      { role: 'user', content: request.content },
    ];
    return {
      run: new TurnRun(turnId, session.id, userMessageId, actionType),
      request,
      context,
    };
  }

  private actionOf(request: TurnRequestDto): ActionType {
    const image = request.image;
    if (!image) return 'reply_text';
    const mode = image.mode ?? 'text_image';
    if (image.force) return mode === 'image_only' ? 'reply_image' : 'reply_text_image';
    return this.planner.plan(image.image_prompt || request.content, mode);
  }
}

/**
 * Same key, same request: content, image options and `on_disconnect`, in a fixed key order. The
 * v2 options join the hash only when set to something other than their default, so a v1 request
 * hashes as it always did (keys stored before the upgrade still replay).
 */
export function hashRequest(request: TurnRequestDto): string {
  const image = request.image;
  const v2 = [
    image?.partial_images ?? 0,
    image?.concurrent ?? false,
    request.on_disconnect ?? 'cancel',
  ];
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
    ...(v2[0] === 0 && v2[1] === false && v2[2] === 'cancel' ? [] : [v2]),
  ]);
  return createHash('sha256').update(canonical).digest('hex');
}
