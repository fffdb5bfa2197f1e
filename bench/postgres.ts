/** A throwaway database on the PostgreSQL server of `--database-url`, one per Easel process. */
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import pg from 'pg';

/** `getconf CLK_TCK`: 100 on every Linux that matters here. */
const CLOCK_TICKS = 100;

export interface FreshDatabase {
  readonly url: string;
  readonly name: string;
  drop(): Promise<void>;
}

async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** Every run starts on empty tables, as PGlite's `memory://` does. */
export async function freshPostgres(adminUrl: string): Promise<FreshDatabase> {
  const name = `easel_bench_${randomBytes(6).toString('hex')}`;
  await withClient(adminUrl, (client) => client.query(`CREATE DATABASE ${name}`));
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    name,
    drop: () =>
      withClient(adminUrl, (client) =>
        client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`),
      ).then(() => undefined),
  };
}

/** Calls and execution time per normalised statement text. */
export type StatementCounts = ReadonlyMap<
  string,
  { readonly calls: number; readonly execMs: number }
>;

/**
 * What the server knows about its own work: statement counts (`pg_stat_statements`, when the
 * server preloads it) and its CPU time (when it runs on this machine, read from /proc).
 */
export class PostgresProbe {
  private constructor(
    private readonly adminUrl: string,
    /** Set when `pg_stat_statements` answers. */
    readonly statements: boolean,
    /** The postmaster's pid, when its processes are visible in /proc. */
    private readonly postmaster: number | null,
  ) {}

  static async open(adminUrl: string): Promise<PostgresProbe> {
    return withClient(adminUrl, async (client) => {
      let statements = false;
      try {
        await client.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
        await client.query('SELECT 1 FROM pg_stat_statements LIMIT 1');
        statements = true;
      } catch {
        // Not in shared_preload_libraries: the statement counts are left out.
      }
      // The checkpointer is a child of the postmaster; its parent is the server's root process.
      const { rows } = await client.query<{ pid: number }>(
        "SELECT pid FROM pg_stat_activity WHERE backend_type = 'checkpointer'",
      );
      const checkpointer = rows[0]?.pid;
      return new PostgresProbe(adminUrl, statements, checkpointer ? parentOf(checkpointer) : null);
    });
  }

  /**
   * Calls so far of each statement the clients of database `name` sent (empty without the
   * extension). Top level only: with `pg_stat_statements.track=all` the foreign-key checks run
   * inside an INSERT are counted too, but they are no round trips. Multi-row INSERTs that
   * differ only in their number of rows count as one statement. The execution time (planning
   * not included) is the database's own: unlike the server's CPU, other clients of a shared
   * server do not land in it.
   */
  async statementCounts(name: string): Promise<StatementCounts> {
    if (!this.statements) return new Map();
    return withClient(this.adminUrl, async (client) => {
      const { rows } = await client.query<{ query: string; calls: string; exec_ms: number }>(
        `SELECT query, sum(calls)::text AS calls, sum(total_exec_time) AS exec_ms
         FROM pg_stat_statements
         WHERE toplevel AND dbid = (SELECT oid FROM pg_database WHERE datname = $1)
         GROUP BY query`,
        [name],
      );
      const counts = new Map<string, { calls: number; execMs: number }>();
      for (const row of rows) {
        const query = row.query.replace(/(\([$\d, ]+\))(, \([$\d, ]+\))+/g, '$1, …');
        const known = counts.get(query) ?? { calls: 0, execMs: 0 };
        counts.set(query, {
          calls: known.calls + Number(row.calls),
          execMs: known.execMs + Number(row.exec_ms),
        });
      }
      return counts;
    });
  }

  /**
   * Transactions of database `name` so far, committed and rolled back: a statement that fails
   * (e.g. a unique violation retried by the caller) is a round trip `pg_stat_statements` does
   * not count, but it is a rollback here. `sessions`: connections opened to it (each one a new
   * backend that warms its caches: a pool that drops connections shows here).
   */
  async transactions(
    name: string,
  ): Promise<{ commits: number; rollbacks: number; sessions: number }> {
    return withClient(this.adminUrl, async (client) => {
      // The statistics are cached per transaction of the reading backend: a fresh snapshot.
      await client.query('SELECT pg_stat_clear_snapshot()');
      const { rows } = await client.query<{ commits: string; rollbacks: string; sessions: string }>(
        `SELECT xact_commit::text AS commits, xact_rollback::text AS rollbacks,
           sessions::text AS sessions
         FROM pg_stat_database WHERE datname = $1`,
        [name],
      );
      return {
        commits: Number(rows[0]?.commits),
        rollbacks: Number(rows[0]?.rollbacks),
        sessions: Number(rows[0]?.sessions),
      };
    });
  }

  /**
   * CPU ms the whole server used so far: the postmaster, its exited children (which it reaps,
   * so they land in its `cutime`/`cstime`) and its live children. NaN when not local.
   */
  cpuMs(): number {
    const root = this.postmaster;
    if (root === null) return NaN;
    try {
      const own = statFields(root);
      let ticks = own.utime + own.stime + own.cutime + own.cstime;
      for (const entry of readdirSync('/proc')) {
        if (!/^\d+$/.test(entry)) continue;
        try {
          const fields = statFields(Number(entry));
          if (fields.ppid === root) ticks += fields.utime + fields.stime;
        } catch {
          // Exited while we looked.
        }
      }
      return ticks * (1000 / CLOCK_TICKS);
    } catch {
      return NaN;
    }
  }
}

/** The difference of two statement counts, per `per` (e.g. per turn), largest first. */
export function statementsPer(
  before: StatementCounts,
  after: StatementCounts,
  per: number,
): Array<{ query: string; perTurn: number; execMsPerTurn: number }> {
  const rows: Array<{ query: string; perTurn: number; execMsPerTurn: number }> = [];
  for (const [query, { calls, execMs }] of after) {
    const earlier = before.get(query) ?? { calls: 0, execMs: 0 };
    const added = calls - earlier.calls;
    if (added > 0)
      rows.push({ query, perTurn: added / per, execMsPerTurn: (execMs - earlier.execMs) / per });
  }
  return rows.sort((a, b) => b.perTurn - a.perTurn);
}

function statFields(pid: number): {
  ppid: number;
  utime: number;
  stime: number;
  cutime: number;
  cstime: number;
} {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  // Fields after the parenthesised command name: ppid is field 4, utime 14 … cstime 17.
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return {
    ppid: Number(fields[1]),
    utime: Number(fields[11]),
    stime: Number(fields[12]),
    cutime: Number(fields[13]),
    cstime: Number(fields[14]),
  };
}

function parentOf(pid: number): number | null {
  try {
    return statFields(pid).ppid;
  } catch {
    return null;
  }
}
