import {
  Body,
  Controller,
  HttpCode,
  Param,
  RequestMethod,
  Sse,
  SseSignal,
  UseGuards,
} from '@nestjs/common';
import { ApiBearerAuth, ApiBody, ApiOperation, ApiResponse, ApiTags } from '@nestjs/swagger';
import type { Observable } from 'rxjs';
import { AuthGuard } from '../../auth/auth.guard.js';
import { CurrentUser } from '../../auth/current-user.decorator.js';
import { ErrorDto } from '../../common/error.dto.js';
import { frameOpenApi } from '../../contract/index.js';
import { MetricsService } from '../../observability/metrics.service.js';
import { countTurn } from './turn-metrics.js';
import { TurnRequestDto } from './dto/turn-request.dto.js';
import type { SseMessage } from './frames.js';
import { TurnsService } from './turns.service.js';

@ApiTags('turns')
@ApiBearerAuth()
@UseGuards(AuthGuard)
@Controller('v1/sessions/:session_id/turns')
export class TurnsController {
  constructor(
    private readonly turns: TurnsService,
    private readonly metrics: MetricsService,
  ) {}

  @Sse('', { method: RequestMethod.POST })
  @HttpCode(200)
  @ApiOperation({
    summary: 'Run a chat turn, streamed as Server-Sent Events',
    description:
      'Frames are `id: <n>` + `data: <JSON>` with a `type`: meta, delta, done, image_pending, ' +
      'image_attempt, image, image_failed, final, error. See docs/api-reference.md for the orders.',
  })
  @ApiBody({ type: TurnRequestDto })
  @ApiResponse({
    status: 200,
    description:
      'The turn stream: `id: <n>` and `data: <frame JSON>` per event, `: ping` comments.',
    content: { 'text/event-stream': { schema: frameOpenApi().eventStream } },
  })
  @ApiResponse({ status: 400, type: ErrorDto, description: '`invalid_payload`' })
  @ApiResponse({ status: 401, type: ErrorDto, description: '`unauthorized`' })
  @ApiResponse({ status: 404, type: ErrorDto, description: '`session_not_found`' })
  @ApiResponse({
    status: 409,
    type: ErrorDto,
    description:
      '`duplicate_in_progress` / `idempotency_conflict` (with `original_user_message_id`)',
  })
  @ApiResponse({ status: 422, type: ErrorDto, description: '`image_disabled`' })
  @ApiResponse({ status: 429, type: ErrorDto, description: '`rate_limited`' })
  @ApiResponse({ status: 503, type: ErrorDto, description: '`unavailable` (shutting down)' })
  async run(
    @CurrentUser() userId: string,
    @Param('session_id') sessionId: string,
    @Body() body: TurnRequestDto,
    @SseSignal() signal: AbortSignal,
  ): Promise<Observable<SseMessage>> {
    const frames$ = await this.turns.start(userId, sessionId, body, signal);
    return frames$.pipe(countTurn(this.metrics));
  }
}
