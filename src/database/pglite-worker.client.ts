import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { PGlite, QueryOptions, Results } from '@electric-sql/pglite';
import {
  pgliteWorkerMain,
  type PGliteWorkerData,
  type WorkerFailure,
  type WorkerReply,
  type WorkerRequest,
} from './pglite.worker.js';

/**
 * The worker's nice value: 10 below the event loop (measured in the fault load: client leaves
 * seen 3–4× sooner at p50 when the database work yields the core).
 */
export const WORKER_NICENESS = 10;

/** A request without its id: the client numbers them. */
type Request = WorkerRequest extends infer R ? (R extends unknown ? Omit<R, 'id'> : never) : never;

/** The part of a PGlite transaction that drizzle's PGlite driver uses. */
interface WorkerTransaction {
  query<T>(sql: string, params?: unknown[], options?: QueryOptions): Promise<Results<T>>;
  readonly closed: boolean;
}

/**
 * Embedded PGlite in a worker thread, with the surface drizzle's PGlite driver uses (`query`,
 * `transaction`, `close`): every statement is posted to the worker and its rows come back.
 *
 * Why: in process, PGlite runs Postgres (wasm), parses the wire protocol and decodes results on
 * the event loop that relays stream frames — about 1 ms of CPU per statement that every open
 * stream waits behind. In a worker that work runs on another core, and the main thread pays
 * one structured copy of the parameters and the rows.
 *
 * `transaction(fn)` keeps drizzle's semantics: `begin` opens a PGlite transaction in the worker
 * (holding PGlite's own lock, so other statements wait as they do in process), `fn`'s statements
 * run in it, and `end` commits, or rolls back when `fn` throws.
 */
export class PGliteWorkerClient {
  private nextId = 1;
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void }
  >();
  private failed: Error | null = null;

  private constructor(private readonly worker: Worker) {
    worker.on('message', (reply: WorkerReply) => this.settle(reply));
    // A dead worker fails everything in flight and everything after: the process has no database.
    const fail = (error: Error): void => {
      this.failed ??= error;
      for (const { reject } of this.pending.values()) reject(this.failed);
      this.pending.clear();
    };
    worker.on('error', fail);
    worker.on('exit', (code) => fail(new Error(`the PGlite worker exited (code ${code})`)));
  }

  /** Starts the worker and waits until PGlite is up (a new database takes seconds: initdb). */
  static async start(options: {
    dataDir: string | undefined;
    startParams?: readonly string[];
  }): Promise<PGliteWorkerClient> {
    const workerData: PGliteWorkerData = {
      pgliteUrl: pathToFileURL(createRequire(import.meta.url).resolve('@electric-sql/pglite')).href,
      dataDir: options.dataDir,
      startParams: options.startParams,
      niceness: WORKER_NICENESS,
    };
    const worker = new Worker(`(${pgliteWorkerMain.toString()})()`, { eval: true, workerData });
    const client = new PGliteWorkerClient(worker);
    const started = new Promise((resolve, reject) => client.pending.set(0, { resolve, reject }));
    try {
      await started;
    } catch (error) {
      await worker.terminate();
      throw error;
    }
    return client;
  }

  /** Typed as the PGlite drizzle expects; only the members drizzle calls exist (see above). */
  asPGlite(): PGlite {
    return this as unknown as PGlite;
  }

  query<T>(sql: string, params: unknown[] = [], options?: QueryOptions): Promise<Results<T>> {
    return this.statement<T>(null, sql, params, options);
  }

  async transaction<T>(fn: (tx: WorkerTransaction) => Promise<T>): Promise<T> {
    const tx = (await this.request({ op: 'begin' })).id;
    let closed = false;
    const handle: WorkerTransaction = {
      query: (sql, params = [], options) => this.statement(tx, sql, params, options),
      get closed() {
        return closed;
      },
    };
    let result: T;
    try {
      result = await fn(handle);
    } catch (error) {
      closed = true;
      await this.request({ op: 'end', tx, commit: false });
      throw error;
    }
    closed = true;
    await this.request({ op: 'end', tx, commit: true });
    return result;
  }

  private closing: Promise<void> | null = null;

  /** Closes PGlite (it flushes a data folder) and ends the thread, so nothing lingers. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      try {
        if (!this.failed) await this.request({ op: 'close' });
      } finally {
        await this.worker.terminate();
      }
    })();
    return this.closing;
  }

  private async statement<T>(
    tx: number | null,
    sql: string,
    params: unknown[],
    options: QueryOptions | undefined,
  ): Promise<Results<T>> {
    const { value } = await this.request({
      op: 'query',
      tx,
      sql,
      params,
      rowMode: options?.rowMode ?? 'object',
      textTypes: Object.keys(options?.parsers ?? {}).map(Number),
    });
    return value as Results<T>;
  }

  private request(request: Request): Promise<{ id: number; value: unknown }> {
    if (this.failed) return Promise.reject(this.failed);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve: (value) => resolve({ id, value }), reject });
      this.worker.postMessage({ ...request, id } as WorkerRequest);
    });
  }

  private settle(reply: WorkerReply): void {
    const waiting = this.pending.get(reply.id);
    if (!waiting) return;
    this.pending.delete(reply.id);
    if (reply.ok) waiting.resolve(reply.value);
    else waiting.reject(revive(reply.error));
  }
}

/** The worker's error as an Error again, with its fields (a Postgres `code` and the like). */
function revive(failure: WorkerFailure): Error {
  const error = new Error(failure.message);
  if (failure.name) error.name = failure.name;
  Object.assign(error, failure.fields);
  return error;
}
