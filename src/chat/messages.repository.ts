import { Injectable } from '@nestjs/common';
import { and, asc, desc, eq, inArray, lt, ne, sql } from 'drizzle-orm';
import { DatabaseClient, type Database } from '../database/database.client.js';
import {
  images,
  messages,
  sessions,
  turns,
  type TurnError,
  type TurnStatus,
} from '../database/schema.js';

export type MessageRow = typeof messages.$inferSelect;
export type NewMessage = typeof messages.$inferInsert;
export type TurnRow = typeof turns.$inferSelect;
export type NewImage = typeof images.$inferInsert;

type Transaction = Parameters<Parameters<Database['transaction']>[0]>[0];

/** Thrown when a turn with the same idempotency key was started concurrently. */
export class TurnKeyTaken extends Error {}

function isUniqueViolation(error: unknown): boolean {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    if ((current as { code?: unknown }).code === '23505') return true;
  }
  return false;
}

/** Messages and the turn bookkeeping around them; every multi-row write is one transaction. */
@Injectable()
export class MessagesRepository {
  // The per-turn reads, prepared once: building the query is a measurable share of their cost.
  private readonly turnQuery;
  private readonly contextQuery;

  constructor(private readonly database: DatabaseClient) {
    const { db } = database;
    this.turnQuery = db
      .select()
      .from(turns)
      .where(
        and(
          eq(turns.sessionId, sql.placeholder('sessionId')),
          eq(turns.clientMsgId, sql.placeholder('clientMsgId')),
        ),
      )
      .prepare('turn_by_key');
    this.contextQuery = db
      .select()
      .from(messages)
      .where(
        and(
          eq(messages.sessionId, sql.placeholder('sessionId')),
          ne(messages.content, ''),
          sql`${messages.turnId} IS DISTINCT FROM ${sql.placeholder('exceptTurnId')}`,
        ),
      )
      .orderBy(desc(messages.seq))
      .limit(sql.placeholder('limit'))
      .prepare('turn_context');
  }

  async findTurn(sessionId: string, clientMsgId: string): Promise<TurnRow | null> {
    const [row] = await this.turnQuery.execute({ sessionId, clientMsgId });
    return row ?? null;
  }

  /** Inserts the user message and a running turn, and marks the session updated, in one transaction. */
  async beginTurn(turn: typeof turns.$inferInsert, userMessage: NewMessage): Promise<void> {
    const { db } = this.database;
    // One statement (data-modifying CTEs) rather than BEGIN + three + COMMIT: this runs on every
    // turn, and with embedded PGlite each statement costs about a millisecond of CPU.
    const message = db
      .$with('new_message', {})
      .as(db.insert(messages).values(userMessage).getSQL());
    const touched = db
      .$with('touched_session', {})
      .as(
        db
          .update(sessions)
          .set({ updatedAt: new Date() })
          .where(eq(sessions.id, turn.sessionId))
          .getSQL(),
      );
    try {
      await db
        .with(message, touched)
        .insert(turns)
        .values({ ...turn, owner: this.database.instanceId });
    } catch (error) {
      if (isUniqueViolation(error)) throw new TurnKeyTaken();
      throw error;
    }
  }

  /**
   * Runs a cancelled or interrupted turn again under the same key: its earlier partial replies
   * are superseded, so they are removed with their images.
   */
  async restartTurn(turnId: string, actionType: TurnRow['actionType']): Promise<void> {
    await this.database.db.transaction(async (tx) => {
      const claimed = await tx
        .update(turns)
        .set({
          status: 'running',
          owner: this.database.instanceId,
          actionType,
          messageIds: [],
          error: null,
          finishedAt: null,
        })
        .where(and(eq(turns.id, turnId), inArray(turns.status, ['cancelled', 'interrupted'])))
        .returning({ id: turns.id });
      if (claimed.length === 0) throw new TurnKeyTaken();
      await tx
        .delete(messages)
        .where(and(eq(messages.turnId, turnId), eq(messages.role, 'assistant')));
    });
  }

  /** Stores an assistant message (insert or update) and, with it, its image. */
  async saveMessage(message: NewMessage, image?: NewImage): Promise<void> {
    await this.database.db.transaction(async (tx) => {
      await this.upsertMessage(tx, message);
      if (image) await tx.insert(images).values(image);
    });
  }

  /** Ends a turn: its assistant messages and its status land together. */
  async finishTurn(
    turnId: string,
    status: Exclude<TurnStatus, 'running' | 'interrupted'>,
    assistantMessages: readonly NewMessage[],
    error: TurnError | null,
  ): Promise<void> {
    const { db } = this.database;
    // One statement, as in beginTurn: each message upsert is a data-modifying CTE.
    const upserts = assistantMessages.map((message, index) =>
      db.$with(`message_${index}`, {}).as(this.upsertMessage(db, message).getSQL()),
    );
    await db
      .with(...upserts)
      .update(turns)
      .set({
        status,
        error,
        messageIds: assistantMessages.map((message) => message.id),
        finishedAt: new Date(),
      })
      .where(eq(turns.id, turnId));
  }

  private upsertMessage(db: Database | Transaction, message: NewMessage) {
    return db
      .insert(messages)
      .values(message)
      .onConflictDoUpdate({
        target: messages.id,
        set: {
          content: message.content,
          status: message.status,
          model: message.model,
          actionType: message.actionType,
          metadata: message.metadata,
        },
      });
  }

  /**
   * Marks turns left running by a process that died, so their keys can run again. Turns of an
   * instance that is still alive (several instances on one PostgreSQL) are left alone.
   */
  async interruptOrphaned(): Promise<number> {
    const owners = await this.database.db
      .selectDistinct({ owner: turns.owner })
      .from(turns)
      .where(eq(turns.status, 'running'));
    let interrupted = 0;
    for (const { owner } of owners) {
      if (await this.database.isAlive(owner)) continue;
      const rows = await this.database.db
        .update(turns)
        .set({ status: 'interrupted', finishedAt: new Date() })
        .where(and(eq(turns.status, 'running'), eq(turns.owner, owner)))
        .returning({ id: turns.id });
      interrupted += rows.length;
    }
    return interrupted;
  }

  /** The latest `limit` messages before the turn being run, oldest first, for the model's context. */
  async context(sessionId: string, exceptTurnId: string, limit: number): Promise<MessageRow[]> {
    if (limit === 0) return [];
    const rows = await this.contextQuery.execute({ sessionId, exceptTurnId, limit });
    return rows.reverse();
  }

  /** Newest first, one extra row to tell if a next page exists. */
  list(sessionId: string, limit: number, beforeSeq: number | null): Promise<MessageRow[]> {
    return this.database.db
      .select()
      .from(messages)
      .where(
        beforeSeq === null
          ? eq(messages.sessionId, sessionId)
          : and(eq(messages.sessionId, sessionId), lt(messages.seq, beforeSeq)),
      )
      .orderBy(desc(messages.seq))
      .limit(limit + 1);
  }

  async find(sessionId: string, messageId: string): Promise<MessageRow | null> {
    const [row] = await this.database.db
      .select()
      .from(messages)
      .where(and(eq(messages.sessionId, sessionId), eq(messages.id, messageId)));
    return row ?? null;
  }

  /** A turn's assistant messages in stream order. */
  async ofTurn(turn: TurnRow): Promise<MessageRow[]> {
    if (turn.messageIds.length === 0) return [];
    const rows = await this.database.db
      .select()
      .from(messages)
      .where(inArray(messages.id, turn.messageIds))
      .orderBy(asc(messages.seq));
    const byId = new Map(rows.map((row) => [row.id, row]));
    return turn.messageIds.flatMap((id) => byId.get(id) ?? []);
  }

  async setDurableUrl(message: MessageRow, url: string): Promise<void> {
    const image = message.metadata.image;
    if (!image) return;
    await this.database.db
      .update(messages)
      .set({ metadata: { ...message.metadata, image: { ...image, durable_url: url } } })
      .where(eq(messages.id, message.id));
  }
}
