/**
 * The thread that owns embedded PGlite (see `PGliteWorkerClient`): Postgres in wasm, its wire
 * protocol parsing and its result decoding all run here, off the event loop that relays frames.
 *
 * The worker runs from this function's own source text (`eval`), so the same code runs from
 * `dist/` and from the TypeScript sources under jest. Hence the rule for this function: it uses
 * nothing from outside its own body (modules come in by `import()` of the URLs in `workerData`),
 * and the types below are only there for the compiler.
 */
export function pgliteWorkerMain(): void {
  void (async () => {
    const { parentPort, workerData } =
      (await import('node:worker_threads')) as typeof import('node:worker_threads');
    const { PGlite } = (await import(
      (workerData as PGliteWorkerData).pgliteUrl
    )) as typeof import('@electric-sql/pglite');
    type Tx = import('@electric-sql/pglite').Transaction;
    const port = parentPort;
    if (!port) return;
    const { dataDir, startParams, niceness } = workerData as PGliteWorkerData;
    // Below the event loop's priority: when cores are short, the thread that relays frames and
    // sees clients leave runs first, and statements wait (they are queued work, not latency).
    // Linux takes a thread id where setpriority wants a process; elsewhere this is skipped.
    try {
      const { readlinkSync } = (await import('node:fs')) as typeof import('node:fs');
      const { setPriority } = (await import('node:os')) as typeof import('node:os');
      setPriority(Number(readlinkSync('/proc/thread-self').split('/').pop()), niceness);
    } catch {
      // No /proc/thread-self (not Linux) or not permitted: the thread keeps the default priority.
    }

    /** A thrown value as plain data: an Error's own fields (`code`, `detail`…) survive the copy. */
    const failure = (error: unknown): WorkerFailure => {
      if (!(error instanceof Error)) return { message: String(error), fields: {} };
      const fields: Record<string, unknown> = {};
      for (const [key, value] of Object.entries(error)) {
        if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) {
          fields[key] = value;
        }
      }
      return { message: error.message, name: error.name, fields };
    };
    const reply = (message: WorkerReply): void => port.postMessage(message);

    let db: InstanceType<typeof PGlite>;
    try {
      db = await PGlite.create(dataDir, startParams ? { startParams: [...startParams] } : {});
    } catch (error) {
      reply({ id: 0, ok: false, error: failure(error) });
      return;
    }
    reply({ id: 0, ok: true, value: null });

    /** Open transactions: their queries, and the way to end them. */
    const transactions = new Map<
      number,
      { tx: Tx; end: (commit: boolean) => void; done: Promise<void> }
    >();

    const run = async (request: WorkerRequest): Promise<unknown> => {
      switch (request.op) {
        case 'query': {
          const target = request.tx === null ? db : transactions.get(request.tx)?.tx;
          if (!target) throw new Error(`transaction ${request.tx} is not open`);
          // Parsers are functions and cannot cross threads; the only ones the callers (drizzle)
          // pass keep a type's text as it is, so they are rebuilt here from the type ids.
          const parsers = Object.fromEntries(
            request.textTypes.map((oid) => [oid, (value: string) => value]),
          );
          const result = await target.query(request.sql, [...request.params], {
            rowMode: request.rowMode,
            parsers,
          });
          return { rows: result.rows, affectedRows: result.affectedRows, fields: result.fields };
        }
        case 'begin': {
          // PGlite's own transaction() holds its lock, so other statements wait as they do in
          // process; the callback stays pending until `end` commits or rolls it back.
          let opened = (): void => undefined;
          const isOpen = new Promise<void>((resolve) => (opened = resolve));
          const done = db.transaction(
            (tx) =>
              new Promise<void>((commit, rollback) => {
                transactions.set(request.id, {
                  tx,
                  end: (ok) => (ok ? commit() : rollback(new Error('rolled back'))),
                  done,
                });
                opened();
              }),
          );
          // Awaited by `end`; this only keeps a rollback from counting as unhandled meanwhile.
          done.catch(() => undefined);
          await Promise.race([isOpen, done]);
          return null;
        }
        case 'end': {
          const open = transactions.get(request.tx);
          if (!open) throw new Error(`transaction ${request.tx} is not open`);
          transactions.delete(request.tx);
          open.end(request.commit);
          if (request.commit) await open.done;
          else await open.done.catch(() => undefined);
          return null;
        }
        case 'close':
          await db.close();
          return null;
      }
    };

    port.on('message', (request: WorkerRequest) => {
      run(request).then(
        (value) => {
          reply({ id: request.id, ok: true, value });
          if (request.op === 'close') port.close();
        },
        (error: unknown) => reply({ id: request.id, ok: false, error: failure(error) }),
      );
    });
  })();
}

/** What the worker is started with. */
export interface PGliteWorkerData {
  /** A file URL of `@electric-sql/pglite`, resolved by the main thread. */
  readonly pgliteUrl: string;
  /** A folder, or undefined for an in-memory database. */
  readonly dataDir: string | undefined;
  /** The worker thread's nice value (Linux). */
  readonly niceness: number;
  readonly startParams: readonly string[] | undefined;
}

export type WorkerRequest =
  | {
      readonly id: number;
      readonly op: 'query';
      /** The transaction (its `begin` request id) the statement runs in, or null. */
      readonly tx: number | null;
      readonly sql: string;
      readonly params: readonly unknown[];
      readonly rowMode: 'array' | 'object';
      /** Type ids whose values are returned as text. */
      readonly textTypes: readonly number[];
    }
  | { readonly id: number; readonly op: 'begin' }
  | { readonly id: number; readonly op: 'end'; readonly tx: number; readonly commit: boolean }
  | { readonly id: number; readonly op: 'close' };

export interface WorkerFailure {
  readonly message: string;
  readonly name?: string;
  readonly fields: Record<string, unknown>;
}

/** `id` 0 answers the start (PGlite created, or not). */
export type WorkerReply =
  | { readonly id: number; readonly ok: true; readonly value: unknown }
  | { readonly id: number; readonly ok: false; readonly error: WorkerFailure };
