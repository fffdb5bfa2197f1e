/**
 * A tiny JSON-schema builder whose values carry the TypeScript type they describe (a phantom
 * type), so one declaration yields both the schema published in OpenAPI and the type the code
 * uses. The output is the OpenAPI 3.0 dialect (`nullable: true`, single-value `enum` instead of
 * `const`) that Nest's document uses and ajv understands.
 */

export type JsonSchema = { readonly [keyword: string]: unknown };

declare const phantom: unique symbol;

/** A JSON schema for values of type `T`. `T` exists only at the type level. */
export interface Schema<T> {
  readonly json: JsonSchema;
  readonly [phantom]?: T;
}

/** An object property that may be absent. */
export interface Optional<T> {
  readonly optional: Schema<T>;
}

type Field = Schema<unknown> | Optional<unknown>;
type Fields = { readonly [name: string]: Field };

/** The type a schema (or optional field) describes. */
export type Infer<S> = S extends Optional<infer T> ? T : S extends Schema<infer T> ? T : never;

type RequiredKeys<F extends Fields> = {
  [K in keyof F]: F[K] extends Optional<unknown> ? never : K;
}[keyof F];
type OptionalKeys<F extends Fields> = Exclude<keyof F, RequiredKeys<F>>;
type Simplify<T> = { [K in keyof T]: T[K] } & {};

export type ObjectOf<F extends Fields> = Simplify<
  { [K in RequiredKeys<F>]: Infer<F[K]> } & { [K in OptionalKeys<F>]?: Infer<F[K]> }
>;

interface Annotations {
  readonly description?: string;
}

export const string = (
  constraints: Annotations & {
    readonly pattern?: string;
    readonly minLength?: number;
    readonly maxLength?: number;
    readonly format?: string;
  } = {},
): Schema<string> => ({ json: { type: 'string', ...constraints } });

export const integer = (
  constraints: Annotations & { readonly minimum?: number; readonly maximum?: number } = {},
): Schema<number> => ({ json: { type: 'integer', ...constraints } });

export const boolean = (annotations: Annotations = {}): Schema<boolean> => ({
  json: { type: 'boolean', ...annotations },
});

/** One of a vocabulary list's values. */
export const oneOf = <const L extends readonly string[]>(
  values: L,
  annotations: Annotations = {},
): Schema<L[number]> => ({ json: { type: 'string', enum: [...values], ...annotations } });

export const literal = <const V extends string>(value: V): Schema<V> => oneOf([value]);

export const nullable = <T>(schema: Schema<T>): Schema<T | null> => {
  const { enum: values, ...rest } = schema.json;
  // A nullable enum must list null too, or strict validators reject it.
  const json = Array.isArray(values) ? { ...rest, enum: [...values, null] } : rest;
  return { json: { ...json, nullable: true } };
};

export const array = <T>(items: Schema<T>, annotations: Annotations = {}): Schema<T[]> => ({
  json: { type: 'array', items: items.json, ...annotations },
});

export const optional = <T>(schema: Schema<T>): Optional<T> => ({ optional: schema });

/** A closed object: every property listed, the non-optional ones required. */
export const object = <const F extends Fields>(
  fields: F,
  annotations: Annotations = {},
): Schema<ObjectOf<F>> => {
  const properties: Record<string, JsonSchema> = {};
  const required: string[] = [];
  for (const [name, field] of Object.entries(fields)) {
    if ('optional' in field) {
      properties[name] = field.optional.json;
    } else {
      properties[name] = field.json;
      required.push(name);
    }
  }
  return {
    json: { type: 'object', ...annotations, properties, required, additionalProperties: false },
  };
};
