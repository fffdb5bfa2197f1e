import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { type Frame, isFrameType } from '../../src/contract/index.js';
import { EaselError } from './errors.js';

/** A frame with its SSE `id` (1, 2, … within the turn, api-reference §4). */
export interface NumberedFrame {
  readonly id: number;
  readonly frame: Frame;
}

/** The server sent something that is not the contract's framing; resuming cannot fix that. */
export class EaselProtocolError extends EaselError {
  override name = 'EaselProtocolError';
}

function toFrame(event: EventSourceMessage): NumberedFrame | null {
  const id = Number(event.id);
  if (!Number.isSafeInteger(id) || id < 1) {
    throw new EaselProtocolError(`frame without a numeric id: ${event.data.slice(0, 200)}`);
  }
  let data: unknown;
  try {
    data = JSON.parse(event.data);
  } catch {
    throw new EaselProtocolError(`frame ${id} is not JSON: ${event.data.slice(0, 200)}`);
  }
  const type = (data as { type?: unknown } | null)?.type;
  // Clients ignore unknown types (api-reference §4): new frame types are additive.
  return isFrameType(type) ? { id, frame: data as Frame } : null;
}

/**
 * Reads one `text/event-stream` body frame by frame. `onActivity` runs for every chunk (frames
 * and `: ping` comments alike), so a caller can notice a silent connection. Returning early
 * cancels the body.
 */
export async function* readFrames(
  body: ReadableStream<Uint8Array>,
  onActivity: () => void = () => undefined,
): AsyncGenerator<NumberedFrame> {
  const parsed: NumberedFrame[] = [];
  let failure: unknown = null;
  const parser = createParser({
    onEvent(event) {
      try {
        const frame = toFrame(event);
        if (frame) parsed.push(frame);
      } catch (error) {
        failure ??= error;
      }
    },
  });
  // getReader() rather than async iteration: Safari's ReadableStream is not async-iterable.
  const reader = body.getReader();
  const decoder = new TextDecoder();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      onActivity();
      parser.feed(decoder.decode(value, { stream: true }));
      if (failure) throw failure;
      while (parsed.length > 0) yield parsed.shift()!;
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}
