import { and, desc, lt, type SQL } from 'drizzle-orm';
import type { PgColumn, PgSelect } from 'drizzle-orm/pg-core';

/**
 * `query` as a page of rows newest first by their `seq` column, within `scope`, older than the
 * cursor `beforeSeq` when given: `limit + 1` rows at most, the extra one telling that a next
 * page exists.
 */
export function newestFirst<Q extends PgSelect>(
  query: Q,
  seq: PgColumn,
  scope: SQL,
  limit: number,
  beforeSeq: number | null,
): Q {
  return query
    .where(beforeSeq === null ? scope : and(scope, lt(seq, beforeSeq)))
    .orderBy(desc(seq))
    .limit(limit + 1);
}
