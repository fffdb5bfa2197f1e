import type { ArgumentMetadata } from '@nestjs/common';
import { ApiError } from './api-error.js';
import { JsonShapePipe, MAX_JSON_DEPTH } from './json-shape.pipe.js';

const pipe = new JsonShapePipe();
const body: ArgumentMetadata = { type: 'body' };

/** The ApiError the pipe throws for `value`, or null when it lets the value through. */
function refusal(value: unknown, metadata: ArgumentMetadata = body): ApiError | null {
  try {
    pipe.transform(value, metadata);
    return null;
  } catch (error) {
    if (error instanceof ApiError) return error;
    throw error;
  }
}

describe('JsonShapePipe', () => {
  it('names the first field (in document order) holding a NUL or a lone surrogate', () => {
    const error = refusal({ title: 'a\u0000b', system_prompt: '日\uD800' });
    expect(error?.getStatus()).toBe(400);
    expect(error?.body.code).toBe('invalid_payload');
    expect(error?.body.message).toMatch(/^title: contains a NUL character/);
    expect(
      refusal({ image: { model: 'ok', image_prompt: ['x', '\uDC00'] } })?.body.message,
    ).toMatch(/^image\.image_prompt\[1\]: /);
  });

  it('names a bad key as JSON, so the message itself holds no NUL', () => {
    const message = refusal({ ok: 1, 'k\u0000': 1 })?.body.message ?? '';
    expect(message).toMatch(/^"k\\u0000": /);
    expect(message).not.toContain('\u0000');
  });

  it('names a query parameter read on its own by its name', () => {
    expect(refusal('1\u0000', { type: 'query', data: 'exp' })?.body.message).toMatch(/^exp: /);
  });

  it('lets well-formed text through: pairs, CJK, other control characters', () => {
    expect(refusal({ title: '😀 画 \u0007\t', list: ['𝒜'] })).toBeNull();
  });

  it('walks a body of 200 000 items without overflowing anything', () => {
    expect(refusal(new Array<number>(200_000).fill(0))).toBeNull();
    expect(refusal([...new Array<string>(199_999).fill('x'), '\u0000'])?.body.message).toMatch(
      /^\[199999\]: /,
    );
  });

  it('still refuses deep nesting and reserved keys', () => {
    let deep: unknown = 'leaf';
    for (let level = 0; level <= MAX_JSON_DEPTH; level++) deep = [deep];
    expect(refusal(deep)?.body.message).toMatch(/nested more than/);
    expect(refusal(JSON.parse('{"__proto__": {}}'))?.body.message).toMatch(/__proto__/);
  });

  it.each([
    ['session_id', 404, 'session_not_found'],
    ['client_msg_id', 404, 'turn_not_found'],
    ['message_id', 404, 'not_found'],
  ])('a path %s that cannot be stored is an unknown id (%i %s)', (name, status, code) => {
    const error = refusal('abc\u0000', { type: 'param', data: name });
    expect([error?.getStatus(), error?.body.code]).toEqual([status, code]);
    expect(refusal('abc', { type: 'param', data: name })).toBeNull();
  });
});
