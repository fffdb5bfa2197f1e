import { Injectable } from '@nestjs/common';
import { and, eq, type Placeholder } from 'drizzle-orm';
import { DatabaseClient, type Executor } from '../../database/database.client.js';
import { newestFirst } from '../../database/paging.js';
import { byPlaceholders, encodedPlaceholder, placeholderRow } from '../../database/placeholders.js';
import { sessions } from '../../database/schema.js';

export type SessionRow = typeof sessions.$inferSelect;

@Injectable()
export class SessionsRepository {
  // Prepared once: looked up on every turn, and building the query is a measurable share of it.
  private readonly ownedQuery;
  // Prepared once: a burst of new clients creates sessions all at once.
  private readonly createQuery;

  constructor(private readonly database: DatabaseClient) {
    this.ownedQuery = database.db
      .select()
      .from(sessions)
      .where(byPlaceholders({ id: sessions.id, userId: sessions.userId }))
      .prepare('session_owned');
    this.createQuery = database.db
      .insert(sessions)
      .values(placeholderRow(['id', 'userId', 'title', 'systemPrompt']))
      .returning()
      .prepare('session_create');
  }

  async create(row: {
    id: string;
    userId: string;
    title: string | null;
    systemPrompt: string | null;
  }): Promise<SessionRow> {
    const [created] = await this.createQuery.execute(row);
    return created;
  }

  /** Only the owner sees a session: anyone else gets null, as if it did not exist. */
  async findOwned(userId: string, id: string): Promise<SessionRow | null> {
    const [row] = await this.ownedQuery.execute({ id, userId });
    return row ?? null;
  }

  /** Newest first; `beforeSeq` is the cursor. Fetches one extra row to tell if a next page exists. */
  list(userId: string, limit: number, beforeSeq: number | null): Promise<SessionRow[]> {
    const query = this.database.db.select().from(sessions).$dynamic();
    return newestFirst(query, sessions.seq, eq(sessions.userId, userId), limit, beforeSeq);
  }

  /**
   * Marks the session as active at `at` (a turn started in it), for a caller that prepares it
   * inside its own statement: `id` and `at` are placeholders.
   */
  touch(db: Executor, id: Placeholder, at: Placeholder) {
    return db
      .update(sessions)
      .set({ updatedAt: encodedPlaceholder(at, sessions.updatedAt) })
      .where(eq(sessions.id, id));
  }

  async deleteOwned(userId: string, id: string): Promise<boolean> {
    const deleted = await this.database.db
      .delete(sessions)
      .where(and(eq(sessions.id, id), eq(sessions.userId, userId)))
      .returning({ id: sessions.id });
    return deleted.length > 0;
  }
}
