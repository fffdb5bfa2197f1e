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
import { schema } from './schema.js';

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

  private constructor(
    readonly db: Database,
    readonly kind: 'postgres' | 'pglite',
    private readonly closeClient: () => Promise<void>,
    private readonly lockClient: pg.Client | null,
  ) {}

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
      const lockClient = new pg.Client({ connectionString: options.databaseUrl });
      const db = drizzlePg({ client: pool, schema });
      try {
        await migratePg(db, { migrationsFolder: MIGRATIONS });
        await lockClient.connect();
      } catch (error) {
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
