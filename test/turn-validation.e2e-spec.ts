import { Agent, request as httpRequest } from 'node:http';
import { eq } from 'drizzle-orm';
import fc from 'fast-check';
import type { Frame } from '../src/chat/turns/frames.js';
import { DatabaseClient } from '../src/database/database.client.js';
import type { ActionType } from '../src/contract/index.js';
import { messages, turns } from '../src/database/schema.js';
import { clientMsgId, createSession } from './harness/api.js';
import { useApp } from './harness/app.js';
import { parseFrames } from './harness/sse-client.js';
import {
  awkwardButStorable,
  hazardousUnit,
  isUnstorable,
  unstorableText,
} from './harness/unstorable-text.js';

/**
 * Pre-stream validation of `POST /v1/sessions/:id/turns` (docs/api-reference.md §3 "Request", §10): every
 * malformed body is a JSON 400 `invalid_payload`, never a stream, and writes nothing. Then
 * property-based: thousands of random bodies never get a 5xx, and valid ones always stream to
 * `final` or `error`.
 */

/** One socket reused for every request, as a browser would. */
const agent = new Agent({ keepAlive: true, maxSockets: 1 });
// Before the app's close (after-hooks run in declaration order): the client lets go first.
afterAll(() => agent.destroy());
const t = useApp();
let token: string;

interface Reply {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
}

/** A raw POST: any bytes, any (or no) Content-Type. Reads the whole answer, stream included. */
function post(path: string, body: string | Buffer, contentType: string | null): Promise<Reply> {
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  const url = new URL(path, t.baseUrl);
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: 'POST',
        agent,
        headers: {
          authorization: `Bearer ${token}`,
          'content-length': bytes.length,
          ...(contentType === null ? {} : { 'content-type': contentType }),
        },
      },
      (res) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('error', reject);
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            contentType: res.headers['content-type'] ?? '',
            text: Buffer.concat(parts).toString('utf8'),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end(bytes);
  });
}

const postRawTurn = (
  sessionId: string,
  body: string | Buffer,
  contentType: string | null = JSON_CT,
) => post(`/v1/sessions/${sessionId}/turns`, body, contentType);

const JSON_CT = 'application/json';

/** A pre-stream refusal: JSON `{ code, message }`, never an event stream. */
function expectJsonError(reply: Reply, status?: number, code?: string): Record<string, unknown> {
  expect(reply.contentType).toMatch(/^application\/json/);
  expect(reply.contentType).not.toMatch(/event-stream/);
  const body = JSON.parse(reply.text) as Record<string, unknown>;
  expect(body).toEqual(
    expect.objectContaining({ code: expect.any(String), message: expect.any(String) }),
  );
  expect((body.message as string).length).toBeGreaterThan(0);
  if (status !== undefined) expect(reply.status).toBe(status);
  if (code !== undefined) expect(body.code).toBe(code);
  return body;
}

/** A turn stream: ids count from 1, and exactly one `final` or `error`, as the last frame. */
function expectCompleteStream(reply: Reply): Frame {
  expect(reply.status).toBe(200);
  expect(reply.contentType).toMatch(/^text\/event-stream/);
  const frames = parseFrames(reply.text);
  expect(frames.map((frame) => frame.id)).toEqual(frames.map((_, index) => index + 1));
  const endings = frames.filter((frame) => ['final', 'error'].includes(frame.data.type));
  expect(endings).toHaveLength(1);
  const last = frames.at(-1)?.data;
  expect(last === undefined ? undefined : last.type).toBe(endings[0].data.type);
  return endings[0].data;
}

const newSession = (): Promise<string> => createSession(t.baseUrl, token);

/** Rows the session holds, straight from the database: [turns, messages]. */
async function rowsOf(sessionId: string): Promise<[number, number]> {
  const { db } = t.app.get(DatabaseClient);
  const turnRows = await db.select().from(turns).where(eq(turns.sessionId, sessionId));
  const messageRows = await db.select().from(messages).where(eq(messages.sessionId, sessionId));
  return [turnRows.length, messageRows.length];
}

async function historyIds(sessionId: string): Promise<string[]> {
  const response = await fetch(`${t.baseUrl}/v1/sessions/${sessionId}/messages?limit=100`, {
    headers: { authorization: `Bearer ${token}` },
  });
  expect(response.status).toBe(200);
  return ((await response.json()) as { items: { id: string }[] }).items.map((item) => item.id);
}

beforeAll(async () => {
  token = await t.token('validator');
});

describe('malformed turn bodies → 400 invalid_payload before any stream, nothing stored', () => {
  let sessionId: string;
  const ok = { content: 'hello there', client_msg_id: 'valid-key-0001' };
  const json = (value: unknown): string => JSON.stringify(value);
  const withImage = (image: unknown): string => json({ ...ok, image });

  const cases: [string, string, string | null][] = [
    ['not JSON at all', 'content=hello', JSON_CT],
    ['truncated JSON', '{"content":"hello","client_msg_id":', JSON_CT],
    [
      'JSON with a trailing comma',
      '{"content":"hello","client_msg_id":"valid-key-0001",}',
      JSON_CT,
    ],
    ['an empty body', '', JSON_CT],
    ['a JSON array', json([ok]), JSON_CT],
    ['an empty JSON array', '[]', JSON_CT],
    ['JSON null', 'null', JSON_CT],
    ['a JSON string', '"hello"', JSON_CT],
    ['a JSON number', '42', JSON_CT],
    ['a JSON object as text/plain', json(ok), 'text/plain'],
    [
      'a form post',
      'content=hello&client_msg_id=valid-key-0001',
      'application/x-www-form-urlencoded',
    ],
    ['no Content-Type', json(ok), null],
    ['missing content', json({ client_msg_id: ok.client_msg_id }), JSON_CT],
    ['content null', json({ ...ok, content: null }), JSON_CT],
    ['content a number', json({ ...ok, content: 7 }), JSON_CT],
    ['content an array', json({ ...ok, content: ['hello'] }), JSON_CT],
    ['content an object', json({ ...ok, content: { text: 'hello' } }), JSON_CT],
    ['content over 8000 characters', json({ ...ok, content: 'a'.repeat(8001) }), JSON_CT],
    ['content empty', json({ ...ok, content: '' }), JSON_CT],
    ['content blank (whitespace)', json({ ...ok, content: ' \n\t ' }), JSON_CT],
    [
      'blank content with a forced text_image',
      json({ ...ok, content: '', image: { force: true } }),
      JSON_CT,
    ],
    [
      'blank content, forced, explicit text_image',
      json({ ...ok, content: '  ', image: { force: true, mode: 'text_image' } }),
      JSON_CT,
    ],
    [
      'blank content, forced image_only, but nothing to draw (no image_prompt)',
      json({ ...ok, content: ' ', image: { force: true, mode: 'image_only' } }),
      JSON_CT,
    ],
    [
      'blank content, forced image_only, blank image_prompt',
      json({ ...ok, content: '', image: { force: true, mode: 'image_only', image_prompt: ' \n' } }),
      JSON_CT,
    ],
    [
      'blank content with image_only not forced',
      json({ ...ok, content: '', image: { mode: 'image_only' } }),
      JSON_CT,
    ],
    [
      'blank content with image_only and force false',
      json({ ...ok, content: ' ', image: { mode: 'image_only', force: false } }),
      JSON_CT,
    ],
    ['missing client_msg_id', json({ content: 'hello' }), JSON_CT],
    ['client_msg_id null', json({ ...ok, client_msg_id: null }), JSON_CT],
    ['client_msg_id a number', json({ ...ok, client_msg_id: 12345678 }), JSON_CT],
    ['client_msg_id of 7 characters', json({ ...ok, client_msg_id: 'abcdefg' }), JSON_CT],
    ['client_msg_id of 65 characters', json({ ...ok, client_msg_id: 'k'.repeat(65) }), JSON_CT],
    ['client_msg_id with a space', json({ ...ok, client_msg_id: 'abc defgh' }), JSON_CT],
    ['client_msg_id with a dot', json({ ...ok, client_msg_id: 'abc.defgh' }), JSON_CT],
    [
      'client_msg_id with a trailing newline',
      json({ ...ok, client_msg_id: 'abcdefgh\n' }),
      JSON_CT,
    ],
    ['client_msg_id with non-ASCII letters', json({ ...ok, client_msg_id: 'ééééééééé' }), JSON_CT],
    ['image a string', withImage('yes'), JSON_CT],
    ['image an array', withImage([{ force: true }]), JSON_CT],
    ['image true', withImage(true), JSON_CT],
    ['image.force a string', withImage({ force: 'true' }), JSON_CT],
    ['image.force a number', withImage({ force: 1 }), JSON_CT],
    ['image.mode unknown', withImage({ mode: 'video' }), JSON_CT],
    ['image.mode upper case', withImage({ mode: 'IMAGE_ONLY' }), JSON_CT],
    ['image.mode empty', withImage({ mode: '' }), JSON_CT],
    ['image.aspect_ratio unknown', withImage({ aspect_ratio: '2:1' }), JSON_CT],
    ['image.aspect_ratio padded', withImage({ aspect_ratio: ' 1:1' }), JSON_CT],
    ['image.aspect_ratio a number', withImage({ aspect_ratio: 1.5 }), JSON_CT],
    ['image.model a number', withImage({ model: 3 }), JSON_CT],
    ['image.reference_image_url relative', withImage({ reference_image_url: '/r.png' }), JSON_CT],
    ['image.reference_image_url a bare name', withImage({ reference_image_url: 'r.png' }), JSON_CT],
    [
      'image.reference_image_url ftp',
      withImage({ reference_image_url: 'ftp://example.com/r.png' }),
      JSON_CT,
    ],
    [
      'image.reference_image_url file',
      withImage({ reference_image_url: 'file:///etc/passwd' }),
      JSON_CT,
    ],
    [
      'image.reference_image_url javascript:',
      withImage({ reference_image_url: 'javascript:alert(1)' }),
      JSON_CT,
    ],
    [
      'image.reference_image_url over 2048 characters',
      withImage({ reference_image_url: `https://example.com/${'r'.repeat(2030)}.png` }),
      JSON_CT,
    ],
    ['image.image_prompt over 2000', withImage({ image_prompt: 'p'.repeat(2001) }), JSON_CT],
    ['image.image_prompt a number', withImage({ image_prompt: 5 }), JSON_CT],
    ['an unknown top-level field', json({ ...ok, stream: true }), JSON_CT],
    ['an unknown image field', withImage({ force: true, seed: 42 }), JSON_CT],
    ['a "constructor" field', json({ ...ok, constructor: { name: 'x' } }), JSON_CT],
    [
      'a "__proto__" field',
      '{"content":"hello","client_msg_id":"valid-key-0001","__proto__":{"image":{"force":true}}}',
      JSON_CT,
    ],
    ['a "toString" field in image', withImage({ toString: 'x' }), JSON_CT],
    [
      'deeply nested JSON in an unknown field',
      `{"content":"hi","x":${'['.repeat(3000)}${']'.repeat(3000)}}`,
      JSON_CT,
    ],
    ['deeply nested JSON as the body', `${'['.repeat(5000)}${']'.repeat(5000)}`, JSON_CT],
    [
      'deeply nested content',
      json({ ...ok, content: JSON.parse(`${'['.repeat(500)}${']'.repeat(500)}`) }),
      JSON_CT,
    ],
  ];

  beforeAll(async () => {
    sessionId = await newSession();
  });

  it.each(cases)('%s', async (_, body, contentType) => {
    // A session of its own, so one wrongly accepted body cannot fail the cases after it.
    const own = await newSession();
    const reply = await postRawTurn(own, body, contentType);
    expectJsonError(reply, 400, 'invalid_payload');
    expect(await historyIds(own)).toEqual([]);
    expect(await rowsOf(own)).toEqual([0, 0]);
  });

  it('a body over the size limit is refused as JSON (413), not a 5xx', async () => {
    const reply = await postRawTurn(sessionId, json({ ...ok, content: 'a'.repeat(300_000) }));
    expect(reply.status).toBe(413);
    expectJsonError(reply);
    expect(await rowsOf(sessionId)).toEqual([0, 0]);
  });

  it('invalid JSON is reported without the parser internals', async () => {
    const body = expectJsonError(await postRawTurn(sessionId, '{"content": nope}'), 400);
    expect(body.message).toMatch(/JSON/);
    expect(body.message).not.toMatch(/Unexpected token|position/i);
  });
});

describe('the limits are inclusive (controls for the cases above)', () => {
  let sessionId: string;

  beforeAll(async () => {
    sessionId = await newSession();
  });

  const accepted: [string, Record<string, unknown>, ActionType][] = [
    ['content of exactly 8000 characters', { content: 'a'.repeat(8000) }, 'reply_text'],
    ['a client_msg_id of exactly 8 characters', { client_msg_id: 'Ab3_-xY9' }, 'reply_text'],
    [
      'a client_msg_id of exactly 64 characters',
      { client_msg_id: `${'Z'.repeat(63)}9` },
      'reply_text',
    ],
    [
      'blank content with a forced image_only that has an image_prompt',
      { content: '  ', image: { force: true, mode: 'image_only', image_prompt: 'a lighthouse' } },
      'reply_image',
    ],
    [
      'an image_prompt of exactly 2000 characters, forced text_image',
      { image: { force: true, image_prompt: 'p'.repeat(2000), aspect_ratio: '3:4' } },
      'reply_text_image',
    ],
    [
      'an absolute reference_image_url of exactly 2048 characters',
      {
        image: {
          force: true,
          mode: 'image_only',
          reference_image_url: `https://example.com/${'r'.repeat(2048 - 24)}.png`,
        },
      },
      'reply_image',
    ],
  ];

  it.each(accepted)('%s streams to final', async (_, overrides, actionType) => {
    const body = { content: 'limits', client_msg_id: clientMsgId('tv'), ...overrides };
    const image = overrides.image as { reference_image_url?: string } | undefined;
    if (image?.reference_image_url) expect(image.reference_image_url).toHaveLength(2048);
    const before = (await rowsOf(sessionId))[0];
    const ending = expectCompleteStream(await postRawTurn(sessionId, JSON.stringify(body)));
    expect(ending).toEqual(expect.objectContaining({ type: 'final', action_type: actionType }));
    expect((await rowsOf(sessionId))[0]).toBe(before + 1);
  });
});

// ---------------------------------------------------------------------------------------------
// Property-based
// ---------------------------------------------------------------------------------------------

/** A generated field: its value (undefined = absent) and whether the contract allows it. */
interface Field {
  readonly ok: boolean;
  readonly value?: unknown;
}

const good = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Field> =>
  arb.map((value) => ({ ok: true, value }));
const bad = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Field> =>
  arb.map((value) => ({ ok: false, value }));
/** Mostly valid, so a good share of the bodies is valid as a whole. */
const field = (valid: fc.Arbitrary<Field>, invalid: fc.Arbitrary<Field>): fc.Arbitrary<Field> =>
  fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: invalid });
const ABSENT: Field = { ok: true };
const absent = fc.constant(ABSENT);

const keyChars = (min: number, max: number): fc.Arbitrary<string> =>
  fc.stringMatching(new RegExp(`^[A-Za-z0-9_-]{${min},${max}}$`));

const contentField = field(
  fc.oneof(
    good(fc.string({ minLength: 1, maxLength: 200 })),
    good(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 })),
    good(fc.constantFrom('画一只猫', 'draw me a cat', 'a picture of a red fox', 'a'.repeat(8000))),
    good(fc.constantFrom('', ' ', '\n\t ')),
    good(awkwardButStorable),
  ),
  fc.oneof(
    bad(unstorableText),
    bad(fc.integer({ min: 8001, max: 8100 }).map((n) => 'c'.repeat(n))),
    bad(fc.constantFrom(null, 0, 12.5, true, ['text'], { text: 'hi' })),
    absent.map(() => ({ ok: false })),
  ),
);

/** `unique` is replaced by a fresh key at run time, so valid turns never replay each other. */
const UNIQUE = Symbol('unique client_msg_id');
const clientMsgIdField = field(
  fc.constant({ ok: true, value: UNIQUE }),
  fc.oneof(
    bad(keyChars(1, 7)),
    bad(keyChars(65, 80)),
    bad(
      fc
        .tuple(keyChars(8, 20), fc.constantFrom(' ', '!', '.', '/', 'é', '\n', '+', '='))
        .map(([key, char]) => `${key.slice(0, 4)}${char}${key.slice(4)}`),
    ),
    bad(fc.constantFrom(null, 12345678, ['abcdefgh'], {})),
    bad(keyChars(8, 20).chain((key) => unstorableText.map((text) => `${key}${text}`))),
    absent.map(() => ({ ok: false })),
  ),
);

const imageFields = {
  // Forced image turns are the slow ones (compose + two models + a 512 px PNG): fewer of them.
  force: field(
    fc.oneof(absent, good(fc.constant(false)), good(fc.constant(true))),
    bad(fc.constantFrom('true', 1, 0, 'yes', [])),
  ),
  mode: field(
    fc.oneof(absent, good(fc.constantFrom('text_image', 'image_only'))),
    bad(fc.constantFrom('video', '', 'IMAGE_ONLY', 'text-image', 3)),
  ),
  model: field(
    fc.oneof(absent, good(fc.constantFrom('demo/painter', 'demo/flaky-painter', 'acme/brush-1'))),
    fc.oneof(
      bad(fc.constantFrom(7, ['demo/painter'], { id: 'demo/painter' }, false)),
      bad(unstorableText),
    ),
  ),
  image_prompt: field(
    fc.oneof(
      absent,
      good(fc.string({ maxLength: 200 })),
      good(fc.constant('p'.repeat(2000))),
      good(awkwardButStorable),
    ),
    fc.oneof(
      bad(fc.integer({ min: 2001, max: 2100 }).map((n) => 'p'.repeat(n))),
      bad(fc.constantFrom(12, {}, [])),
      bad(unstorableText),
    ),
  ),
  aspect_ratio: field(
    fc.oneof(absent, good(fc.constantFrom('1:1', '3:4', '4:3', '9:16', '16:9'))),
    fc.oneof(
      bad(fc.constantFrom('2:1', '16:10', '1:1 ', ' 1:1', '1/1', '', 1.5)),
      bad(unstorableText.map((text) => `1:1${text}`)),
    ),
  ),
  reference_image_url: field(
    fc.oneof(
      absent,
      good(fc.constantFrom('https://example.com/ref.png', 'http://cdn.example.org/a/b.jpg?x=1')),
    ),
    fc.oneof(
      bad(
        fc.constantFrom(
          '/ref.png',
          'ref.png',
          'ftp://example.com/ref.png',
          'file:///etc/passwd',
          'javascript:alert(1)',
          `https://example.com/${'r'.repeat(2040)}`,
          5,
        ),
      ),
      bad(unstorableText.map((text) => `https://example.com/${text}`)),
    ),
  ),
};

const KNOWN_KEYS = new Set(['content', 'client_msg_id', 'image', ...Object.keys(imageFields)]);
/** Unknown keys, reserved names included; none of them is ever allowed. */
const unknownKeys = fc.uniqueArray(
  fc.oneof(
    fc.string({ minLength: 1, maxLength: 12 }),
    fc.constantFrom('stream', 'user_id', 'role', 'constructor', '__proto__', 'toString', 'images'),
    unstorableText,
  ),
  { maxLength: 2 },
);
const extras = fc.oneof(
  { weight: 5, arbitrary: fc.constant<[string, unknown][]>([]) },
  {
    weight: 1,
    arbitrary: unknownKeys
      .filter((keys) => keys.every((key) => !KNOWN_KEYS.has(key)))
      .chain((keys) =>
        fc.tuple(...keys.map((key) => fc.tuple(fc.constant(key), fc.jsonValue({ maxDepth: 2 })))),
      ),
  },
);

interface ImageChoice {
  readonly ok: boolean;
  readonly value?: unknown;
  readonly force?: unknown;
  readonly mode?: unknown;
  readonly prompt?: unknown;
}

const imageChoice: fc.Arbitrary<ImageChoice> = fc.oneof(
  { weight: 3, arbitrary: fc.constant<ImageChoice>(ABSENT) },
  {
    weight: 6,
    arbitrary: fc.tuple(fc.record(imageFields), extras).map(([fields, extra]): ImageChoice => {
      const entries: [string, unknown][] = Object.entries(fields).flatMap(([key, one]) =>
        one.value === undefined ? [] : [[key, one.value]],
      );
      return {
        ok: Object.values(fields).every((one) => one.ok) && extra.length === 0,
        // fromEntries defines own properties, so a "__proto__" key really is sent.
        value: Object.fromEntries([...entries, ...extra]),
        force: fields.force.value,
        mode: fields.mode.value,
        prompt: fields.image_prompt.value,
      };
    }),
  },
  {
    weight: 1,
    arbitrary: fc
      .constantFrom<unknown>('yes', true, 1, [], [{ force: true }])
      .map((value) => ({ ok: false, value })),
  },
);

interface TurnCase {
  readonly content: Field;
  readonly clientMsgId: Field;
  readonly image: ImageChoice;
  readonly extra: [string, unknown][];
}

const turnCase: fc.Arbitrary<TurnCase> = fc.record({
  content: contentField,
  clientMsgId: clientMsgIdField,
  image: imageChoice,
  extra: extras,
});

/** The contract's verdict for a generated body, and the action a valid one must take. */
function verdict(c: TurnCase): { valid: boolean; action: ActionType | 'planner' } {
  const forcedImageOnly = c.image.force === true && c.image.mode === 'image_only';
  const blank = (value: unknown): boolean =>
    typeof value !== 'string' || value.replace(/[\s\p{Cf}]/gu, '') === '';
  // Blank content is allowed only for a forced image_only turn, whose image_prompt then says
  // what to draw (the service's documented reading of "non-blank, except …").
  const subjectOk = !blank(c.content.value) || (forcedImageOnly && !blank(c.image.prompt));
  const valid = c.content.ok && c.clientMsgId.ok && c.image.ok && c.extra.length === 0 && subjectOk;
  if (c.image.value === undefined) return { valid, action: 'reply_text' };
  if (c.image.force !== true) return { valid, action: 'planner' };
  return { valid, action: c.image.mode === 'image_only' ? 'reply_image' : 'reply_text_image' };
}

function bodyOf(c: TurnCase): string {
  const entries: [string, unknown][] = [];
  if (c.content.value !== undefined) entries.push(['content', c.content.value]);
  if (c.clientMsgId.value !== undefined) {
    entries.push([
      'client_msg_id',
      c.clientMsgId.value === UNIQUE ? clientMsgId('tv') : c.clientMsgId.value,
    ]);
  }
  if (c.image.value !== undefined) entries.push(['image', c.image.value]);
  return JSON.stringify(Object.fromEntries([...entries, ...c.extra]));
}

/** Whatever was sent: no 5xx; a refusal is a JSON error; a 200 is a stream that ends properly. */
function expectRobust(reply: Reply): void {
  expect(reply.status).toBeLessThan(500);
  if (reply.status === 200) {
    expectCompleteStream(reply);
    return;
  }
  expect(reply.status).toBeGreaterThanOrEqual(400);
  expectJsonError(reply);
}

/** True when a string or key anywhere in `value` holds text PostgreSQL cannot store. */
function holdsUnstorable(value: unknown): boolean {
  if (typeof value === 'string') return isUnstorable(value);
  if (typeof value !== 'object' || value === null) return false;
  return Object.entries(value).some(([key, item]) => isUnstorable(key) || holdsUnstorable(item));
}

const validTurnJson = fc
  .record({
    content: fc.string({ minLength: 1, maxLength: 100 }).filter((text) => text.trim() !== ''),
    image: fc.option(fc.record({ force: fc.boolean() }), { nil: undefined }),
  })
  .map((body) => () => JSON.stringify({ ...body, client_msg_id: clientMsgId('tv') }));

describe('property: random turn bodies', () => {
  /** Kept modest so the file stays well under a minute with the demo provider at 0 delay. */
  const runs = { oracle: 700, json: 600, hazardousJson: 300, raw: 450, contentTypes: 250 };

  it(`matches the contract's verdict for ${runs.oracle} bodies mixing valid and invalid fields`, async () => {
    const sessionId = await newSession();
    let validSent = 0;
    const seen = { valid: 0, invalid: 0 };
    await fc.assert(
      fc.asyncProperty(turnCase, async (c) => {
        const { valid, action } = verdict(c);
        const body = bodyOf(c);
        const reply = await postRawTurn(sessionId, body);
        expect(reply.status).toBeLessThan(500);
        if (!valid) {
          seen.invalid++;
          expectJsonError(reply, 400, 'invalid_payload');
          return;
        }
        seen.valid++;
        validSent++;
        const ending = expectCompleteStream(reply);
        expect(ending.type).toBe('final');
        if (ending.type !== 'final') return;
        expect(ending.replayed).toBe(false);
        if (action !== 'planner') expect(ending.action_type).toBe(action);
        expect(ending.message_ids.length).toBeGreaterThan(0);
      }),
      { numRuns: runs.oracle },
    );
    // Both sides were exercised, and only the valid bodies left a turn behind.
    expect(seen.valid).toBeGreaterThan(runs.oracle / 5);
    expect(seen.invalid).toBeGreaterThan(runs.oracle / 5);
    expect((await rowsOf(sessionId))[0]).toBe(validSent);
  }, 120_000);

  it(`never answers 5xx to ${runs.json} arbitrary JSON values`, async () => {
    const sessionId = await newSession();
    let streamed = 0;
    await fc.assert(
      fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (value) => {
        const reply = await postRawTurn(sessionId, JSON.stringify(value));
        expectRobust(reply);
        if (reply.status === 200) streamed++;
      }),
      { numRuns: runs.json },
    );
    expect((await rowsOf(sessionId))[0]).toBe(streamed);
  }, 60_000);

  it(`refuses ${runs.hazardousJson} JSON values holding NULs or surrogate halves anywhere with 400`, async () => {
    const sessionId = await newSession();
    // A valid turn with a hazardous value somewhere in it, or any JSON value with such strings.
    const hazardous = fc.oneof(
      fc
        .tuple(fc.jsonValue({ maxDepth: 3, stringUnit: hazardousUnit }), fc.nat(3))
        .map(([value, where]) => {
          const turn: Record<string, unknown> = { content: 'hi', client_msg_id: clientMsgId('tv') };
          if (where === 0) return { ...turn, image: { image_prompt: value } };
          if (where === 1) return { ...turn, content: value };
          if (where === 2) return { ...turn, image: value };
          return value;
        }),
      fc.jsonValue({ maxDepth: 4, stringUnit: hazardousUnit }),
    );
    let refusedForText = 0;
    await fc.assert(
      fc.asyncProperty(hazardous, async (value) => {
        const reply = await postRawTurn(sessionId, JSON.stringify(value));
        expectRobust(reply);
        if (holdsUnstorable(value)) {
          refusedForText++;
          expectJsonError(reply, 400, 'invalid_payload');
        }
      }),
      { numRuns: runs.hazardousJson },
    );
    expect(refusedForText).toBeGreaterThan(runs.hazardousJson / 10);
  }, 60_000);

  it(`never answers 5xx to ${runs.raw} random raw bodies`, async () => {
    const sessionId = await newSession();
    const corrupted = fc
      .tuple(validTurnJson, fc.nat(), fc.string({ maxLength: 3 }))
      .map(([make, at, insert]) => {
        const text = make();
        const cut = at % (text.length + 1);
        return `${text.slice(0, cut)}${insert}${text.slice(cut + 1)}`;
      });
    const raw = fc.oneof(
      { weight: 3, arbitrary: fc.string({ maxLength: 200 }) },
      { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
      { weight: 3, arbitrary: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)) },
      { weight: 2, arbitrary: fc.string({ unit: hazardousUnit, maxLength: 200 }) },
      { weight: 2, arbitrary: corrupted },
    );
    await fc.assert(
      fc.asyncProperty(raw, async (body) => {
        expectRobust(await postRawTurn(sessionId, body));
      }),
      { numRuns: runs.raw },
    );
  }, 60_000);

  it(`never answers 5xx with ${runs.contentTypes} wrong or odd Content-Types`, async () => {
    const sessionId = await newSession();
    const contentType = fc.oneof(
      fc.constantFrom(
        null,
        '',
        'text/plain',
        'application/x-www-form-urlencoded',
        'multipart/form-data; boundary=xyz',
        'application/xml',
        'application/octet-stream',
        'application/vnd.api+json',
        'application/json; charset=latin1',
        'application/json; charset=utf-16',
        'application/json; charset=utf-8',
        'APPLICATION/JSON',
        'text/event-stream',
      ),
      fc.stringMatching(/^[a-z]{1,10}\/[a-z0-9.+-]{1,15}$/),
    );
    const body = fc.oneof(
      validTurnJson.map((make) => make()),
      validTurnJson.map((make) => {
        const value = JSON.parse(make()) as Record<string, string>;
        return new URLSearchParams({
          content: value.content,
          client_msg_id: value.client_msg_id,
        }).toString();
      }),
      fc.string({ maxLength: 100 }),
    );
    await fc.assert(
      fc.asyncProperty(contentType, body, async (type, text) => {
        const reply = await postRawTurn(sessionId, text, type);
        expectRobust(reply);
        // Only JSON bodies can start a turn.
        if (reply.status === 200) expect(type?.toLowerCase() ?? '').toMatch(/^application\/json/);
      }),
      { numRuns: runs.contentTypes },
    );
  }, 60_000);

  it('the app is still healthy afterwards, with no stream slot leaked', async () => {
    const sessionId = await newSession();
    const replies = await Promise.all(
      [0, 1, 2].map(() =>
        fetch(`${t.baseUrl}/v1/sessions/${sessionId}/turns`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': JSON_CT },
          body: JSON.stringify({ content: 'still alive?', client_msg_id: clientMsgId('tv') }),
        }).then(async (response) => ({
          status: response.status,
          contentType: response.headers.get('content-type') ?? '',
          text: await response.text(),
        })),
      ),
    );
    // MAX_STREAMS_PER_USER is 3: three at once only fit if every earlier turn gave its slot back.
    for (const reply of replies) expect(expectCompleteStream(reply).type).toBe('final');
    expect((await fetch(`${t.baseUrl}/readyz`)).status).toBe(200);
  });
});
