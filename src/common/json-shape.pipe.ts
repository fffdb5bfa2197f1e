import { type ArgumentMetadata, Injectable, type PipeTransform } from '@nestjs/common';
import { ApiError } from './api-error.js';
import { hasUnstorableText } from './text.js';

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

const UNSTORABLE =
  'contains a NUL character or an unpaired UTF-16 surrogate, which cannot be stored';

/**
 * A path id that holds text no column can store names no row: answered as that route answers
 * an unknown id, without asking the database (which would refuse the query with a 500).
 */
const UNKNOWN_ID: Readonly<Record<string, () => ApiError>> = {
  session_id: () => ApiError.sessionNotFound(),
  client_msg_id: () => ApiError.turnNotFound(),
};

/**
 * Refuses bodies and queries that are nested too deeply, use reserved keys, or hold text
 * PostgreSQL cannot store, before validation; path ids of that kind are unknown ids (404).
 */
@Injectable()
export class JsonShapePipe implements PipeTransform {
  transform(value: unknown, metadata: ArgumentMetadata): unknown {
    if (metadata.type === 'param') {
      if (typeof value === 'string' && hasUnstorableText(value)) {
        throw (UNKNOWN_ID[metadata.data ?? ''] ?? (() => ApiError.notFound()))();
      }
      return value;
    }
    if (metadata.type !== 'body' && metadata.type !== 'query') return value;
    const problem = findProblem(value, metadata.data ?? '');
    if (problem) throw ApiError.invalidPayload(problem, [problem]);
    return value;
  }
}

/** Walks the value without recursion, so no input can exhaust the stack. */
function findProblem(root: unknown, rootPath: string): string | null {
  const pending: { value: unknown; path: string; depth: number }[] = [
    { value: root, path: rootPath, depth: 0 },
  ];
  for (let next = pending.pop(); next !== undefined; next = pending.pop()) {
    const { value, path, depth } = next;
    if (typeof value === 'string') {
      if (hasUnstorableText(value)) return `${path || 'body'}: ${UNSTORABLE}`;
      continue;
    }
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= MAX_JSON_DEPTH) {
      return `${path || 'body'}: nested more than ${MAX_JSON_DEPTH} levels deep`;
    }
    // Pushed in reverse so they are popped in document order: the first problem is reported.
    const children: { value: unknown; path: string; depth: number }[] = [];
    if (Array.isArray(value)) {
      value.forEach((item: unknown, index) =>
        children.push({ value: item, path: `${path}[${index}]`, depth: depth + 1 }),
      );
    } else {
      for (const [key, item] of Object.entries(value)) {
        // Named as JSON, so a NUL in the key shows as \u0000 and not as a raw control byte.
        if (hasUnstorableText(key)) {
          return `${path ? `${path}.` : ''}${JSON.stringify(key)}: ${UNSTORABLE}`;
        }
        const at = path ? `${path}.${key}` : key;
        if (RESERVED_KEYS.has(key)) return `${at}: property ${key} should not exist`;
        children.push({ value: item, path: at, depth: depth + 1 });
      }
    }
    // A loop, not push(...children): a 256 KB array has more items than a call takes arguments.
    for (let index = children.length - 1; index >= 0; index--) pending.push(children[index]);
  }
  return null;
}
