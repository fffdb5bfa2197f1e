import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'drizzle-orm';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import { drizzle as drizzlePg } from 'drizzle-orm/node-postgres';
import { migrate as migratePg } from 'drizzle-orm/node-postgres/migrator';
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite';
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator';
import pg from 'pg';
import { PGliteWorkerClient } from './pglite-worker.client.js';
import { schema, writeProbe } from './schema.js';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;
/** What a repository's write takes: the database, or a transaction another repository opened. */
export type Executor = Database | Parameters<Parameters<Database['transaction']>[0]>[0];

const MIGRATIONS = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** `DATA_DIR=memory://` keeps PGlite in memory (tests); anything else is a folder. */
export const IN_MEMORY = 'memory://';

/**
 * PGlite's own start parameters plus a smaller buffer cache: 16 MB instead of Postgres' 128 MB
 * default took ~120 MB off an idle process's RSS (the wasm heap starts at 128 MB instead of
 * 189 MB), and an embedded database this size is served from the OS page cache anyway.
 */
const PGLITE_START_PARAMS: readonly string[] = [
  ...PGlite.defaultStartParams,
  '-c',
  'shared_buffers=16MB',
];

/**
 * Error classes that mean the database refuses writes (not that one value was bad): connection
 * lost (08), insufficient resources such as a full disk (53), operator intervention (57),
 * read-only transaction (25006). Errors without a code are the driver's own (socket closed).
 */
const REFUSAL = /^(08|53|57)|^25006$/;

function sqlState(error: unknown): string | null {
  for (let current: unknown = error; current instanceof Error; current = current.cause) {
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code;
  }
  return null;
}

/** A write the fault seam refused ({@link DatabaseClient.injectFaults}): a full disk, for tests. */
export class InjectedWriteFault extends Error {
  readonly code = '53100';
  constructor() {
    super('could not extend file: No space left on device (injected)');
  }
}

/** The turn-lifecycle writes that go through {@link DatabaseClient.write}, by statement. */
export const WRITE_KINDS = ['begin', 'finish', 'interrupt', 'probe'] as const;
export type WriteKind = (typeof WRITE_KINDS)[number];

/** What a write is, so that the fault seam can pick some: its statement and its turn. */
export interface WriteTarget {
  readonly kind: WriteKind;
  readonly turnId?: string;
}

/** What the test seam does to the next writes: refuse them, or delay them. */
export interface WriteFaults {
  /** How many of the next writes fail with {@link InjectedWriteFault}. */
  failWrites?: number;
  /**
   * Every write this returns true for fails with {@link InjectedWriteFault} until the faults are
   * replaced: a share of one statement kind (the fault load fails 10 % of turns' finishes).
   */
  failWhen?: ((target: WriteTarget) => boolean) | null;
  /** Each of the next `delayWrites` writes waits this long first (database queueing). */
  delayMs?: number;
  delayWrites?: number;
}

type Listener = (payload: string) => void;

/**
 * Makes the pool's single statements keep their connection after an error the server answered
 * with. pg-pool's own `query` releases the client with the error, which closes it: every refused
 * statement (a lost stream-slot race, a 429 at the cap, a taken idempotency key) then cost a new
 * connection — a backend started and its caches warmed on the server, the named statements
 * prepared again; in the bench, ≈10 ms of PostgreSQL CPU per turn at 10 turns per user. Such an
 * error leaves the connection usable (drizzle's transactions already rely on it); a broken
 * connection (a driver error, or a FATAL that ends the session) is still dropped.
 */
function keepConnectionsOnStatementErrors(pool: pg.Pool): void {
  pool.query = (async (config: pg.QueryConfig, values?: unknown[]) => {
    const client = await pool.connect();
    let broken: Error | undefined;
    const onError = (error: Error): void => {
      broken = error;
    };
    client.on('error', onError);
    try {
      return await client.query(config, values);
    } catch (error) {
      if (!(error instanceof pg.DatabaseError && error.severity === 'ERROR'))
        broken = error as Error;
      throw error;
    } finally {
      client.off('error', onError);
      client.release(broken);
    }
  }) as typeof pool.query;
}

/** The advisory-lock key that serialises migrations across instances booting at once. */
const MIGRATION_LOCK = "hashtextextended('easel:migrations', 0)";

/** The advisory-lock key of an instance id (PostgreSQL's own 64-bit text hash). */
const LOCK = 'hashtextextended($1, 0)';

/**
 * One database connection (PostgreSQL pool or embedded PGlite) with its schema migrated.
 *
 * Each process has an `instanceId`. On PostgreSQL it holds an advisory lock on it through a
 * connection of its own for as long as it lives, so another process can tell whether the owner
 * of a running turn is alive: the server frees the lock when the owner's connection dies.
 */
export class DatabaseClient {
  readonly instanceId = randomUUID();
  private faults: Required<WriteFaults> = {
    failWrites: 0,
    failWhen: null,
    delayMs: 0,
    delayWrites: 0,
  };
  private refusing = false;
  private readonly listeners = new Map<string, Set<Listener>>();

  private constructor(
    readonly db: Database,
    readonly kind: 'postgres' | 'pglite',
    private readonly closeClient: () => Promise<void>,
    /** PostgreSQL only: a connection of its own, outside the pool, for the lock and LISTEN. */
    private readonly lockClient: pg.Client | null,
  ) {
    lockClient?.on('notification', (message) =>
      this.dispatch(message.channel, message.payload ?? ''),
    );
  }

  /**
   * Runs a write that the turn lifecycle depends on, through the fault seam, and remembers
   * whether the database refuses writes (for readiness): a refusal sets it, any success clears it.
   * `target` says which write it is, for the seam only.
   */
  async write<T>(target: WriteTarget, run: () => Promise<T>): Promise<T> {
    if (this.faults.delayWrites > 0) {
      this.faults.delayWrites -= 1;
      await new Promise((resolve) => setTimeout(resolve, this.faults.delayMs));
    }
    try {
      if (this.faults.failWrites > 0) {
        this.faults.failWrites -= 1;
        throw new InjectedWriteFault();
      }
      if (this.faults.failWhen?.(target)) throw new InjectedWriteFault();
      const result = await run();
      this.refusing = false;
      return result;
    } catch (error) {
      const state = sqlState(error);
      if (state === null ? !(error instanceof TypeError) : REFUSAL.test(state))
        this.refusing = true;
      throw error;
    }
  }

  /** True while the last write the database got was refused (and none has worked since). */
  get refusingWrites(): boolean {
    return this.refusing;
  }

  /** One real write, through the seam: how readiness learns that writes work again. */
  async probeWrite(): Promise<void> {
    await this.write({ kind: 'probe' }, () =>
      this.db
        .insert(writeProbe)
        .values({ id: 1, at: new Date() })
        .onConflictDoUpdate({ target: writeProbe.id, set: { at: new Date() } }),
    );
  }

  /** The test seam: makes the next writes fail or wait. */
  injectFaults(faults: WriteFaults): void {
    this.faults = {
      failWrites: faults.failWrites ?? 0,
      failWhen: faults.failWhen ?? null,
      delayMs: faults.delayMs ?? 0,
      delayWrites: faults.delayWrites ?? 0,
    };
  }

  /**
   * Subscribes to a NOTIFY channel (control messages between instances). With PGlite there is
   * one process, so nothing is ever sent to it from elsewhere and no LISTEN is issued.
   */
  async listen(channel: string, listener: Listener): Promise<() => void> {
    let set = this.listeners.get(channel);
    if (!set) {
      set = new Set();
      this.listeners.set(channel, set);
      if (this.lockClient) await this.lockClient.query(`LISTEN ${channel}`);
    }
    set.add(listener);
    return () => set.delete(listener);
  }

  /** Sends a control message to every instance listening on `channel` (this one included). */
  async notify(channel: string, payload: string): Promise<void> {
    if (this.kind === 'pglite') return this.dispatch(channel, payload);
    await this.db.execute(sql`select pg_notify(${channel}, ${payload})`);
  }

  private dispatch(channel: string, payload: string): void {
    for (const listener of this.listeners.get(channel) ?? []) listener(payload);
  }

  /** Whether the process `owner` still runs. Embedded PGlite has one process: this one. */
  async isAlive(owner: string): Promise<boolean> {
    if (owner === this.instanceId || !this.lockClient) return owner === this.instanceId;
    const { rows } = await this.lockClient.query<{ free: boolean }>(
      `SELECT pg_try_advisory_lock(${LOCK}) AS free`,
      [owner],
    );
    if (!rows[0]?.free) return true;
    await this.lockClient.query(`SELECT pg_advisory_unlock(${LOCK})`, [owner]);
    return false;
  }

  static async connect(options: {
    databaseUrl: string | null;
    dataDir: string;
    /** Embedded PGlite in a worker thread (default) or on the main thread. */
    pgliteWorker?: boolean;
  }): Promise<DatabaseClient> {
    if (options.databaseUrl) {
      const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 10 });
      keepConnectionsOnStatementErrors(pool);
      const lockClient = new pg.Client({ connectionString: options.databaseUrl });
      const db = drizzlePg({ client: pool, schema });
      try {
        await lockClient.connect();
        // Instances that boot together must not run the same migration twice: one at a time.
        await lockClient.query(`SELECT pg_advisory_lock(${MIGRATION_LOCK})`);
        try {
          await migratePg(db, { migrationsFolder: MIGRATIONS });
        } finally {
          await lockClient.query(`SELECT pg_advisory_unlock(${MIGRATION_LOCK})`);
        }
      } catch (error) {
        await lockClient.end().catch(() => undefined);
        await pool.end();
        throw error;
      }
      const client: DatabaseClient = new DatabaseClient(
        db,
        'postgres',
        async () => {
          await lockClient.end();
          await pool.end();
        },
        lockClient,
      );
      await lockClient.query(`SELECT pg_advisory_lock(${LOCK})`, [client.instanceId]);
      return client;
    }
    if (options.dataDir !== IN_MEMORY) mkdirSync(options.dataDir, { recursive: true });
    const dataDir = options.dataDir === IN_MEMORY ? undefined : options.dataDir;
    const client =
      (options.pgliteWorker ?? true)
        ? await PGliteWorkerClient.start({ dataDir, startParams: PGLITE_START_PARAMS })
        : await PGlite.create(dataDir, { startParams: [...PGLITE_START_PARAMS] });
    const db = drizzlePglite({
      client: client instanceof PGliteWorkerClient ? client.asPGlite() : client,
      schema,
    });
    try {
      await migratePglite(db, { migrationsFolder: MIGRATIONS });
    } catch (error) {
      await client.close();
      throw error;
    }
    return new DatabaseClient(db, 'pglite', () => client.close(), null);
  }

  async ping(): Promise<void> {
    await this.db.execute(sql`select 1`);
  }

  private closing: Promise<void> | null = null;

  close(): Promise<void> {
    this.closing ??= this.closeClient();
    return this.closing;
  }
}
