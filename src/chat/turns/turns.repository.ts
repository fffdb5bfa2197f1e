import { Injectable } from '@nestjs/common';
import { and, eq, inArray, sql } from 'drizzle-orm';
import { DatabaseClient } from '../../database/database.client.js';
import { turns, type TurnError, type TurnStatus } from '../../database/schema.js';
import { MessagesRepository, type NewMessage } from '../sessions/messages.repository.js';
import { SessionsRepository } from '../sessions/sessions.repository.js';

export type TurnRow = typeof turns.$inferSelect;
export type NewTurn = Omit<typeof turns.$inferInsert, 'owner' | 'status'>;
/** How a turn can end. */
export type TurnEnding = Exclude<TurnStatus, 'running' | 'interrupted'>;

/** Thrown when a turn with the same idempotency key was started concurrently. */
export class TurnKeyTaken extends Error {}

function isUniqueViolation(error: unknown): boolean {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    if ((current as { code?: unknown }).code === '23505') return true;
  }
  return false;
}

/**
 * The `turns` table: idempotency keys, the running/ended status, crash recovery. A turn's
 * begin and end also write its messages: those writes are built by the messages repository and
 * run here inside the turn's own statement.
 */
@Injectable()
export class TurnsRepository {
  // Read on every turn, prepared once: building the query is a measurable share of its cost.
  private readonly byKeyQuery;

  constructor(
    private readonly database: DatabaseClient,
    private readonly messages: MessagesRepository,
    private readonly sessions: SessionsRepository,
  ) {
    this.byKeyQuery = database.db
      .select()
      .from(turns)
      .where(
        and(
          eq(turns.sessionId, sql.placeholder('sessionId')),
          eq(turns.clientMsgId, sql.placeholder('clientMsgId')),
        ),
      )
      .prepare('turn_by_key');
  }

  async findByKey(sessionId: string, clientMsgId: string): Promise<TurnRow | null> {
    const [row] = await this.byKeyQuery.execute({ sessionId, clientMsgId });
    return row ?? null;
  }

  /** Inserts the user message and a running turn, and marks the session updated. */
  async begin(turn: NewTurn, userMessage: NewMessage): Promise<void> {
    const { db } = this.database;
    // One statement (data-modifying CTEs) rather than BEGIN + three + COMMIT: this runs on every
    // turn, and with embedded PGlite each statement costs about a millisecond of CPU.
    const message = db.$with('new_message', {}).as(this.messages.insert(db, userMessage).getSQL());
    const touched = db
      .$with('touched_session', {})
      .as(this.sessions.touch(db, turn.sessionId).getSQL());
    try {
      await db
        .with(message, touched)
        .insert(turns)
        .values({ ...turn, status: 'running', owner: this.database.instanceId });
    } catch (error) {
      if (isUniqueViolation(error)) throw new TurnKeyTaken();
      throw error;
    }
  }

  /**
   * Runs a cancelled or interrupted turn again under the same key: its earlier partial replies
   * are superseded, so they are removed with their images.
   */
  async restart(turnId: string, actionType: TurnRow['actionType']): Promise<void> {
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
      await this.messages.deleteReplies(tx, turnId);
    });
  }

  /** Ends a turn: its assistant messages and its status land together, in one statement. */
  async finish(
    turnId: string,
    status: TurnEnding,
    assistantMessages: readonly NewMessage[],
    error: TurnError | null,
  ): Promise<void> {
    const { db } = this.database;
    const upserts = assistantMessages.map((message, index) =>
      db.$with(`message_${index}`, {}).as(this.messages.upsert(db, message).getSQL()),
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
}
