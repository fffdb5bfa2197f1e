/**
 * Text that PostgreSQL cannot store: NUL anywhere (text and jsonb reject it) and UTF-16
 * surrogates that are not part of a pair (not valid Unicode; the embedded database rejects them).
 */
// With the `u` flag a well-formed pair is one code point, so the range only matches lone halves.
// eslint-disable-next-line no-control-regex -- NUL is exactly what these look for.
const UNSTORABLE = /[\u0000\uD800-\uDFFF]/u;
// eslint-disable-next-line no-control-regex -- as above.
const UNSTORABLE_ALL = /[\u0000\uD800-\uDFFF]/gu;

/** True when `text` holds a NUL or a lone surrogate (used to refuse such client input). */
export function hasUnstorableText(text: string): boolean {
  return UNSTORABLE.test(text);
}

/** Upstream text made storable: NULs removed, lone surrogates replaced with U+FFFD. */
export function sanitizeText(text: string): string {
  return text.replace(UNSTORABLE_ALL, (match) => (match === '\u0000' ? '' : '\uFFFD'));
}

function endsWithHighSurrogate(text: string): boolean {
  const last = text.charCodeAt(text.length - 1);
  return last >= 0xd800 && last <= 0xdbff;
}

/**
 * {@link sanitizeText} over a stream of pieces: a high surrogate at the end of one piece may be
 * completed by the next, so it is held back until the next piece (or `flush`) decides.
 */
export class TextSanitizer {
  private pending = '';

  /** The storable text of `piece`, possibly without its last code unit (held for the next piece). */
  push(piece: string): string {
    const text = this.pending + piece;
    this.pending = endsWithHighSurrogate(text) ? text.slice(-1) : '';
    return sanitizeText(this.pending === '' ? text : text.slice(0, -1));
  }

  /** Whatever is still held back, sanitised (a lone high surrogate becomes U+FFFD). */
  flush(): string {
    const text = sanitizeText(this.pending);
    this.pending = '';
    return text;
  }
}
