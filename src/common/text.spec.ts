import { TextSanitizer, hasUnstorableText, sanitizeText } from './text.js';

const SMILE = '\uD83D\uDE00';

describe('sanitizeText', () => {
  it('removes NULs and replaces lone surrogates with U+FFFD', () => {
    expect(sanitizeText('a\u0000b')).toBe('ab');
    expect(sanitizeText('x\uD83Dy')).toBe('x\uFFFDy');
    expect(sanitizeText('x\uDE00y')).toBe('x\uFFFDy');
    expect(sanitizeText('\uDE00\uD83D')).toBe('\uFFFD\uFFFD');
    expect(sanitizeText('end\uD83D')).toBe('end\uFFFD');
  });

  it('keeps valid text, surrogate pairs included, unchanged', () => {
    const text = `Hello ${SMILE} 你好 \t\n é`;
    expect(sanitizeText(text)).toBe(text);
  });
});

describe('hasUnstorableText', () => {
  it.each([
    ['a\u0000', true],
    ['\uD83D', true],
    ['\uDE00x', true],
    [`ok ${SMILE}`, false],
    ['', false],
  ])('%j → %s', (text, expected) => {
    expect(hasUnstorableText(text)).toBe(expected);
  });
});

describe('TextSanitizer', () => {
  it('keeps a surrogate pair split across two pieces', () => {
    const sanitizer = new TextSanitizer();
    expect(sanitizer.push('a\uD83D')).toBe('a');
    expect(sanitizer.push('\uDE00b')).toBe(`${SMILE}b`);
    expect(sanitizer.flush()).toBe('');
  });

  it('replaces a held high surrogate that the next piece does not complete', () => {
    const sanitizer = new TextSanitizer();
    expect(sanitizer.push('a\uD83D')).toBe('a');
    expect(sanitizer.push('b\u0000')).toBe('\uFFFDb');
  });

  it('flushes a dangling high surrogate as U+FFFD', () => {
    const sanitizer = new TextSanitizer();
    expect(sanitizer.push('\uD83D')).toBe('');
    expect(sanitizer.flush()).toBe('\uFFFD');
    expect(sanitizer.flush()).toBe('');
  });
});
