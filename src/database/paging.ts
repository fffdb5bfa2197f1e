import { and, desc, lt, type SQL } from 'drizzle-orm';
import type { PgColumn } from 'drizzle-orm/pg-core';

/**
 * A page of rows newest first by their `seq` column, within `scope`, older than the cursor
 * `beforeSeq` when given. Callers fetch `limit + 1` rows to tell whether a next page exists.
 */
export function newestFirst(
  seq: PgColumn,
  scope: SQL,
  beforeSeq: number | null,
): { where: SQL | undefined; orderBy: SQL } {
  return {
    where: beforeSeq === null ? scope : and(scope, lt(seq, beforeSeq)),
    orderBy: desc(seq),
  };
}
