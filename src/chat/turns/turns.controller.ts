import {
  Body,
  Controller,
  Get,
  Headers,
  HttpCode,
  Param,
  Post,
  Query,
  Req,
  Res,
  UseGuards,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiOperation,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Request, Response } from 'express';
import { ApiError } from '../../common/api-error.js';
import { AuthGuard } from '../../auth/auth.guard.js';
import { CurrentUser } from '../../auth/current-user.decorator.js';
import { ApiErrorResponses } from '../../common/api-error-responses.decorator.js';
import { ApiFrameStream } from './api-frame-stream.decorator.js';
import { StopResultDto } from './dto/stop-result.dto.js';
import { TurnRequestDto } from './dto/turn-request.dto.js';
import { sendSse } from './sse-response.js';
import { TurnsService } from './turns.service.js';

/**
 * Characters of frames a stream may have queued for a client that does not read; past it the
 * connection is dropped and the client resumes from its last id, so one slow follower never
 * holds the producer or the others.
 */
const FOLLOWER_MAX_PENDING_CHARS = 4 * 1024 * 1024;

@ApiTags('turns')
@ApiBearerAuth()
@UseGuards(AuthGuard)
@Controller('v1/sessions/:session_id/turns')
export class TurnsController {
  constructor(private readonly turns: TurnsService) {}

  @Post()
  @HttpCode(200)
  @ApiOperation({
    summary: 'Run a chat turn, streamed as Server-Sent Events',
    description:
      'Frames are `id: <n>` + `data: <JSON>` with a `type`: meta, delta, done, image_pending, ' +
      'image_attempt, image, image_failed, final, error. See docs/api-reference.md for the orders.',
  })
  @ApiBody({ type: TurnRequestDto })
  @ApiFrameStream(
    'The turn stream: `id: <n>` and `data: <frame JSON>` per event, `: ping` comments.',
    "Reconnect (api-reference §8a): attach to this key's turn after this frame id instead of 409.",
  )
  @ApiErrorResponses({
    400: '`invalid_payload`',
    401: '`unauthorized`',
    404: '`session_not_found`',
    409: '`duplicate_in_progress` / `idempotency_conflict` (with `original_user_message_id`)',
    422: '`image_disabled`',
    410: '`resume_expired` (with Last-Event-ID)',
    429: '`rate_limited`',
    503: '`unavailable` (shutting down, or the turn could not start in time)',
  })
  async run(
    @CurrentUser() userId: string,
    @Param('session_id') sessionId: string,
    @Body() body: TurnRequestDto,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    const arrivedAt = Date.now();
    const cursor = lastEventId === undefined ? null : parseCursor(lastEventId, 'Last-Event-ID');
    await sendSse(
      request,
      response,
      (signal) => this.turns.start(userId, sessionId, body, signal, cursor, arrivedAt),
      FOLLOWER_MAX_PENDING_CHARS,
    );
  }

  @Get(':client_msg_id/events')
  @ApiOperation({
    summary: "Resume a turn's stream after a frame id (api-reference §8a)",
    description:
      'The frames with `id` > `Last-Event-ID` (or `?after=`; absent = 0), byte-identical to the ' +
      'first time, then the live ones, then the terminal frame; then the stream closes. Works on ' +
      'any instance. A client that does not read is cut (the connection closes without a ' +
      'terminal frame) once too far behind; it resumes from its last id.',
  })
  @ApiFrameStream(
    'The turn stream from the cursor on (`: ping` comments in between).',
    'The last frame id seen.',
  )
  @ApiQuery({ name: 'after', required: false, type: Number, description: 'As Last-Event-ID.' })
  @ApiErrorResponses({
    400: '`invalid_payload` (bad cursor)',
    401: '`unauthorized`',
    404: '`turn_not_found`',
    410: '`resume_expired`: re-POST the turn without Last-Event-ID for the v1 replay',
  })
  async events(
    @CurrentUser() userId: string,
    @Param('session_id') sessionId: string,
    @Param('client_msg_id') clientMsgId: string,
    @Headers('last-event-id') lastEventId: string | undefined,
    @Query('after') after: string | undefined,
    @Req() request: Request,
    @Res() response: Response,
  ): Promise<void> {
    const cursor =
      lastEventId !== undefined
        ? parseCursor(lastEventId, 'Last-Event-ID')
        : after !== undefined
          ? parseCursor(after, 'after')
          : 0;
    await sendSse(
      request,
      response,
      (signal) => this.turns.events(userId, sessionId, clientMsgId, cursor, signal),
      FOLLOWER_MAX_PENDING_CHARS,
    );
  }

  @Post(':client_msg_id/cancel')
  @ApiOperation({
    summary: 'Stop a turn (api-reference §8a), from any instance',
    description:
      'Aborts every in-flight provider call of the turn; attached streams end with ' +
      '`done(truncated)` for an open message and `error{code:"cancelled"}`. Idempotent.',
  })
  @ApiResponse({ status: 202, type: StopResultDto, description: '`cancelling`: it was running' })
  @ApiResponse({ status: 200, type: StopResultDto, description: 'It had ended: its stored status' })
  @ApiErrorResponses({
    401: '`unauthorized`',
    404: '`turn_not_found`',
  })
  async cancel(
    @CurrentUser() userId: string,
    @Param('session_id') sessionId: string,
    @Param('client_msg_id') clientMsgId: string,
    @Res({ passthrough: true }) response: Response,
  ): Promise<StopResultDto> {
    const { httpStatus, body } = await this.turns.stop(userId, sessionId, clientMsgId);
    response.status(httpStatus);
    return body;
  }
}

/** A frame id cursor: a whole number ≥ 0, else 400. */
function parseCursor(value: string, name: string): number {
  const trimmed = value.trim();
  if (!/^\d{1,9}$/.test(trimmed)) {
    throw ApiError.invalidPayload(`${name} must be a frame id (a whole number ≥ 0).`);
  }
  return Number(trimmed);
}
