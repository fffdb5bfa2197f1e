import { Ajv, type ValidateFunction } from 'ajv';

/**
 * Checks stream frames against the frame schemas a published OpenAPI document declares (api-reference §5), so
 * an e2e suite can prove the document describes exactly what the wire carries. It reads the
 * document, not src/contract: a frame the document fails to describe is a failure.
 */
export interface FrameContract {
  /** The frame types the document's event-stream responses map (`discriminator.mapping`). */
  readonly types: readonly string[];
  /** One line per problem (`frame 3 (image): must NOT have additional properties …`); empty = ok. */
  check(frames: readonly unknown[]): string[];
  /** Throws with every problem. */
  assert(frames: readonly unknown[]): void;
}

type Json = { [key: string]: unknown };

const COMPONENTS = '#/components/schemas/';
const DOC_ID = 'openapi';

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function child(value: unknown, ...path: string[]): unknown {
  let current = value;
  for (const key of path) current = isObject(current) ? current[key] : undefined;
  return current;
}

/** `#/components/schemas/X` → `openapi#/definitions/X`, recursively. */
function rewriteRefs(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(rewriteRefs);
  if (!isObject(value)) return value;
  return Object.fromEntries(
    Object.entries(value).map(([key, item]) =>
      key === '$ref' && typeof item === 'string' && item.startsWith(COMPONENTS)
        ? [key, `${DOC_ID}#/definitions/${item.slice(COMPONENTS.length)}`]
        : [key, rewriteRefs(item)],
    ),
  );
}

/** Every `200 text/event-stream` schema of the document, `$ref`s to components followed. */
function eventStreamSchemas(document: Json): Json[] {
  const found: Json[] = [];
  for (const item of Object.values(isObject(document.paths) ? document.paths : {})) {
    for (const operation of Object.values(isObject(item) ? item : {})) {
      let schema = child(operation, 'responses', '200', 'content', 'text/event-stream', 'schema');
      const ref = child(schema, '$ref');
      if (typeof ref === 'string' && ref.startsWith(COMPONENTS)) {
        schema = child(document, 'components', 'schemas', ref.slice(COMPONENTS.length));
      }
      if (isObject(schema)) found.push(schema);
    }
  }
  return found;
}

export function frameContract(document: object): FrameContract {
  const doc = document as Json;
  const streams = eventStreamSchemas(doc);
  if (streams.length === 0) {
    throw new Error('the document has no 200 text/event-stream response');
  }
  const mapping = new Map<string, string>();
  for (const stream of streams) {
    const map = child(stream, 'discriminator', 'mapping');
    if (child(stream, 'discriminator', 'propertyName') !== 'type' || !isObject(map)) {
      throw new Error('an event-stream schema has no discriminator on `type` with a mapping');
    }
    const refs = (Array.isArray(stream.oneOf) ? stream.oneOf : []).map((entry) =>
      child(entry, '$ref'),
    );
    for (const [type, ref] of Object.entries(map)) {
      if (typeof ref !== 'string' || !ref.startsWith(COMPONENTS) || !refs.includes(ref)) {
        throw new Error(`mapping of "${type}" (${String(ref)}) is not one of the oneOf refs`);
      }
      const previous = mapping.get(type);
      if (previous !== undefined && previous !== ref) {
        throw new Error(`"${type}" maps to both ${previous} and ${ref}`);
      }
      mapping.set(type, ref);
    }
  }

  // OpenAPI 3.0 keywords (`nullable`, `example`, `discriminator`) are not draft-07: not strict.
  const ajv = new Ajv({ allErrors: true, strict: false, validateFormats: false });
  ajv.addSchema(
    { $id: DOC_ID, definitions: rewriteRefs(child(doc, 'components', 'schemas') ?? {}) },
    DOC_ID,
  );
  const validators = new Map<string, ValidateFunction>();
  for (const [type, ref] of mapping) {
    const validate = ajv.getSchema(`${DOC_ID}#/definitions/${ref.slice(COMPONENTS.length)}`);
    if (!validate) throw new Error(`"${type}" maps to ${ref}, which is not in components`);
    validators.set(type, validate);
  }

  const check = (frames: readonly unknown[]): string[] =>
    frames.flatMap((frame, index) => {
      const type = child(frame, 'type');
      const label = `frame ${index + 1} (${String(type)})`;
      const validate = typeof type === 'string' ? validators.get(type) : undefined;
      if (!validate) return [`${label}: type not described by the document`];
      if (validate(frame)) return [];
      return (validate.errors ?? []).map(
        (error) => `${label}: ${error.instancePath || '/'} ${error.message ?? 'invalid'}`,
      );
    });

  return {
    types: [...mapping.keys()],
    check,
    assert(frames) {
      const problems = check(frames);
      if (problems.length > 0) {
        throw new Error(`frames do not match the OpenAPI document:\n${problems.join('\n')}`);
      }
    },
  };
}
