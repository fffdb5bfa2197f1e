import { sql } from 'drizzle-orm';
import type { QueryResult } from 'pg';
import { DatabaseClient, IN_MEMORY } from '../src/database/database.client.js';
import { freshDatabase } from './harness/app.js';

/**
 * The PostgreSQL pool (runs only with TEST_DATABASE_URL, see jest.config.js): a statement the
 * server refuses keeps its connection, so refused turns (a lost slot race, a 429) do not open
 * new connections; a connection the server ended is replaced.
 */

let store: Awaited<ReturnType<typeof freshDatabase>>;
let database: DatabaseClient;

beforeAll(async () => {
  store = await freshDatabase();
  database = await DatabaseClient.connect({ databaseUrl: store.url, dataDir: IN_MEMORY });
});

afterAll(async () => {
  await database?.close();
  await store?.drop();
});

async function backendPid(): Promise<number> {
  // On PostgreSQL, drizzle's `execute` answers the driver's own result.
  const result = await database.db.execute(sql`select pg_backend_pid() as pid`);
  return (result as unknown as QueryResult<{ pid: number }>).rows[0].pid;
}

it('keeps the connection of a statement the server refused', async () => {
  const pids = new Set([await backendPid()]);
  for (let attempt = 0; attempt < 5; attempt += 1) {
    await expect(database.db.execute(sql`select 1 / 0`)).rejects.toThrow();
    pids.add(await backendPid());
  }
  expect(pids.size).toBe(1);
});

it('replaces a connection the server ended', async () => {
  const before = await backendPid();
  await expect(
    database.db.execute(sql`select pg_terminate_backend(pg_backend_pid())`),
  ).rejects.toThrow();
  const after = await backendPid();
  expect(after).not.toBe(before);
  await expect(database.db.execute(sql`select 1`)).resolves.toBeDefined();
});
