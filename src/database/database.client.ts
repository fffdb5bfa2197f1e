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
import { schema } from './schema.js';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

const MIGRATIONS = fileURLToPath(new URL('../../drizzle', import.meta.url));

/** `DATA_DIR=memory://` keeps PGlite in memory (tests); anything else is a folder. */
export const IN_MEMORY = 'memory://';

/** One database connection (PostgreSQL pool or embedded PGlite) with its schema migrated. */
export class DatabaseClient {
  private constructor(
    readonly db: Database,
    readonly kind: 'postgres' | 'pglite',
    private readonly closeClient: () => Promise<void>,
  ) {}

  static async connect(options: {
    databaseUrl: string | null;
    dataDir: string;
  }): Promise<DatabaseClient> {
    if (options.databaseUrl) {
      const pool = new pg.Pool({ connectionString: options.databaseUrl, max: 10 });
      const db = drizzlePg({ client: pool, schema });
      try {
        await migratePg(db, { migrationsFolder: MIGRATIONS });
      } catch (error) {
        await pool.end();
        throw error;
      }
      return new DatabaseClient(db, 'postgres', () => pool.end());
    }
    if (options.dataDir !== IN_MEMORY) mkdirSync(options.dataDir, { recursive: true });
    const client = await PGlite.create(options.dataDir === IN_MEMORY ? undefined : options.dataDir);
    const db = drizzlePglite({ client, schema });
    try {
      await migratePglite(db, { migrationsFolder: MIGRATIONS });
    } catch (error) {
      await client.close();
      throw error;
    }
    return new DatabaseClient(db, 'pglite', () => client.close());
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
