import { and, eq, type Placeholder, type SQL, sql } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';

/**
 * The lookup of a prepared statement: each column equals the placeholder of its key, so
 * `execute({ key: value })` names the same keys as the statement.
 */
export function byPlaceholders(columns: Readonly<Record<string, PgColumn>>): SQL | undefined {
  return and(...Object.entries(columns).map(([key, column]) => eq(column, sql.placeholder(key))));
}

/**
 * The values of a prepared insert: each column is the placeholder `prefix + column`, so that
 * two tables' rows in one statement keep apart. {@link prefixed} names the values to match.
 */
export function placeholderRow<K extends string>(
  columns: readonly K[],
  prefix = '',
): Record<K, Placeholder> {
  return Object.fromEntries(
    columns.map((column) => [column, sql.placeholder(prefix + column)]),
  ) as Record<K, Placeholder>;
}

/** A row's values named for the placeholders of {@link placeholderRow} with `prefix`. */
export function prefixed(prefix: string, row: object): Record<string, unknown> {
  return Object.fromEntries(Object.entries(row).map(([key, value]) => [prefix + key, value]));
}

/**
 * A placeholder for an update's set, encoded as `column` encodes its values (JSON, dates; an
 * update's set takes no bare placeholder), except null, which stays SQL NULL (a jsonb column
 * would otherwise store JSON `null`).
 */
export function encodedPlaceholder(placeholder: Placeholder, column: PgColumn): SQL {
  const encoder = {
    mapToDriverValue: (value: unknown): unknown =>
      value === null ? null : column.mapToDriverValue(value),
  };
  return sql`${sql.param(placeholder, encoder)}`;
}
