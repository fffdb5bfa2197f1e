import { freshDatabase } from '../../../test/harness/app.js';
import { DatabaseClient, IN_MEMORY } from '../../database/database.client.js';
import { sessions, turns } from '../../database/schema.js';
import type { LoggedFrame } from './frame-log.js';
import { TurnFramesRepository } from './turn-frames.repository.js';

/** Text that an array literal or a JSON column would not keep as it is. */
const AWKWARD = [
  '{"type":"delta","message_id":"m","content":"a \\"quoted\\", {braced} \\\\ back\\\\slash"}',
  '{"type":"delta","message_id":"m","content":"NULL"}',
  '{"type":"delta","message_id":"m","content":"  spaced   keys  ","z":1,"a":2}',
  '{"type":"delta","message_id":"m","content":"汉字 é 😀 \\u0000 \\n\\t"}',
  '',
];

/** On PGlite, or on PostgreSQL with TEST_DATABASE_URL: the drivers serialise arrays apart. */
describe('TurnFramesRepository', () => {
  let store: Awaited<ReturnType<typeof freshDatabase>>;
  let database: DatabaseClient;
  let repository: TurnFramesRepository;

  beforeAll(async () => {
    store = await freshDatabase();
    database = await DatabaseClient.connect({ databaseUrl: store.url, dataDir: IN_MEMORY });
    repository = new TurnFramesRepository(database);
    await database.db.insert(sessions).values({ id: 's', userId: 'u', title: null });
    await database.db.insert(turns).values({
      id: 't',
      sessionId: 's',
      userId: 'u',
      clientMsgId: 'c',
      requestHash: 'h',
      userMessageId: 'um',
      status: 'running',
    });
  });

  afterAll(async () => {
    await database.close();
    await store.drop();
  });

  it('stores each batch in one statement and serves the frames byte-identical, in order', async () => {
    const frames: LoggedFrame[] = AWKWARD.map((json, index) => ({
      id: index + 1,
      json,
      terminal: index === AWKWARD.length - 1,
    }));
    await repository.append('t', frames.slice(0, 2));
    await repository.append('t', frames.slice(2));
    // A batch written again (a retry after a lost answer) changes nothing.
    await repository.append('t', frames.slice(1, 3));

    expect(await repository.after('t', 0)).toEqual(frames);
    expect(await repository.after('t', 3)).toEqual(frames.slice(3));
    expect(await repository.has('t')).toBe(true);
  });
});
