import { and, eq, type SQL, sql } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';

/**
 * The lookup of a prepared statement: each column equals the placeholder of its key, so
 * `execute({ key: value })` names the same keys as the statement.
 */
export function byPlaceholders(columns: Readonly<Record<string, PgColumn>>): SQL | undefined {
  return and(...Object.entries(columns).map(([key, column]) => eq(column, sql.placeholder(key))));
}
