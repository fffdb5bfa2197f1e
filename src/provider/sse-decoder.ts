export interface SseMessage {
  readonly event: string | null;
  readonly data: string;
}

/**
 * Server-Sent Events parsing over raw body chunks, which may split anywhere: inside a UTF-8
 * sequence, a line, or a CRLF. Comments (`: OPENROUTER PROCESSING`) and `id:`/`retry:` are
 * skipped. Used for the chat stream because the SDK hides whether `data: [DONE]` arrived.
 */
export class SseDecoder {
  private readonly utf8 = new TextDecoder('utf-8');
  private buffer = '';
  /** The previous chunk ended in CR, so a LF starting this one belongs to it. */
  private afterCr = false;
  private event: string | null = null;
  private data: string[] = [];

  push(chunk: Uint8Array): SseMessage[] {
    return this.lines(this.utf8.decode(chunk, { stream: true }));
  }

  /**
   * The body ended. A last event without its blank line is still delivered: some upstreams
   * close right after their final `data:` line.
   */
  end(): SseMessage[] {
    const messages = this.lines(this.utf8.decode());
    if (this.buffer !== '') this.line(this.buffer, messages);
    this.buffer = '';
    this.dispatch(messages);
    return messages;
  }

  private lines(text: string): SseMessage[] {
    const messages: SseMessage[] = [];
    let rest = this.afterCr && text.startsWith('\n') ? text.slice(1) : text;
    this.afterCr = false;
    for (;;) {
      const match = /\r\n|\r|\n/.exec(rest);
      if (match === null) break;
      // A CR at the very end may be the first half of a CRLF split across chunks.
      if (match[0] === '\r' && match.index === rest.length - 1) this.afterCr = true;
      this.line(this.buffer + rest.slice(0, match.index), messages);
      this.buffer = '';
      rest = rest.slice(match.index + match[0].length);
    }
    this.buffer += rest;
    return messages;
  }

  private line(line: string, messages: SseMessage[]): void {
    if (line === '') {
      this.dispatch(messages);
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.event = value;
  }

  private dispatch(messages: SseMessage[]): void {
    if (this.data.length > 0) messages.push({ event: this.event, data: this.data.join('\n') });
    this.event = null;
    this.data = [];
  }
}
