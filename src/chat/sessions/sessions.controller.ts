import {
  Body,
  Controller,
  Delete,
  Get,
  HttpCode,
  Param,
  Post,
  Query,
  UseGuards,
} from '@nestjs/common';
import {
  ApiBearerAuth,
  ApiBody,
  ApiNoContentResponse,
  ApiOperation,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import { AuthGuard } from '../../auth/auth.guard.js';
import { CurrentUser } from '../../auth/current-user.decorator.js';
import { ApiErrorResponses } from '../../common/api-error-responses.decorator.js';
import { ErrorDto } from '../../common/error.dto.js';
import { ImageWriteBackDto, ListMessagesQueryDto, MessagePageDto } from './dto/message.dto.js';
import {
  CreateSessionDto,
  ListSessionsQueryDto,
  SessionDto,
  SessionPageDto,
} from './dto/session.dto.js';
import { SessionsService } from './sessions.service.js';

@ApiTags('sessions')
@ApiBearerAuth()
@ApiResponse({ status: 401, type: ErrorDto, description: '`unauthorized`' })
@UseGuards(AuthGuard)
@Controller('v1/sessions')
export class SessionsController {
  constructor(private readonly sessions: SessionsService) {}

  @Post()
  @ApiOperation({ summary: 'Create a session' })
  @ApiBody({ type: CreateSessionDto, required: false })
  @ApiResponse({ status: 201, type: SessionDto })
  @ApiResponse({ status: 400, type: ErrorDto, description: '`invalid_payload`' })
  create(@CurrentUser() userId: string, @Body() body: CreateSessionDto): Promise<SessionDto> {
    return this.sessions.create(userId, body);
  }

  @Get()
  @ApiOperation({ summary: "List the caller's sessions, newest first" })
  @ApiResponse({ status: 200, type: SessionPageDto })
  @ApiResponse({ status: 400, type: ErrorDto, description: '`invalid_payload` (limit, cursor)' })
  list(
    @CurrentUser() userId: string,
    @Query() query: ListSessionsQueryDto,
  ): Promise<SessionPageDto> {
    return this.sessions.list(userId, query.limit ?? 20, query.cursor ?? null);
  }

  @Get(':session_id')
  @ApiOperation({ summary: 'Get a session' })
  @ApiResponse({ status: 200, type: SessionDto })
  @ApiResponse({ status: 404, type: ErrorDto, description: '`session_not_found`' })
  get(@CurrentUser() userId: string, @Param('session_id') sessionId: string): Promise<SessionDto> {
    return this.sessions.get(userId, sessionId);
  }

  @Delete(':session_id')
  @HttpCode(204)
  @ApiOperation({ summary: 'Delete a session with its messages and images' })
  @ApiNoContentResponse()
  @ApiResponse({ status: 404, type: ErrorDto, description: '`session_not_found`' })
  delete(@CurrentUser() userId: string, @Param('session_id') sessionId: string): Promise<void> {
    return this.sessions.delete(userId, sessionId);
  }

  @Get(':session_id/messages')
  @ApiOperation({ summary: 'Message history, newest first' })
  @ApiResponse({ status: 200, type: MessagePageDto })
  @ApiErrorResponses({
    400: '`invalid_payload` (limit, before)',
    404: '`session_not_found`',
  })
  messages(
    @CurrentUser() userId: string,
    @Param('session_id') sessionId: string,
    @Query() query: ListMessagesQueryDto,
  ): Promise<MessagePageDto> {
    return this.sessions.history(userId, sessionId, query.limit ?? 50, query.before ?? null);
  }

  @Post(':session_id/messages/:message_id/image')
  @HttpCode(204)
  @ApiOperation({
    summary: "Record the client's durable copy of a generated image",
    description: 'Idempotent. 404 unless the message is an assistant message with an image.',
  })
  @ApiNoContentResponse()
  @ApiErrorResponses({
    400: '`invalid_payload`',
    404: '`session_not_found` / `not_found`',
  })
  recordImage(
    @CurrentUser() userId: string,
    @Param('session_id') sessionId: string,
    @Param('message_id') messageId: string,
    @Body() body: ImageWriteBackDto,
  ): Promise<void> {
    return this.sessions.recordDurableImage(userId, sessionId, messageId, body.url);
  }
}
