import { Inject, Injectable } from '@nestjs/common';
import { createHash, randomUUID } from 'node:crypto';
import type { Observable } from 'rxjs';
import { ApiError } from '../../common/api-error.js';
import { type AppConfig } from '../../config/app-config.js';
import { APP_CONFIG } from '../../config/config.module.js';
import {
  type ActionType,
  CLIENT_MSG_ID_PATTERN,
  type StopResult,
  type StopStatus,
} from '../../contract/index.js';
import { LifecycleService } from '../../health/lifecycle.service.js';
import type { ChatMessage } from '../../provider/llm-provider.js';
import { MessagesRepository } from '../sessions/messages.repository.js';
import type { SessionRow } from '../sessions/sessions.repository.js';
import { SessionsService } from '../sessions/sessions.service.js';
import { ActionPlannerService } from './action-planner.service.js';
import type { TurnRequestDto } from './dto/turn-request.dto.js';
import { loggedToSse, type SseEvent, toSse } from './sse.js';
import { StreamRegistryService } from './stream-registry.service.js';
import { TurnReplayService } from './turn-replay.service.js';
import { type LiveTurn, TurnRun } from './turn-run.js';
import { TurnRunnerService } from './turn-runner.service.js';
import {
  StreamCapReached,
  TurnKeyTaken,
  type TurnRow,
  TurnsRepository,
} from './turns.repository.js';
import { RemoteFollowerService } from './remote-follower.service.js';
import { TurnFramesRepository } from './turn-frames.repository.js';
import { TurnAdmissionService } from './turn-admission.service.js';
import { TurnHubService } from './turn-hub.service.js';
import { countTurn } from './turn-metrics.js';
import { DatabaseClient } from '../../database/database.client.js';
import type { TurnStatus } from '../../database/schema.js';
import { MetricsService } from '../../observability/metrics.service.js';

/** What the stop route reports for a turn that has ended (`interrupted` = it was cut off). */
const STOPPED_AS: Record<Exclude<TurnStatus, 'running'>, Exclude<StopStatus, 'cancelling'>> = {
  completed: 'complete',
  failed: 'failed',
  cancelled: 'cancelled',
  interrupted: 'cancelled',
};

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
    private readonly hub: TurnHubService,
    private readonly follower: RemoteFollowerService,
    private readonly frames: TurnFramesRepository,
    private readonly database: DatabaseClient,
    private readonly metrics: MetricsService,
    private readonly admission: TurnAdmissionService,
  ) {}

  /**
   * Everything that can be refused is refused here, before the stream starts, as JSON. `signal`
   * aborts when the connection ends; if that happens before the stream is subscribed, the
   * attachment is given back (a `cancel` turn with nobody left is then torn down). With
   * `lastEventId` (the reconnect of api-reference §8a) an existing turn is attached to instead of refused.
   * It first waits for a start slot (TurnAdmissionService), within the turn's deadline.
   */
  async start(
    userId: string,
    sessionId: string,
    request: TurnRequestDto,
    signal: AbortSignal,
    lastEventId: number | null,
    arrivedAt: number,
  ): Promise<Observable<SseEvent>> {
    if (this.lifecycle.draining) throw ApiError.shuttingDown();
    // The deadline runs from the request's arrival: waits before the stream count against it.
    const deadlineAt = arrivedAt + this.config.turnTimeoutMs;
    const slot = await this.admission.enter(deadlineAt, signal);
    try {
      return await this.open(userId, sessionId, request, signal, lastEventId, deadlineAt);
    } finally {
      slot();
    }
  }

  /** `start` once admitted: the checks, the first rows, and the stream handed over. */
  private async open(
    userId: string,
    sessionId: string,
    request: TurnRequestDto,
    signal: AbortSignal,
    lastEventId: number | null,
    deadlineAt: number,
  ): Promise<Observable<SseEvent>> {
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
      if (lastEventId !== null) return this.attach(existing, lastEventId, signal);
      if (existing.status === 'running') throw ApiError.duplicateInProgress(existing.userMessageId);
      if (existing.status === 'completed' || existing.status === 'failed') {
        return this.replay
          .frames$(existing)
          .pipe(countTurn(this.metrics), toSse(this.config.sseHeartbeatMs));
      }
    }

    if (Date.now() >= deadlineAt) throw ApiError.cannotStartInTime();
    const release = this.registry.acquire(userId, this.config.maxStreamsPerUser);
    if (!release) throw ApiError.tooManyStreams(this.config.maxStreamsPerUser);
    let live: LiveTurn;
    try {
      live = await this.begin(session, userId, request, requestHash, existing);
    } catch (error) {
      release();
      if (error instanceof StreamCapReached) {
        throw ApiError.tooManyStreams(this.config.maxStreamsPerUser);
      }
      throw error;
    }
    if (Date.now() >= deadlineAt) {
      // Too late to start: the row must not stay running, and the key stays runnable.
      await this.turns.interrupt(live.run.turnId, null).catch(() => {
        this.turns.release(live.run.turnId);
      });
      release();
      throw ApiError.cannotStartInTime();
    }
    const handle = this.hub.start(live.run, userId, request.on_disconnect ?? 'cancel', (stop$) =>
      this.runner.producer$(live, release, { deadlineAt, stop$ }),
    );
    return handle.attach$(0, signal).pipe(loggedToSse(this.config.sseHeartbeatMs));
  }

  /** `GET …/turns/:client_msg_id/events`: the frames after `after`, then live, then the end. */
  async events(
    userId: string,
    sessionId: string,
    clientMsgId: string,
    after: number,
    signal: AbortSignal,
  ): Promise<Observable<SseEvent>> {
    const turn = await this.ownedTurn(userId, sessionId, clientMsgId);
    return this.attach(turn, after, signal);
  }

  /** The stop route: 202 `cancelling` while the turn runs (anywhere), else its stored status. */
  async stop(
    userId: string,
    sessionId: string,
    clientMsgId: string,
  ): Promise<{ httpStatus: 200 | 202; body: StopResult }> {
    const turn = await this.ownedTurn(userId, sessionId, clientMsgId);
    if (turn.status !== 'running') {
      return { httpStatus: 200, body: { status: STOPPED_AS[turn.status] } };
    }
    await this.hub.stop(turn.id, turn.owner === this.database.instanceId);
    return { httpStatus: 202, body: { status: 'cancelling' } };
  }

  /** A turn of this user, or 404 `turn_not_found` (unknown key, or another user's). */
  private async ownedTurn(
    userId: string,
    sessionId: string,
    clientMsgId: string,
  ): Promise<TurnRow> {
    if (!new RegExp(CLIENT_MSG_ID_PATTERN).test(clientMsgId)) throw ApiError.turnNotFound();
    try {
      await this.sessions.owned(userId, sessionId);
    } catch (error) {
      if (error instanceof ApiError && error.getStatus() === 404) throw ApiError.turnNotFound();
      throw error;
    }
    const turn = await this.turns.findByKey(sessionId, clientMsgId);
    if (!turn || turn.userId !== userId) throw ApiError.turnNotFound();
    return turn;
  }

  /**
   * Attaches to a turn's frame log after `after`: the live turn here, a log kept here after it
   * ended, or the log table (a turn run elsewhere, or persisted); else 410 `resume_expired`.
   */
  private async attach(
    turn: TurnRow,
    after: number,
    signal: AbortSignal,
  ): Promise<Observable<SseEvent>> {
    const toMessages = loggedToSse(this.config.sseHeartbeatMs);
    if (turn.finishedAt && Date.now() - turn.finishedAt.getTime() > this.config.resumeWindowMs) {
      throw ApiError.resumeExpired();
    }
    const handle = this.hub.running(turn.id);
    if (handle) return handle.attach$(after, signal).pipe(toMessages);
    const log = this.hub.endedLog(turn.id);
    if (log) return log.follow$(after).pipe(toMessages);
    if (this.database.kind === 'postgres') {
      if (turn.status === 'running' && turn.owner !== this.database.instanceId) {
        await this.hub.requestFollow(turn.id);
        return this.follower.follow$(turn, after).pipe(toMessages);
      }
      if (turn.status !== 'running' && (await this.frames.has(turn.id))) {
        return this.follower.follow$(turn, after).pipe(toMessages);
      }
    }
    throw ApiError.resumeExpired();
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
        await this.turns.restart(turnId, userId, actionType, this.config.maxStreamsPerUser);
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
          this.config.maxStreamsPerUser,
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
