import { applyDecorators } from '@nestjs/common';
import { ApiHeader, ApiResponse } from '@nestjs/swagger';
import { frameOpenApi } from '../../contract/index.js';

/**
 * A route that answers with a turn's frames as Server-Sent Events and takes `Last-Event-ID`:
 * `stream` says what its 200 stream holds, `lastEventId` what the header does there.
 */
export function ApiFrameStream(stream: string, lastEventId: string) {
  return applyDecorators(
    ApiHeader({ name: 'Last-Event-ID', required: false, description: lastEventId }),
    ApiResponse({
      status: 200,
      description: stream,
      content: { 'text/event-stream': { schema: frameOpenApi().eventStream } },
    }),
  );
}
