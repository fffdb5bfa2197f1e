import { Injectable } from '@nestjs/common';
import { and, eq, inArray, type Placeholder, type SQL, sql } from 'drizzle-orm';
import { DatabaseClient } from '../../database/database.client.js';
import {
  byPlaceholders,
  encodedPlaceholder,
  placeholderRow,
  prefixed,
} from '../../database/placeholders.js';
import { turnFrames, turns, type TurnError, type TurnStatus } from '../../database/schema.js';
import { type MessageValues, MessagesRepository } from '../sessions/messages.repository.js';
import { SessionsRepository } from '../sessions/sessions.repository.js';

export type TurnRow = typeof turns.$inferSelect;
/** The columns of a new turn its caller gives (the rest are the statement's or defaults). */
const TURN_COLUMNS = [
  'id',
  'sessionId',
  'userId',
  'clientMsgId',
  'requestHash',
  'userMessageId',
  'actionType',
] as const;
export type NewTurn = Required<Pick<typeof turns.$inferInsert, (typeof TURN_COLUMNS)[number]>>;
/** Where the user message's placeholders are named apart from the turn's in `beginTurn`. */
const MESSAGE = 'message_';
/** How a turn can end. */
export type TurnEnding = Exclude<TurnStatus, 'running' | 'interrupted'>;

/** Thrown when a turn with the same idempotency key was started concurrently. */
export class TurnKeyTaken extends Error {}

/** Thrown when the user already holds MAX_STREAMS_PER_USER running turns (on any instance). */
export class StreamCapReached extends Error {}

/** The SQLSTATE and constraint of a database error (drizzle wraps the driver's in `cause`). */
function violation(error: unknown): { code: string; constraint: string } | null {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const { code, constraint } = current as { code?: unknown; constraint?: unknown };
    if (code === '23505' || code === '23514') {
      return { code, constraint: typeof constraint === 'string' ? constraint : '' };
    }
  }
  return null;
}

const SLOT_TAKEN = 'turns_running_slot_uq';
const NO_FREE_SLOT = 'turns_stream_slot_free';
/** Rounds a claim may lose beyond one per slot (turns of the user that end and start meanwhile). */
const SLOT_RACE_SLACK = 4;
/**
 * A free one of the user's `max` stream slots, or 0 (refused by the check constraint) —
 * evaluated inside the statement that claims it: `preferred` if it is free, else the next free
 * candidate after it (wrapping round). The lowest free slot is 1 or right after a held one, so
 * only those candidates are looked at (not every slot up to `max`), and one is found whenever
 * any slot is free.
 */
function freeSlot(
  userId: string | Placeholder,
  max: number | Placeholder,
  preferred: number | Placeholder,
  exceptTurnId: string | null = null,
) {
  const held = (slot: SQL) => sql`EXISTS (SELECT 1 FROM ${turns} WHERE ${turns.userId} = ${userId}
      AND ${turns.status} = 'running' AND ${turns.streamSlot} = ${slot}
      AND ${turns.id} <> ${exceptTurnId ?? ''})`;
  // `preferred` alone first: usually free, and then one index probe instead of one per candidate.
  return sql`COALESCE((SELECT ${preferred}::int WHERE ${preferred}::int <= ${max}::int
      AND NOT ${held(sql`${preferred}::int`)}),
    (SELECT c.s FROM (SELECT 1 AS s UNION ALL SELECT ${turns.streamSlot} + 1 FROM ${turns}
      WHERE ${turns.userId} = ${userId} AND ${turns.status} = 'running'
        AND ${turns.streamSlot} IS NOT NULL) AS c
    WHERE c.s <= ${max}::int AND NOT ${held(sql`c.s`)}
    ORDER BY (c.s - ${preferred}::int + ${max}::int) % ${max}::int LIMIT 1), 0)`;
}

/**
 * Runs a statement that claims one of `max` stream slots, again while it loses a race for one: a
 * lost race means another turn of the user took that slot in the same instant, never that none
 * is free (that is the check constraint). Each round one racer wins, so `max` racers all settle.
 * Each attempt prefers a random slot: claims of one user at once then rarely want the same one
 * (when all wanted the lowest free slot, every racer but one ran again).
 */
async function claimingSlot(
  max: number,
  run: (preferred: number) => Promise<unknown>,
): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await run(1 + Math.floor(Math.random() * max));
      return;
    } catch (error) {
      const found = violation(error);
      if (found?.constraint === NO_FREE_SLOT) throw new StreamCapReached();
      if (found?.constraint === SLOT_TAKEN) {
        if (attempt < max + SLOT_RACE_SLACK) continue;
        throw new StreamCapReached();
      }
      if (found?.code === '23505') throw new TurnKeyTaken();
      throw error;
    }
  }
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
  /**
   * Run on every turn, prepared once per connection: planning its slot subquery cost PostgreSQL
   * about as much as running it.
   */
  private readonly beginQuery;
  private readonly released = new Set<string>();
  private readonly finishQueries = new Map<number, ReturnType<TurnsRepository['prepareFinish']>>();

  constructor(
    private readonly database: DatabaseClient,
    private readonly messages: MessagesRepository,
    private readonly sessions: SessionsRepository,
  ) {
    this.byKeyQuery = database.db
      .select()
      .from(turns)
      .where(byPlaceholders({ sessionId: turns.sessionId, clientMsgId: turns.clientMsgId }))
      .prepare('turn_by_key');
    this.beginQuery = this.prepareBegin();
  }

  /**
   * One statement (data-modifying CTEs) rather than BEGIN + three + COMMIT: this runs on every
   * turn, and with embedded PGlite each statement costs about a millisecond of CPU.
   */
  private prepareBegin() {
    const { db } = this.database;
    const message = db.$with('new_message', {}).as(this.messages.insert(db, MESSAGE).getSQL());
    const touched = db
      .$with('touched_session', {})
      .as(
        this.sessions
          .touch(db, sql.placeholder('sessionId'), sql.placeholder('touchedAt'))
          .getSQL(),
      );
    return db
      .with(message, touched)
      .insert(turns)
      .values({
        ...placeholderRow(TURN_COLUMNS),
        status: 'running',
        owner: this.database.instanceId,
        streamSlot: freeSlot(
          sql.placeholder('userId'),
          sql.placeholder('maxStreams'),
          sql.placeholder('preferredSlot'),
        ),
      })
      .prepare('turn_begin');
  }

  async findByKey(sessionId: string, clientMsgId: string): Promise<TurnRow | null> {
    const [row] = await this.byKeyQuery.execute({ sessionId, clientMsgId });
    return row ?? null;
  }

  async findById(turnId: string): Promise<TurnRow | null> {
    const [row] = await this.database.db.select().from(turns).where(eq(turns.id, turnId));
    return row ?? null;
  }

  /**
   * Inserts the user message and a running turn holding one of the user's `maxStreams` slots,
   * and marks the session updated; StreamCapReached when no slot is free.
   */
  async begin(turn: NewTurn, userMessage: MessageValues, maxStreams: number): Promise<void> {
    const values = {
      ...turn,
      ...prefixed(MESSAGE, userMessage),
      touchedAt: new Date(),
      maxStreams,
    };
    await claimingSlot(maxStreams, (preferredSlot) =>
      this.database.write({ kind: 'begin', turnId: turn.id }, () =>
        this.beginQuery.execute({ ...values, preferredSlot }),
      ),
    );
  }

  /**
   * Runs a cancelled or interrupted turn again under the same key: its earlier partial replies
   * are superseded, so they are removed with their images.
   */
  async restart(
    turnId: string,
    userId: string,
    actionType: TurnRow['actionType'],
    maxStreams: number,
  ): Promise<void> {
    await claimingSlot(maxStreams, (preferredSlot) =>
      this.restartOnce(turnId, userId, actionType, maxStreams, preferredSlot),
    );
  }

  private async restartOnce(
    turnId: string,
    userId: string,
    actionType: TurnRow['actionType'],
    maxStreams: number,
    preferredSlot: number,
  ): Promise<void> {
    await this.database.db.transaction(async (tx) => {
      const claimed = await tx
        .update(turns)
        .set({
          status: 'running',
          owner: this.database.instanceId,
          streamSlot: freeSlot(userId, maxStreams, preferredSlot, turnId),
          actionType,
          messageIds: [],
          error: null,
          finishedAt: null,
        })
        .where(and(eq(turns.id, turnId), inArray(turns.status, ['cancelled', 'interrupted'])))
        .returning({ id: turns.id });
      if (claimed.length === 0) throw new TurnKeyTaken();
      await this.messages.deleteReplies(tx, turnId);
      // The earlier run's frame log (if it was persisted) is not this run's.
      await tx.delete(turnFrames).where(eq(turnFrames.turnId, turnId));
    });
  }

  /** Ends a turn: its assistant messages and its status land together, in one statement. */
  async finish(
    turnId: string,
    status: TurnEnding,
    assistantMessages: readonly MessageValues[],
    error: TurnError | null,
  ): Promise<void> {
    const values: Record<string, unknown> = {
      turnId,
      status,
      error,
      messageIds: assistantMessages.map((message) => message.id),
      finishedAt: new Date(),
    };
    assistantMessages.forEach((message, index) =>
      Object.assign(values, prefixed(`message${index}_`, message)),
    );
    await this.database.write({ kind: 'finish', turnId }, () =>
      this.finishQuery(assistantMessages.length).execute(values),
    );
  }

  /**
   * The end of a turn with `count` assistant messages, prepared once per count (like `begin`, it
   * runs on every turn): the messages' upserts as data-modifying CTEs, then the turn's update.
   */
  private finishQuery(count: number): ReturnType<TurnsRepository['prepareFinish']> {
    let query = this.finishQueries.get(count);
    if (!query) {
      query = this.prepareFinish(count);
      this.finishQueries.set(count, query);
    }
    return query;
  }

  private prepareFinish(count: number) {
    const { db } = this.database;
    const upserts = Array.from({ length: count }, (_, index) =>
      db.$with(`message_${index}`, {}).as(this.messages.upsert(db, `message${index}_`).getSQL()),
    );
    return (count === 0 ? db : db.with(...upserts))
      .update(turns)
      .set({
        status: encodedPlaceholder(sql.placeholder('status'), turns.status),
        error: encodedPlaceholder(sql.placeholder('error'), turns.error),
        messageIds: encodedPlaceholder(sql.placeholder('messageIds'), turns.messageIds),
        finishedAt: encodedPlaceholder(sql.placeholder('finishedAt'), turns.finishedAt),
      })
      .where(eq(turns.id, sql.placeholder('turnId')))
      .prepare(`turn_finish_${count}`);
  }

  /**
   * Ends a running turn without its messages: the fallback when its full terminal write failed.
   * `interrupted` keeps the key runnable (the reply is not stored, so it must not replay).
   */
  async interrupt(turnId: string, error: TurnError | null): Promise<void> {
    await this.database.write({ kind: 'interrupt', turnId }, () =>
      this.database.db
        .update(turns)
        .set({ status: 'interrupted', error, finishedAt: new Date() })
        .where(and(eq(turns.id, turnId), eq(turns.status, 'running'))),
    );
  }

  /**
   * The owner gives up a running turn it could not end: the orphan sweep ends it (as it does the
   * turns of a dead process) once the database takes writes again.
   */
  release(turnId: string): void {
    this.released.add(turnId);
  }

  /** Turns released by this process and still to be ended. */
  get releasedCount(): number {
    return this.released.size;
  }

  /** Ends the released turns (each one statement); those that still fail stay released. */
  async interruptReleased(): Promise<number> {
    let ended = 0;
    for (const turnId of [...this.released]) {
      await this.interrupt(turnId, null);
      this.released.delete(turnId);
      ended += 1;
    }
    return ended;
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
