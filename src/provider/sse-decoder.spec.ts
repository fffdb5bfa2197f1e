import { SseDecoder, type SseMessage } from './sse-decoder.js';

function decodeInPieces(text: string, size: number): SseMessage[] {
  const bytes = Buffer.from(text, 'utf8');
  const decoder = new SseDecoder();
  const messages: SseMessage[] = [];
  for (let offset = 0; offset < bytes.length; offset += size) {
    messages.push(...decoder.push(bytes.subarray(offset, offset + size)));
  }
  return [...messages, ...decoder.end()];
}

const BODY =
  ': OPENROUTER PROCESSING\n\n' +
  'data: {"a":"héllo 你好 😀"}\n\n' +
  'event: image_generation.partial_image\r\n' +
  'id: 7\r\n' +
  'data: line one\r\n' +
  'data:line two\r\n\r\n' +
  'data: [DONE]\r\r';

const EXPECTED: SseMessage[] = [
  { event: null, data: '{"a":"héllo 你好 😀"}' },
  { event: 'image_generation.partial_image', data: 'line one\nline two' },
  { event: null, data: '[DONE]' },
];

describe('SseDecoder', () => {
  it('parses data, event and multi-line data, skipping comments and ids', () => {
    expect(decodeInPieces(BODY, BODY.length * 4)).toEqual(EXPECTED);
  });

  it.each([1, 2, 3, 5, 7])(
    'gives the same messages when the body arrives in %i-byte chunks',
    (size) => {
      expect(decodeInPieces(BODY, size)).toEqual(EXPECTED);
    },
  );

  it('delivers a last event whose blank line never came', () => {
    expect(decodeInPieces('data: {"x":1}\n', 100)).toEqual([{ event: null, data: '{"x":1}' }]);
    expect(decodeInPieces('data: {"x":1}', 3)).toEqual([{ event: null, data: '{"x":1}' }]);
  });

  it('does not dispatch events without data', () => {
    expect(decodeInPieces('event: ping\n\n: comment\n\n', 4)).toEqual([]);
  });
});
