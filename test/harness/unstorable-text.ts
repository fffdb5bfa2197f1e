import fc from 'fast-check';

/**
 * Text PostgreSQL cannot store (NUL anywhere; a UTF-16 surrogate without its other half), and
 * generators that hide it inside otherwise ordinary input, often next to non-ASCII text (where
 * the embedded database used to fail).
 */
export const UNSTORABLE_CHARS = ['\u0000', '\uD800', '\uDBFF', '\uDC00', '\uDFFF'] as const;

const carriers = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.constantFrom('画一只猫', 'Ünïcödé', 'emoji 😀 here', 'русский текст', ''),
);

/** A string holding at least one unstorable character, anywhere in it. */
export const unstorableText: fc.Arbitrary<string> = fc
  .tuple(carriers, fc.constantFrom(...UNSTORABLE_CHARS), fc.nat(), carriers)
  .map(([text, bad, at, tail]) => {
    const cut = at % (text.length + 1);
    return `${text.slice(0, cut)}${bad}${text.slice(cut)}${tail}`;
  })
  // A lone low surrogate right after a high one would pair up: no longer unstorable.
  .filter(isUnstorable);

/** The server's own rule, restated so the tests do not trust the code they test. */
export function isUnstorable(text: string): boolean {
  // eslint-disable-next-line no-control-regex -- NUL is what this looks for.
  return /[\u0000\uD800-\uDFFF]/u.test(text);
}

/** Valid text that is close to the edge: astral characters (well-formed pairs), CJK, controls. */
export const awkwardButStorable: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom('😀 paired surrogates', '𝒜𝒷𝒸 画', 'tab\there', 'bell\u0007', 'del\u007f'),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 30 }),
);

/**
 * A unit for `fc.string({ unit })` / `fc.jsonValue({ stringUnit })`: any code point, and now and
 * then a NUL or half of a surrogate pair, so generated strings and keys hold them too.
 */
export const hazardousUnit: fc.Arbitrary<string> = fc.oneof(
  { weight: 8, arbitrary: fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }) },
  { weight: 1, arbitrary: fc.constantFrom(...UNSTORABLE_CHARS) },
);
