import { sql } from 'drizzle-orm';
import {
  bigserial,
  boolean,
  check,
  customType,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
} from 'drizzle-orm/pg-core';
import type {
  ActionType,
  Attempt,
  ImageFailureReason,
  MessageRole,
  MessageStatus,
  StreamErrorCode,
  Usage,
} from '../contract/index.js';

const bytea = customType<{ data: Buffer; driverData: Buffer | Uint8Array }>({
  dataType: () => 'bytea',
  fromDriver: (value) => (Buffer.isBuffer(value) ? value : Buffer.from(value)),
});

/** Every timestamp column: with its time zone, read as a Date. */
const timestamptz = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
/** When the row was inserted, set by the database. */
const createdAt = () => timestamptz('created_at').notNull().defaultNow();
/** The session a row belongs to: deleting the session deletes the row. */
const sessionRef = () =>
  text('session_id')
    .notNull()
    .references(() => sessions.id, { onDelete: 'cascade' });

export const sessions = pgTable(
  'sessions',
  {
    id: text('id').primaryKey(),
    userId: text('user_id').notNull(),
    title: text('title'),
    systemPrompt: text('system_prompt'),
    // A strictly increasing cursor key: created_at alone can tie.
    seq: bigserial('seq', { mode: 'number' }).notNull(),
    createdAt: createdAt(),
    updatedAt: timestamptz('updated_at').notNull().defaultNow(),
  },
  (t) => [index('sessions_user_seq_idx').on(t.userId, t.seq)],
);

/** What a message carries besides its text: the image it shows or why it has none. */
export interface MessageMetadata {
  usage?: Usage | null;
  generation_id?: string | null;
  truncated?: boolean;
  image?: {
    image_id: string;
    mime: string;
    model: string;
    image_prompt: string | null;
    width: number;
    height: number;
    generation_id: string | null;
    durable_url: string | null;
    attempts: Attempt[];
  };
  image_failed?: {
    reason: ImageFailureReason;
    attempts: Attempt[];
    /** The never-stored id X of a failed `reply_image` turn, so replay repeats the same frames. */
    pending_message_id?: string;
  };
}

export const messages = pgTable(
  'messages',
  {
    id: text('id').primaryKey(),
    sessionId: sessionRef(),
    turnId: text('turn_id'),
    role: text('role').$type<MessageRole>().notNull(),
    content: text('content').notNull(),
    clientMsgId: text('client_msg_id'),
    actionType: text('action_type').$type<ActionType>(),
    status: text('status').$type<MessageStatus>().notNull(),
    model: text('model'),
    metadata: jsonb('metadata').$type<MessageMetadata>().notNull().default({}),
    seq: bigserial('seq', { mode: 'number' }).notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    uniqueIndex('messages_session_client_msg_uq')
      .on(t.sessionId, t.clientMsgId)
      .where(sql`${t.clientMsgId} IS NOT NULL`),
    index('messages_session_seq_idx').on(t.sessionId, t.seq),
    index('messages_turn_idx').on(t.turnId),
  ],
);

/** A turn's bookkeeping status: `interrupted` = its process died while it ran. */
export const TURN_STATUSES = [
  'running',
  'completed',
  'failed',
  'cancelled',
  'interrupted',
] as const;
export type TurnStatus = (typeof TURN_STATUSES)[number];

export interface TurnError {
  code: StreamErrorCode;
  retryable: boolean;
  message: string;
  user_message: string;
  /**
   * A `reply_image` whose image failed and whose text reply Y then failed before its first
   * token: no message carries the diagnostic, so the turn does (and replay repeats it).
   */
  image_failed?: MessageMetadata['image_failed'];
}

/** One turn's bookkeeping: what idempotency, replay and crash recovery need. */
export const turns = pgTable(
  'turns',
  {
    id: text('id').primaryKey(),
    sessionId: sessionRef(),
    userId: text('user_id').notNull(),
    clientMsgId: text('client_msg_id').notNull(),
    requestHash: text('request_hash').notNull(),
    userMessageId: text('user_message_id').notNull(),
    actionType: text('action_type').$type<ActionType>(),
    status: text('status').$type<TurnStatus>().notNull(),
    /** The process running it ({@link DatabaseClient.instanceId}), to tell a dead owner from a live one. */
    owner: text('owner').notNull().default(''),
    /** Assistant message ids in stream order, written when the turn ends. */
    messageIds: jsonb('message_ids').$type<string[]>().notNull().default([]),
    error: jsonb('error').$type<TurnError>(),
    /**
     * Which of its user's MAX_STREAMS_PER_USER stream slots a running turn holds (1-based; 0 =
     * none was free, refused by the check). Unique among running turns, so the cap holds across
     * every instance on one database without a lock: two turns racing for a slot collide.
     */
    streamSlot: integer('stream_slot'),
    createdAt: createdAt(),
    finishedAt: timestamptz('finished_at'),
  },
  (t) => [
    uniqueIndex('turns_session_client_msg_uq').on(t.sessionId, t.clientMsgId),
    index('turns_status_idx').on(t.status),
    uniqueIndex('turns_running_slot_uq')
      .on(t.userId, t.streamSlot)
      .where(sql`${t.status} = 'running'`),
    check('turns_stream_slot_free', sql`${t.streamSlot} IS NULL OR ${t.streamSlot} > 0`),
  ],
);

/**
 * The frame log of a turn, persisted only when another instance may serve it: `continue` turns
 * and turns a client asked to follow on another instance (docs/architecture.md). `json` is the
 * frame exactly as it was first sent, so every instance serves the same bytes.
 */
export const turnFrames = pgTable(
  'turn_frames',
  {
    turnId: text('turn_id')
      .notNull()
      .references(() => turns.id, { onDelete: 'cascade' }),
    id: integer('id').notNull(),
    json: text('json').notNull(),
    terminal: boolean('terminal').notNull().default(false),
  },
  (t) => [primaryKey({ columns: [t.turnId, t.id] })],
);

/** One row that `readyz` rewrites while writes are failing, to learn when they work again. */
export const writeProbe = pgTable('write_probe', {
  id: integer('id').primaryKey(),
  at: timestamptz('at').notNull().defaultNow(),
});

/**
 * A generated image: what serves it (type, size) and whom it belongs to. Its bytes live in the
 * image store (src/images/image-store.ts), written before this row, found by the same id.
 */
export const images = pgTable(
  'images',
  {
    id: text('id').primaryKey(),
    sessionId: sessionRef(),
    messageId: text('message_id')
      .notNull()
      .references(() => messages.id, { onDelete: 'cascade' }),
    mime: text('mime').notNull(),
    width: integer('width').notNull(),
    height: integer('height').notNull(),
    size: integer('size').notNull(),
    createdAt: createdAt(),
  },
  (t) => [index('images_session_idx').on(t.sessionId)],
);

/**
 * The PostgreSQL image store: an image's bytes in chunks, so neither a write nor a read holds
 * one statement's worth of a whole image. No foreign key: the bytes are written before their
 * `images` row exists, and the orphan sweep removes chunks whose row is gone.
 */
export const imageChunks = pgTable(
  'image_chunks',
  {
    imageId: text('image_id').notNull(),
    seq: integer('seq').notNull(),
    bytes: bytea('bytes').notNull(),
    createdAt: createdAt(),
  },
  (t) => [
    primaryKey({ columns: [t.imageId, t.seq] }),
    index('image_chunks_created_idx').on(t.createdAt),
  ],
);

export const schema = { sessions, messages, turns, turnFrames, writeProbe, images, imageChunks };
