import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startApp, type TestApp } from './harness/app.js';

/**
 * The published OpenAPI document: equal to the committed snapshot (regenerate it with
 * `UPDATE_OPENAPI=1 npm test`), and documenting every route of docs/api-reference.md §2 with its errors.
 */

const SNAPSHOT = fileURLToPath(new URL('./__snapshots__/openapi.json', import.meta.url));
const UPDATE = process.env.UPDATE_OPENAPI === '1';
const HINT = 'If the change is intended, run `UPDATE_OPENAPI=1 npm test` and commit the snapshot.';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

let t: TestApp;
let spec: JsonObject;

const isObject = (value: Json | undefined): value is JsonObject =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** `a.b.c` into the document; throws with the path when something on the way is missing. */
function at(root: Json, path: readonly string[]): Json {
  let current: Json = root;
  for (const [index, key] of path.entries()) {
    if (!isObject(current) || !(key in current)) {
      throw new Error(`spec has no ${path.slice(0, index + 1).join(' → ')}`);
    }
    current = current[key];
  }
  return current;
}

function object(root: Json, path: readonly string[]): JsonObject {
  const value = at(root, path);
  if (!isObject(value)) throw new Error(`${path.join(' → ')} is not an object`);
  return value;
}

/** Follows `$ref` and single-entry `allOf` wrappers to the schema object itself. */
function resolve(schema: Json): JsonObject {
  if (!isObject(schema)) throw new Error(`not a schema: ${JSON.stringify(schema)}`);
  const ref = schema.$ref;
  if (typeof ref === 'string') {
    return resolve(at(spec, ref.replace(/^#\//, '').split('/')));
  }
  const allOf = schema.allOf;
  if (Array.isArray(allOf) && allOf.length === 1) return { ...schema, ...resolve(allOf[0]) };
  return schema;
}

const property = (schema: JsonObject, name: string): JsonObject =>
  resolve(object(schema, ['properties', name]));

/** Path-by-path differences, e.g. `paths./v1/sessions.get.responses.400: missing in live`. */
function differences(expected: Json, actual: Json, path = '$', out: string[] = []): string[] {
  if (JSON.stringify(expected) === JSON.stringify(actual)) return out;
  if (isObject(expected) && isObject(actual)) {
    for (const key of new Set([...Object.keys(expected), ...Object.keys(actual)])) {
      const here = `${path}.${key}`;
      if (!(key in actual)) out.push(`- ${here}: only in the snapshot`);
      else if (!(key in expected)) out.push(`+ ${here}: only in the live document`);
      else differences(expected[key], actual[key], here, out);
    }
    return out;
  }
  if (Array.isArray(expected) && Array.isArray(actual) && expected.length === actual.length) {
    expected.forEach((item, index) => differences(item, actual[index], `${path}[${index}]`, out));
    return out;
  }
  const show = (value: Json): string => {
    const text = JSON.stringify(value);
    return text.length > 120 ? `${text.slice(0, 117)}...` : text;
  };
  out.push(`~ ${path}: snapshot ${show(expected)} → live ${show(actual)}`);
  return out;
}

/** Prettier's JSON layout, so `prettier --check .` passes on the committed file. */
async function formatted(document: Json): Promise<string> {
  const prettier = await import('prettier');
  const options = (await prettier.resolveConfig(SNAPSHOT)) ?? {};
  return prettier.format(JSON.stringify(document), { ...options, parser: 'json' });
}

beforeAll(async () => {
  t = await startApp();
  const response = await fetch(`${t.baseUrl}/docs/openapi.json`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toMatch(/^application\/json/);
  spec = (await response.json()) as JsonObject;
});

afterAll(async () => {
  await t?.close();
});

describe('OpenAPI snapshot', () => {
  it('GET /docs/openapi.json equals test/__snapshots__/openapi.json', async () => {
    if (UPDATE) {
      await mkdir(dirname(SNAPSHOT), { recursive: true });
      await writeFile(SNAPSHOT, await formatted(spec));
      console.info(`UPDATE_OPENAPI=1: wrote ${SNAPSHOT}`);
    }
    let committed: Json;
    try {
      committed = JSON.parse(await readFile(SNAPSHOT, 'utf8')) as Json;
    } catch (error) {
      throw new Error(`Cannot read the OpenAPI snapshot ${SNAPSHOT} (${String(error)}). ${HINT}`);
    }
    const found = differences(committed, spec);
    if (found.length > 0) {
      const shown = found.slice(0, 40);
      const more =
        found.length > shown.length ? `\n  … and ${found.length - shown.length} more` : '';
      throw new Error(
        `The OpenAPI document differs from the committed snapshot in ${found.length} place(s):\n` +
          `  ${shown.join('\n  ')}${more}\n\n${HINT}`,
      );
    }
  });

  it('the snapshot file is formatted as Prettier would write it', async () => {
    const text = await readFile(SNAPSHOT, 'utf8');
    if (text !== (await formatted(JSON.parse(text) as Json))) {
      throw new Error(`${SNAPSHOT} is not formatted as Prettier writes it. ${HINT}`);
    }
  });
});

describe('/docs', () => {
  it('serves the Swagger UI as HTML without a token', async () => {
    const response = await fetch(`${t.baseUrl}/docs`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toMatch(/^text\/html/);
    const html = await response.text();
    expect(html).toMatch(/<html/i);
    expect(html).toMatch(/swagger/i);
  });
});

interface Route {
  readonly method: 'get' | 'post' | 'delete';
  readonly path: string;
  readonly success: string;
  readonly errors: readonly string[];
  readonly auth: boolean;
}

/** docs/api-reference.md §1–§2 and §10: every route, its success status and the errors it can answer. */
const ROUTES: readonly Route[] = [
  { method: 'post', path: '/v1/sessions', success: '201', errors: ['400', '401'], auth: true },
  { method: 'get', path: '/v1/sessions', success: '200', errors: ['400', '401'], auth: true },
  {
    method: 'get',
    path: '/v1/sessions/{session_id}',
    success: '200',
    errors: ['401', '404'],
    auth: true,
  },
  {
    method: 'delete',
    path: '/v1/sessions/{session_id}',
    success: '204',
    errors: ['401', '404'],
    auth: true,
  },
  {
    method: 'get',
    path: '/v1/sessions/{session_id}/messages',
    success: '200',
    errors: ['400', '401', '404'],
    auth: true,
  },
  {
    method: 'post',
    path: '/v1/sessions/{session_id}/turns',
    success: '200',
    errors: ['400', '401', '404', '409', '422', '429', '503'],
    auth: true,
  },
  {
    method: 'post',
    path: '/v1/sessions/{session_id}/messages/{message_id}/image',
    success: '204',
    errors: ['400', '401', '404'],
    auth: true,
  },
  { method: 'get', path: '/v1/images/{image_id}', success: '200', errors: ['403'], auth: false },
  { method: 'get', path: '/healthz', success: '200', errors: [], auth: false },
  { method: 'get', path: '/readyz', success: '200', errors: [], auth: false },
];

const operation = (route: Route): JsonObject => object(spec, ['paths', route.path, route.method]);

describe.each(ROUTES)('$method $path', (route) => {
  it(`is documented with ${route.success} and ${route.errors.join(', ') || 'no errors'}`, () => {
    const responses = object(operation(route), ['responses']);
    expect(Object.keys(responses)).toEqual(
      expect.arrayContaining([route.success, ...route.errors]),
    );
  });

  it(route.auth ? 'requires the Bearer token' : 'is public (no security requirement)', () => {
    const security = operation(route).security;
    if (route.auth) {
      expect(security).toEqual(expect.arrayContaining([{ bearer: [] }]));
      expect(object(spec, ['components', 'securitySchemes', 'bearer'])).toEqual(
        expect.objectContaining({ type: 'http', scheme: 'bearer' }),
      );
    } else {
      expect(security === undefined || (Array.isArray(security) && security.length === 0)).toBe(
        true,
      );
    }
  });

  const pathParams = [...route.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
  if (pathParams.length > 0) {
    it(`documents its path parameters ${pathParams.join(', ')}`, () => {
      const parameters = (operation(route).parameters ?? []) as JsonObject[];
      for (const param of pathParams) {
        expect(parameters).toContainEqual(
          expect.objectContaining({ name: param, in: 'path', required: true }),
        );
      }
    });
  }

  if (route.errors.length > 0) {
    it('documents every error as JSON { code, message }', () => {
      for (const status of route.errors) {
        const content = object(operation(route), ['responses', status, 'content']);
        expect({ status, types: Object.keys(content) }).toEqual({
          status,
          types: ['application/json'],
        });
        const schema = resolve(at(content, ['application/json', 'schema']));
        expect(schema.required).toEqual(expect.arrayContaining(['code', 'message']));
        expect(Object.keys(object(schema, ['properties']))).toEqual(
          expect.arrayContaining(['code', 'message']),
        );
      }
    });
  }
});

describe('request and response shapes match the contract', () => {
  const jsonBody = (route: Route): JsonObject =>
    resolve(at(operation(route), ['requestBody', 'content', 'application/json', 'schema']));
  const route = (method: Route['method'], path: string): Route => {
    const found = ROUTES.find((one) => one.method === method && one.path === path);
    if (!found) throw new Error(`no route ${method} ${path}`);
    return found;
  };
  const success = (one: Route): JsonObject =>
    resolve(
      at(operation(one), ['responses', one.success, 'content', 'application/json', 'schema']),
    );

  it('the turn stream answers text/event-stream', () => {
    const turns = route('post', '/v1/sessions/{session_id}/turns');
    expect(Object.keys(object(operation(turns), ['responses', '200', 'content']))).toContain(
      'text/event-stream',
    );
  });

  it('POST /v1/sessions takes { title ≤ 200, system_prompt ≤ 8000 }, both optional', () => {
    const body = jsonBody(route('post', '/v1/sessions'));
    expect(property(body, 'title')).toEqual(
      expect.objectContaining({ type: 'string', maxLength: 200 }),
    );
    expect(property(body, 'system_prompt')).toEqual(
      expect.objectContaining({ type: 'string', maxLength: 8000 }),
    );
    expect(body.required ?? []).toEqual([]);
  });

  it('Session and its page carry the contract fields', () => {
    const session = success(route('get', '/v1/sessions/{session_id}'));
    expect(Object.keys(object(session, ['properties']))).toEqual(
      expect.arrayContaining(['id', 'title', 'system_prompt', 'created_at']),
    );
    const page = success(route('get', '/v1/sessions'));
    expect(page.required).toEqual(expect.arrayContaining(['items', 'next_cursor']));
    expect(property(page, 'next_cursor').nullable).toBe(true);
  });

  it.each([
    ['/v1/sessions', ['limit', 'cursor']],
    ['/v1/sessions/{session_id}/messages', ['limit', 'before']],
  ])('GET %s documents %j, limit 1..100', (path, names) => {
    const parameters = (operation(route('get', path)).parameters ?? []) as JsonObject[];
    for (const param of names) {
      expect(parameters).toContainEqual(expect.objectContaining({ name: param, in: 'query' }));
    }
    const limit = parameters.find((param) => param.name === 'limit');
    expect(limit?.schema).toEqual(expect.objectContaining({ minimum: 1, maximum: 100 }));
  });

  it('Message carries every field of api-reference §2, with the contract enums', () => {
    const page = success(route('get', '/v1/sessions/{session_id}/messages'));
    expect(page.required).toEqual(expect.arrayContaining(['items', 'next_cursor']));
    const message = resolve(at(property(page, 'items'), ['items']));
    const fields = [
      'id',
      'session_id',
      'role',
      'content',
      'client_msg_id',
      'action_type',
      'status',
      'model',
      'image',
      'image_failed',
      'created_at',
    ];
    expect(message.required).toEqual(expect.arrayContaining(fields));
    expect(property(message, 'role').enum).toEqual(['user', 'assistant']);
    expect(property(message, 'status').enum).toEqual(['complete', 'cancelled', 'failed']);
    expect(property(message, 'action_type').enum).toEqual([
      'reply_text',
      'reply_image',
      'reply_text_image',
    ]);
    for (const nullable of ['client_msg_id', 'action_type', 'model', 'image', 'image_failed']) {
      expect({ nullable, is: property(message, nullable).nullable }).toEqual({
        nullable,
        is: true,
      });
    }
    const image = property(message, 'image');
    expect(image.required).toEqual(
      expect.arrayContaining([
        'url',
        'mime',
        'model',
        'image_prompt',
        'width',
        'height',
        'durable_url',
      ]),
    );
    const failed = property(message, 'image_failed');
    expect(property(failed, 'reason').enum).toEqual([
      'chain_exhausted',
      'zero_images',
      'config_error',
    ]);
    const attempt = resolve(at(property(failed, 'attempts'), ['items']));
    expect(attempt.required).toEqual(expect.arrayContaining(['model', 'variant', 'outcome', 'ms']));
    expect(property(attempt, 'outcome').enum).toEqual([
      'ok',
      'transport',
      'status',
      'zero_images',
      'decode',
      'timeout',
    ]);
    expect(property(attempt, 'variant').enum).toEqual(['composed', 'original', 'single']);
  });

  it('TurnRequest matches api-reference §3', () => {
    const body = jsonBody(route('post', '/v1/sessions/{session_id}/turns'));
    expect(body.required).toEqual(expect.arrayContaining(['content', 'client_msg_id']));
    expect(property(body, 'content')).toEqual(
      expect.objectContaining({ type: 'string', maxLength: 8000 }),
    );
    expect(property(body, 'client_msg_id').pattern).toBe('^[A-Za-z0-9_-]{8,64}$');
    const image = property(body, 'image');
    expect(property(image, 'force')).toEqual(
      expect.objectContaining({ type: 'boolean', default: false }),
    );
    expect(property(image, 'mode')).toEqual(
      expect.objectContaining({ enum: ['text_image', 'image_only'], default: 'text_image' }),
    );
    expect(property(image, 'model').type).toBe('string');
    expect(property(image, 'image_prompt').maxLength).toBe(2000);
    expect(property(image, 'aspect_ratio').enum).toEqual(['1:1', '3:4', '4:3', '9:16', '16:9']);
    expect(property(image, 'reference_image_url').maxLength).toBe(2048);
    expect(image.required ?? []).toEqual([]);
  });

  it('the image write-back takes { url ≤ 2048 }, required', () => {
    const body = jsonBody(route('post', '/v1/sessions/{session_id}/messages/{message_id}/image'));
    expect(body.required).toEqual(['url']);
    expect(property(body, 'url')).toEqual(
      expect.objectContaining({ type: 'string', maxLength: 2048 }),
    );
  });

  it('GET /v1/images/{image_id} documents exp and sig as required query parameters', () => {
    const parameters = (operation(route('get', '/v1/images/{image_id}')).parameters ??
      []) as JsonObject[];
    for (const param of ['exp', 'sig']) {
      expect(parameters).toContainEqual(
        expect.objectContaining({ name: param, in: 'query', required: true }),
      );
    }
  });
});
