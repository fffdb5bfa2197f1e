import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { Test } from '@nestjs/testing';
import { lastValueFrom, toArray } from 'rxjs';
import request from 'supertest';
import { makePng } from '../../test/harness/fake-upstream.js';
import { ApiExceptionFilter } from '../common/api-exception.filter.js';
import { loadConfig } from '../config/app-config.js';
import { ConfigModule } from '../config/config.module.js';
import { DatabaseClient, IN_MEMORY } from '../database/database.client.js';
import { images, messages, sessions } from '../database/schema.js';
import { ImageGenModule } from '../image-gen/image-gen.module.js';
import { ImageGenService } from '../image-gen/image-gen.service.js';
import { ImageStore } from './image-store.js';
import { ImageUrlSigner } from './image-url.signer.js';
import { ImagesModule } from './images.module.js';

describe('GET /v1/images/:image_id (ImagesModule, and ImageGenModule wired with the demo provider)', () => {
  const png = makePng(6, 4);
  let client: DatabaseClient;
  let app: INestApplication;
  let signer: ImageUrlSigner;

  beforeAll(async () => {
    client = await DatabaseClient.connect({ databaseUrl: null, dataDir: IN_MEMORY });
    await client.db.insert(sessions).values({ id: 'ses_1', userId: 'user_1' });
    await client.db.insert(messages).values({
      id: 'msg_1',
      sessionId: 'ses_1',
      role: 'assistant',
      content: '',
      status: 'complete',
    });
    await client.db.insert(images).values({
      id: 'img_1',
      sessionId: 'ses_1',
      messageId: 'msg_1',
      mime: 'image/png',
      width: 6,
      height: 4,
      size: png.length,
    });

    const config = loadConfig({
      PUBLIC_BASE_URL: 'http://easel.test',
      IMAGE_URL_TTL_SECONDS: '3600',
      IMAGE_COMPOSE_MODEL: 'off',
      DEMO_IMAGE_DELAY_MS: '0',
    });
    const moduleRef = await Test.createTestingModule({
      imports: [ConfigModule.forRoot(config), ImagesModule, ImageGenModule],
    })
      .overrideProvider(DatabaseClient)
      .useValue(client)
      .compile();
    app = moduleRef.createNestApplication();
    app.useGlobalFilters(new ApiExceptionFilter());
    await app.init();
    signer = app.get(ImageUrlSigner);
    await app.get(ImageStore).put('img_1', png);
  });

  afterAll(async () => {
    await app?.close();
    await client?.close();
  });

  const pathOf = (url: string): string => {
    const parsed = new URL(url);
    return `${parsed.pathname}${parsed.search}`;
  };

  it('serves the bytes with their type, length, ETag and an immutable private cache until expiry', async () => {
    const response = await request(app.getHttpServer())
      .get(pathOf(signer.sign('img_1').url))
      .buffer(true)
      .parse((res, done) => {
        const parts: Buffer[] = [];
        res.on('data', (part: Buffer) => parts.push(part));
        res.on('end', () => done(null, Buffer.concat(parts)));
      })
      .expect(200);

    expect(response.headers['content-type']).toBe('image/png');
    expect(response.headers['content-length']).toBe(String(png.length));
    expect(response.headers['cache-control']).toMatch(/^private, max-age=(3600|3599), immutable$/);
    expect(response.headers['etag']).toBe('"img_1"');
    expect(response.body).toEqual(png);
  });

  it.each(['"img_1"', 'W/"img_1"', '"other", "img_1"', '*'])(
    'answers 304 with no body to If-None-Match: %s',
    async (tag) => {
      const response = await request(app.getHttpServer())
        .get(pathOf(signer.sign('img_1').url))
        .set('If-None-Match', tag)
        .expect(304);
      expect(response.headers['etag']).toBe('"img_1"');
      expect(response.headers['cache-control']).toMatch(/immutable$/);
      expect(response.text ?? '').toBe('');
    },
  );

  it('serves the bytes when If-None-Match names another image', async () => {
    await request(app.getHttpServer())
      .get(pathOf(signer.sign('img_1').url))
      .set('If-None-Match', '"img_2"')
      .expect(200);
  });

  it('checks the signature before If-None-Match', async () => {
    const path = pathOf(signer.sign('img_1').url).replace(/sig=./, (m) =>
      m.endsWith('A') ? 'sig=B' : 'sig=A',
    );
    await request(app.getHttpServer()).get(path).set('If-None-Match', '"img_1"').expect(403);
  });

  it.each([
    ['no signature', (path: string) => path.replace(/\?.*$/, '')],
    [
      'a tampered signature',
      (path: string) => path.replace(/sig=./, (m) => (m.endsWith('A') ? 'sig=B' : 'sig=A')),
    ],
    ['another image id', (path: string) => path.replace('img_1', 'img_2')],
  ])('answers 403 forbidden for %s', async (_name, mangle) => {
    const response = await request(app.getHttpServer())
      .get(mangle(pathOf(signer.sign('img_1').url)))
      .expect(403);
    expect(response.body).toEqual({ code: 'forbidden', message: expect.any(String) });
  });

  it('answers 403 forbidden for an expired URL', async () => {
    const expired = signer.sign('img_1', Date.now() - 3601_000).url;
    const response = await request(app.getHttpServer()).get(pathOf(expired)).expect(403);
    expect(response.body.code).toBe('forbidden');
  });

  it('answers 404 not_found for an unknown id with a valid signature', async () => {
    const response = await request(app.getHttpServer())
      .get(pathOf(signer.sign('img_unknown').url))
      .expect(404);
    expect(response.body).toEqual({ code: 'not_found', message: expect.any(String) });
  });

  it('is described in the OpenAPI document', () => {
    const document = SwaggerModule.createDocument(app, new DocumentBuilder().build());
    const operation = document.paths['/v1/images/{image_id}']?.get;
    expect(operation?.tags).toEqual(['images']);
    expect(operation?.security).toBeUndefined();
    expect(Object.keys(operation?.responses ?? {}).sort()).toEqual(['200', '304', '403', '404']);
    expect(Object.keys(operation?.responses['200'] ?? {})).toContain('content');
    expect(operation?.parameters?.map((p) => ('name' in p ? p.name : null)).sort()).toEqual([
      'If-None-Match',
      'exp',
      'image_id',
      'sig',
    ]);
  });

  it('wires ImageGenService to the configured provider', async () => {
    const events = await lastValueFrom(
      app
        .get(ImageGenService)
        .generate$({
          subject: 'a lighthouse',
          context: [],
          model: null,
          aspectRatio: null,
          referenceImageUrl: null,
          partialImages: 0,
        })
        .pipe(toArray()),
    );
    const done = events.at(-1);
    if (done?.type !== 'done') throw new Error('no done event');
    expect(done.result.attempts.map((a) => [a.model, a.outcome])).toEqual([
      ['demo/flaky-painter', 'status'],
      ['demo/painter', 'ok'],
    ]);
  });
});
