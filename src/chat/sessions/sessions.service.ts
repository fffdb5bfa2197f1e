import { Injectable } from '@nestjs/common';
import { randomUUID } from 'node:crypto';
import { ApiError } from '../../common/api-error.js';
import { ImageStore } from '../../images/image-store.js';
import { ImagesRepository } from '../../images/images.repository.js';
import type { CreateSessionDto, SessionDto, SessionPageDto } from './dto/session.dto.js';
import type { MessagePageDto } from './dto/message.dto.js';
import { MessageMapper } from './dto/message.mapper.js';
import { toSessionDto } from './dto/session.mapper.js';
import { MessagesRepository } from './messages.repository.js';
import { SessionsRepository, type SessionRow } from './sessions.repository.js';

@Injectable()
export class SessionsService {
  constructor(
    private readonly sessions: SessionsRepository,
    private readonly messages: MessagesRepository,
    private readonly mapper: MessageMapper,
    private readonly images: ImagesRepository,
    private readonly imageStore: ImageStore,
  ) {}

  async create(userId: string, dto: CreateSessionDto): Promise<SessionDto> {
    const row = await this.sessions.create({
      id: randomUUID(),
      userId,
      title: dto.title ?? null,
      systemPrompt: dto.system_prompt ?? null,
    });
    return toSessionDto(row);
  }

  /** The session if `userId` owns it; 404 `session_not_found` otherwise, whoever else owns it. */
  async owned(userId: string, sessionId: string): Promise<SessionRow> {
    const row = await this.sessions.findOwned(userId, sessionId);
    if (!row) throw ApiError.sessionNotFound();
    return row;
  }

  async get(userId: string, sessionId: string): Promise<SessionDto> {
    return toSessionDto(await this.owned(userId, sessionId));
  }

  async list(userId: string, limit: number, cursor: string | null): Promise<SessionPageDto> {
    const rows = await this.sessions.list(userId, limit, cursor === null ? null : Number(cursor));
    const page = rows.slice(0, limit);
    return {
      items: page.map(toSessionDto),
      next_cursor: rows.length > limit ? String(page[page.length - 1].seq) : null,
    };
  }

  /**
   * The rows go by cascade; the image bytes right after (an image a turn adds meanwhile is left
   * to the orphan sweep, ImageSweepJob).
   */
  async delete(userId: string, sessionId: string): Promise<void> {
    const imageIds = await this.images.idsInSession(sessionId);
    if (!(await this.sessions.deleteOwned(userId, sessionId))) throw ApiError.sessionNotFound();
    await this.imageStore.delete(imageIds);
  }

  async history(
    userId: string,
    sessionId: string,
    limit: number,
    before: string | null,
  ): Promise<MessagePageDto> {
    await this.owned(userId, sessionId);
    let beforeSeq: number | null = null;
    if (before !== null) {
      const anchor = await this.messages.find(sessionId, before);
      if (!anchor) throw ApiError.invalidPayload('`before` is not a message of this session.');
      beforeSeq = anchor.seq;
    }
    const rows = await this.messages.list(sessionId, limit, beforeSeq);
    const page = rows.slice(0, limit);
    return {
      items: page.map((row) => this.mapper.toDto(row)),
      next_cursor: rows.length > limit ? page[page.length - 1].id : null,
    };
  }

  /** Records the client's durable copy of a generated image (idempotent). */
  async recordDurableImage(
    userId: string,
    sessionId: string,
    messageId: string,
    url: string,
  ): Promise<void> {
    await this.owned(userId, sessionId);
    const message = await this.messages.find(sessionId, messageId);
    if (!message || message.role !== 'assistant' || !message.metadata.image) {
      throw ApiError.notFound('No assistant message with an image has this id in this session.');
    }
    if (message.metadata.image.durable_url !== url) await this.messages.setDurableUrl(message, url);
  }
}
