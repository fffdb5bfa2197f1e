import { readdirSync, readFileSync } from 'node:fs';
import { PGliteWorkerClient, WORKER_NICENESS } from './pglite-worker.client.js';

/** The nice value of each thread of this process (Linux: field 19 of its stat). */
function threadNiceness(): Map<string, number> {
  const nice = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    // Fields after the command name, which may hold spaces, start at field 3.
    nice.set(tid, Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]));
  }
  return nice;
}

const onLinux = process.platform === 'linux' ? it : it.skip;

describe('PGliteWorkerClient', () => {
  let client: PGliteWorkerClient;

  beforeAll(async () => {
    client = await PGliteWorkerClient.start({ dataDir: undefined });
    await client.query('CREATE TABLE items (id int PRIMARY KEY, at timestamptz, raw bytea)');
  }, 60_000);

  afterAll(() => client.close());

  beforeEach(() => client.query('DELETE FROM items'));

  const ids = async (): Promise<number[]> =>
    (await client.query<{ id: number }>('SELECT id FROM items ORDER BY id')).rows.map((r) => r.id);

  onLinux(
    "runs its database thread below the event loop's priority",
    async () => {
      const before = threadNiceness();
      const second = await PGliteWorkerClient.start({ dataDir: undefined });
      try {
        const added = [...threadNiceness()].filter(([tid]) => !before.has(tid));
        expect(added.filter(([, nice]) => nice === WORKER_NICENESS)).toHaveLength(1);
        expect(threadNiceness().get(String(process.pid))).toBe(0);
      } finally {
        await second.close();
      }
    },
    60_000,
  );

  it('runs a statement with parameters and returns rows in either row mode', async () => {
    const bytes = Uint8Array.from([1, 2, 3]);
    await client.query('INSERT INTO items VALUES ($1, $2, $3)', [1, '2026-01-02T03:04:05Z', bytes]);
    const asObjects = await client.query<{ id: number; raw: Uint8Array }>(
      'SELECT id, raw FROM items',
    );
    expect(asObjects.rows).toEqual([{ id: 1, raw: bytes }]);
    const asArrays = await client.query('SELECT id FROM items', [], { rowMode: 'array' });
    expect(asArrays.rows).toEqual([[1]]);
  });

  it('keeps the types a caller gives text parsers for as text, and parses the others', async () => {
    await client.query('INSERT INTO items VALUES (1, $1)', ['2026-01-02T03:04:05Z']);
    const text = await client.query<{ at: unknown }>('SELECT at FROM items', [], {
      parsers: { 1184: (value: string) => value },
    });
    expect(typeof text.rows[0].at).toBe('string');
    const parsed = await client.query<{ at: unknown }>('SELECT at FROM items');
    // Structured clone builds the Date in Node's realm, not jest's: compare by tag.
    expect(Object.prototype.toString.call(parsed.rows[0].at)).toBe('[object Date]');
  });

  it('commits a transaction whose callback resolves', async () => {
    const result = await client.transaction(async (tx) => {
      await tx.query('INSERT INTO items (id) VALUES (1)');
      await tx.query('INSERT INTO items (id) VALUES (2)');
      return 'done';
    });
    expect(result).toBe('done');
    expect(await ids()).toEqual([1, 2]);
  });

  it('rolls back a transaction whose callback throws, and rethrows', async () => {
    const failing = client.transaction(async (tx) => {
      await tx.query('INSERT INTO items (id) VALUES (1)');
      throw new Error('changed my mind');
    });
    await expect(failing).rejects.toThrow('changed my mind');
    expect(await ids()).toEqual([]);
  });

  it('hands back a Postgres error with its fields (code) across the thread', async () => {
    await client.query('INSERT INTO items (id) VALUES (1)');
    const error: unknown = await client
      .query('INSERT INTO items (id) VALUES (1)')
      .catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(Error);
    expect(error).toMatchObject({ code: '23505' });
  });

  it('makes a statement outside an open transaction wait until it ends', async () => {
    let release = (): void => undefined;
    const held = new Promise<void>((resolve) => (release = resolve));
    const tx = client.transaction(async (t) => {
      await t.query('INSERT INTO items (id) VALUES (1)');
      await held;
    });
    // Posted while the transaction is open: it must not see (or interleave with) its insert.
    const outside = ids();
    const early = await Promise.race([outside.then(() => 'answered'), delay(100, 'waiting')]);
    expect(early).toBe('waiting');
    release();
    await tx;
    expect(await outside).toEqual([1]);
  });
});

describe('PGliteWorkerClient lifecycle', () => {
  it('closes PGlite and ends its thread; later statements fail', async () => {
    const client = await PGliteWorkerClient.start({ dataDir: undefined });
    await client.close();
    await expect(client.query('SELECT 1')).rejects.toThrow(/exited/);
  }, 60_000);
});

function delay<T>(ms: number, value: T): Promise<T> {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}
