export * from './vocabulary.js';
export * from './frames.js';
export * from './rest.js';
export type { Infer, JsonSchema, Schema } from './schema.js';
