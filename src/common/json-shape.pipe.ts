import { type ArgumentMetadata, Injectable, type PipeTransform } from '@nestjs/common';
import { ApiError } from './api-error.js';

/**
 * Far deeper than any request this API defines. class-transformer recurses once per level and
 * overflows the stack near 2000 levels (a 4 KB body), which would surface as a 500.
 */
export const MAX_JSON_DEPTH = 32;

/**
 * Keys that class-transformer drops silently (they name `Object.prototype` members), so
 * `forbidNonWhitelisted` never sees them: refused here like any other unknown field.
 */
const RESERVED_KEYS = new Set([...Object.getOwnPropertyNames(Object.prototype), 'prototype']);

/** Refuses bodies and queries that are nested too deeply or use reserved keys, before validation. */
@Injectable()
export class JsonShapePipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (metadata.type !== 'body' && metadata.type !== 'query') return value;
    const problem = findProblem(value);
    if (problem) throw ApiError.invalidPayload(problem, [problem]);
    return value;
  }
}

/** Walks the value without recursion, so no input can exhaust the stack. */
function findProblem(root: unknown): string | null {
  const pending: { value: unknown; path: string; depth: number }[] = [
    { value: root, path: '', depth: 0 },
  ];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, path, depth } = next;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= MAX_JSON_DEPTH) {
      return `${path || 'body'}: nested more than ${MAX_JSON_DEPTH} levels deep`;
    }
    if (Array.isArray(value)) {
      value.forEach((item: unknown, index) =>
        pending.push({ value: item, path: `${path}[${index}]`, depth: depth + 1 }),
      );
      continue;
    }
    for (const [key, item] of Object.entries(value)) {
      const at = path ? `${path}.${key}` : key;
      if (RESERVED_KEYS.has(key)) return `${at}: property ${key} should not exist`;
      pending.push({ value: item, path: at, depth: depth + 1 });
    }
  }
  return null;
}
