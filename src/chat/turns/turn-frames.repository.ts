import { Injectable } from '@nestjs/common';
import { and, asc, eq, gt, inArray, lt, ne, sql } from 'drizzle-orm';
import { DatabaseClient } from '../../database/database.client.js';
import { turnFrames, turns } from '../../database/schema.js';
import type { LoggedFrame } from './frame-log.js';

/** Frames read in one go by a follower on another instance. */
const READ_LIMIT = 500;

/**
 * The `turn_frames` table: the frame logs that must outlive their instance or be read by another
 * one (docs/architecture.md). Written in batches by the owner, read by followers elsewhere.
 */
@Injectable()
export class TurnFramesRepository {
  /**
   * Written every batch of every persisted turn, so one constant statement, prepared once per
   * connection: a batch is three array parameters (not one per column per row), and neither
   * the query nor its text is rebuilt.
   */
  private readonly appendQuery;

  constructor(private readonly database: DatabaseClient) {
    this.appendQuery = database.db
      .insert(turnFrames)
      .select(
        sql`SELECT ${sql.placeholder('turnId')}::text, * FROM unnest(${sql.placeholder('ids')}::int[],
          ${sql.placeholder('jsons')}::text[], ${sql.placeholder('terminals')}::bool[])`,
      )
      .onConflictDoNothing()
      .prepare('turn_frames_append');
  }

  /** One INSERT per batch; a batch written twice (a retry) changes nothing. */
  async append(turnId: string, frames: readonly LoggedFrame[]): Promise<void> {
    if (frames.length === 0) return;
    await this.appendQuery.execute({
      turnId,
      ids: frames.map((frame) => frame.id),
      jsons: frames.map((frame) => frame.json),
      terminals: frames.map((frame) => frame.terminal),
    });
  }

  /** The stored frames with id > `after`, in order. */
  async after(turnId: string, after: number): Promise<LoggedFrame[]> {
    return this.database.db
      .select({ id: turnFrames.id, json: turnFrames.json, terminal: turnFrames.terminal })
      .from(turnFrames)
      .where(and(eq(turnFrames.turnId, turnId), gt(turnFrames.id, after)))
      .orderBy(asc(turnFrames.id))
      .limit(READ_LIMIT);
  }

  /** Whether any frame of the turn is stored (a log that was persisted at all). */
  async has(turnId: string): Promise<boolean> {
    const rows = await this.database.db
      .select({ id: turnFrames.id })
      .from(turnFrames)
      .where(eq(turnFrames.turnId, turnId))
      .limit(1);
    return rows.length > 0;
  }

  /** A run of the key again starts a new log. */
  async clear(turnId: string): Promise<void> {
    await this.database.db.delete(turnFrames).where(eq(turnFrames.turnId, turnId));
  }

  /** Retention: the logs of turns that ended more than `windowMs` ago. */
  async deleteExpired(windowMs: number): Promise<void> {
    const ended = this.database.db
      .select({ id: turns.id })
      .from(turns)
      .where(
        and(
          ne(turns.status, 'running'),
          lt(turns.finishedAt, sql`now() - make_interval(secs => ${windowMs / 1000})`),
        ),
      );
    await this.database.db.delete(turnFrames).where(inArray(turnFrames.turnId, ended));
  }
}
