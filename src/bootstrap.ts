import 'reflect-metadata';
import type { Server } from 'node:http';
import { type INestApplication, ValidationPipe, type ValidationError } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { NestExpressApplication } from '@nestjs/platform-express';
import { DocumentBuilder, type OpenAPIObject, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module.js';
import { ApiError } from './common/api-error.js';
import { ApiExceptionFilter } from './common/api-exception.filter.js';
import { JsonShapePipe } from './common/json-shape.pipe.js';
import { type AppConfig } from './config/app-config.js';
import { frameOpenApi } from './contract/index.js';
import { AppLogger } from './observability/logger.service.js';
import { requestLogging } from './observability/request-logging.middleware.js';

function flatten(errors: ValidationError[], prefix = ''): string[] {
  return errors.flatMap((error) => {
    const path = prefix ? `${prefix}.${error.property}` : error.property;
    const own = Object.values(error.constraints ?? {}).map((text) =>
      text.startsWith(error.property)
        ? `${path}${text.slice(error.property.length)}`
        : `${path}: ${text}`,
    );
    return [...own, ...flatten(error.children ?? [], path)];
  });
}

export function buildOpenApi(app: INestApplication): OpenAPIObject {
  const config = new DocumentBuilder()
    .setTitle('Easel API')
    .setDescription(
      'Chat turns streamed over Server-Sent Events: the text of an LLM reply and an image drawn ' +
        'through a fallback chain of image models. Wire contract: docs/api-reference.md.',
    )
    .setVersion('1')
    .addBearerAuth({ type: 'http', scheme: 'bearer', bearerFormat: 'JWT' })
    .build();
  const document = SwaggerModule.createDocument(app, config);
  // The stream frames are declared in src/contract (not as DTO classes): their schemas join the
  // components here, and the SSE routes reference them (docs/api-reference.md §5).
  document.components = {
    ...document.components,
    schemas: { ...document.components?.schemas, ...frameOpenApi().schemas },
  };
  return document;
}

/**
 * Node's limits on receiving a request, from config. `requestTimeout` ends when the request has
 * been read, so a long turn stream (the response) is never cut by it. Node enforces both limits
 * from a timer that runs every `connectionsCheckingInterval` (30 s by default, read when the
 * server starts listening): tightened so a limit fires within a quarter of itself.
 */
export function applyServerTimeouts(server: Server, limits: AppConfig['http']): void {
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // A createServer option in the typings, but kept as this property and read on 'listening'.
  (server as Server & { connectionsCheckingInterval: number }).connectionsCheckingInterval =
    Math.min(1000, Math.ceil(Math.min(limits.headersTimeoutMs, limits.requestTimeoutMs) / 4));
}

/** The app as `main.ts` and the e2e suites run it: same pipes, filters and docs. */
export async function createApp(config: AppConfig): Promise<NestExpressApplication> {
  const logger = AppLogger.forConfig(config);
  const app = await NestFactory.create<NestExpressApplication>(AppModule.forRoot(config), {
    bufferLogs: false,
    logger,
    // JSON only: Nest's default urlencoded parser would let form posts through as requests.
    bodyParser: false,
  });
  applyServerTimeouts(app.getHttpServer() as Server, config.http);
  // First, so body-parser errors are logged with a request id too.
  app.use(requestLogging(logger.pino));
  app.useBodyParser('json', { limit: '256kb' });
  app.useGlobalFilters(new ApiExceptionFilter());
  app.useGlobalPipes(
    new JsonShapePipe(),
    new ValidationPipe({
      whitelist: true,
      forbidNonWhitelisted: true,
      transform: true,
      exceptionFactory: (errors) => {
        const details = flatten(errors);
        return ApiError.invalidPayload(details[0] ?? 'The request is not valid.', details);
      },
    }),
  );
  // Exit 0 after a clean drain (not a re-raised SIGTERM); process.exit also lets pino flush.
  app.enableShutdownHooks([], { useProcessExit: true });
  const document = buildOpenApi(app);
  SwaggerModule.setup('docs', app, document, { jsonDocumentUrl: 'docs/openapi.json' });
  return app;
}
