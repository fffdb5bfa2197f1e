import { Injectable } from '@nestjs/common';
import { and, asc, desc, eq, inArray, ne, type SQL, sql } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';
import { DatabaseClient, type Executor } from '../../database/database.client.js';
import { newestFirst } from '../../database/paging.js';
import { placeholderRow, prefixed } from '../../database/placeholders.js';
import { images, messages } from '../../database/schema.js';
import { ImageStore } from '../../images/image-store.js';
import { type ImageValues, imagePlaceholders } from '../../images/images.repository.js';

export type MessageRow = typeof messages.$inferSelect;
export type NewMessage = typeof messages.$inferInsert;

/** The columns a prepared insert of a message writes: all but those the database fills in. */
const MESSAGE_COLUMNS = [
  'id',
  'sessionId',
  'turnId',
  'role',
  'content',
  'clientMsgId',
  'actionType',
  'status',
  'model',
  'metadata',
] as const;
/** A message for a prepared insert: every column it writes is given (none left to a default). */
export type MessageValues = Required<Pick<NewMessage, (typeof MESSAGE_COLUMNS)[number]>>;

/** Where a saved image's message and row are named apart in `message_with_image`. */
const SAVED_MESSAGE = 'message_';
const SAVED_IMAGE = 'image_';

/** The `messages` table: history reads, and the writes a turn composes into its own statements. */
@Injectable()
export class MessagesRepository {
  // Read on every turn, prepared once: building the query is a measurable share of its cost.
  private readonly contextQuery;
  // Run for every image, prepared once (like a turn's begin and end).
  private readonly withImageQuery;

  constructor(
    private readonly database: DatabaseClient,
    private readonly store: ImageStore,
  ) {
    this.contextQuery = database.db
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
    const { db } = database;
    const saved = db.$with('saved_message', {}).as(this.upsert(db, SAVED_MESSAGE).getSQL());
    this.withImageQuery = db
      .with(saved)
      .insert(images)
      .values(imagePlaceholders(SAVED_IMAGE))
      .prepare('message_with_image');
  }

  /**
   * The insert of a new message, for a caller that prepares it inside its own statement: its
   * values are the placeholders `prefix + column` ({@link prefixed} of a {@link MessageValues}).
   */
  insert(db: Executor, prefix: string) {
    return db.insert(messages).values(placeholderRow(MESSAGE_COLUMNS, prefix));
  }

  /**
   * Insert or update of an assistant message as it stands now, for a caller that prepares it
   * inside its own statement: the values are the placeholders `prefix + column`, and a row that
   * exists takes the new ones (`excluded`).
   */
  upsert(db: Executor, prefix: string) {
    const excluded = (column: PgColumn): SQL => sql`excluded.${sql.identifier(column.name)}`;
    return this.insert(db, prefix).onConflictDoUpdate({
      target: messages.id,
      set: {
        content: excluded(messages.content),
        status: excluded(messages.status),
        model: excluded(messages.model),
        actionType: excluded(messages.actionType),
        metadata: excluded(messages.metadata),
      },
    });
  }

  /** A re-run turn supersedes its earlier partial replies (their images go with them). */
  deleteReplies(db: Executor, turnId: string) {
    return db
      .delete(messages)
      .where(and(eq(messages.turnId, turnId), eq(messages.role, 'assistant')));
  }

  /**
   * Stores an image's bytes, then the assistant message and the image's row in one statement:
   * a row never points at bytes that are not durable yet. If the statement fails, the bytes
   * stay for the orphan sweep: it may have committed with only its answer lost.
   */
  async saveWithImage(message: MessageValues, image: ImageValues, bytes: Buffer): Promise<void> {
    await this.store.put(image.id, bytes);
    await this.withImageQuery.execute({
      ...prefixed(SAVED_MESSAGE, message),
      ...prefixed(SAVED_IMAGE, image),
    });
  }

  /** The latest `limit` messages before the turn being run, oldest first, for the model's context. */
  async context(sessionId: string, exceptTurnId: string, limit: number): Promise<MessageRow[]> {
    if (limit === 0) return [];
    const rows = await this.contextQuery.execute({ sessionId, exceptTurnId, limit });
    return rows.reverse();
  }

  /** Newest first, one extra row to tell if a next page exists. */
  list(sessionId: string, limit: number, beforeSeq: number | null): Promise<MessageRow[]> {
    const query = this.database.db.select().from(messages).$dynamic();
    return newestFirst(query, messages.seq, eq(messages.sessionId, sessionId), limit, beforeSeq);
  }

  async find(sessionId: string, messageId: string): Promise<MessageRow | null> {
    const [row] = await this.database.db
      .select()
      .from(messages)
      .where(and(eq(messages.sessionId, sessionId), eq(messages.id, messageId)));
    return row ?? null;
  }

  /** Messages by id, in the order of `ids` (a turn's assistant messages in stream order). */
  async inOrder(ids: readonly string[]): Promise<MessageRow[]> {
    if (ids.length === 0) return [];
    const rows = await this.database.db
      .select()
      .from(messages)
      .where(inArray(messages.id, [...ids]))
      .orderBy(asc(messages.seq));
    const byId = new Map(rows.map((row) => [row.id, row]));
    return ids.flatMap((id) => byId.get(id) ?? []);
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
