import { pipeline } from 'node:stream/promises';
import { Controller, Get, Headers, Logger, Param, Query, Res } from '@nestjs/common';
import {
  ApiHeader,
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiError } from '../common/api-error.js';
import { ApiErrorResponses } from '../common/api-error-responses.decorator.js';
import { ImageStore } from './image-store.js';
import { ImageUrlSigner } from './image-url.signer.js';
import { ImagesRepository } from './images.repository.js';

/** The strong validator of an image: its id, since the bytes under an id never change. */
export function imageEtag(imageId: string): string {
  return `"${imageId}"`;
}

/** RFC 9110 §13.1.2: `*`, or any listed tag equal to ours by the weak comparison. */
function matchesNoneMatch(header: unknown, etag: string): boolean {
  if (typeof header !== 'string') return false;
  return header
    .split(',')
    .map((tag) => tag.trim().replace(/^W\//, ''))
    .some((tag) => tag === '*' || tag === etag);
}

const CACHE_HEADERS = {
  ETag: { description: 'The image id, quoted: a strong validator.', schema: { type: 'string' } },
  'Cache-Control': {
    description: '`private, max-age=<seconds until exp>, immutable`.',
    schema: { type: 'string' },
  },
};

/** Serves generated images through signed URLs: public, so an `<img>` can load them. */
@ApiTags('images')
@Controller('v1/images')
export class ImagesController {
  private readonly logger = new Logger(ImagesController.name);

  constructor(
    private readonly signer: ImageUrlSigner,
    private readonly images: ImagesRepository,
    private readonly store: ImageStore,
  ) {}

  @Get(':image_id')
  @ApiOperation({
    summary: 'Fetch a generated image',
    description:
      'Public: the signature is the credential. URLs come from `image` frames and messages; ' +
      'they expire, and fetching the message again gives a fresh one. An image never changes: ' +
      'the answer carries an `ETag` and may be cached privately until the URL expires; a ' +
      'matching `If-None-Match` gets `304`. The bytes are streamed.',
  })
  @ApiParam({ name: 'image_id', description: 'Image id, as in the signed URL.' })
  @ApiQuery({ name: 'exp', required: true, description: 'Expiry, unix seconds.' })
  @ApiQuery({ name: 'sig', required: true, description: 'base64url HMAC-SHA256 of `id.exp`.' })
  @ApiHeader({
    name: 'If-None-Match',
    required: false,
    description: 'The `ETag` of a copy the client has; checked after the signature.',
  })
  @ApiOkResponse({
    description: 'The image bytes; cacheable privately until the URL expires.',
    headers: CACHE_HEADERS,
    content: Object.fromEntries(
      ['image/png', 'image/jpeg', 'image/webp', 'image/gif'].map((mime) => [
        mime,
        { schema: { type: 'string', format: 'binary' } },
      ]),
    ),
  })
  @ApiResponse({
    status: 304,
    description: 'Not modified: `If-None-Match` names this image. No body.',
    headers: CACHE_HEADERS,
  })
  @ApiErrorResponses({
    403: '`forbidden`: missing, bad or expired signature.',
    404: '`not_found`: no such image.',
  })
  async get(
    @Param('image_id') imageId: string,
    @Query('exp') exp: unknown,
    @Query('sig') sig: unknown,
    @Headers('if-none-match') ifNoneMatch: unknown,
    @Res() response: Response,
  ): Promise<void> {
    // The signature is checked before the lookup so a bad one cannot probe which ids exist.
    if (!this.signer.verify(imageId, exp, sig)) {
      throw ApiError.forbiddenImage();
    }
    // The row is looked up even for a 304, so a deleted image is not confirmed from a cache.
    const image = await this.images.findById(imageId);
    if (!image) throw ApiError.notFound('No such image.');
    const etag = imageEtag(image.id);
    // The bytes never change (immutable), but the URL stops working at exp: a cached copy must
    // not outlive it, and `private` keeps shared caches from serving it past the signature.
    const maxAge = Math.max(0, Number(exp) - Math.floor(Date.now() / 1000));
    const cacheHeaders = {
      ETag: etag,
      'Cache-Control': `private, max-age=${maxAge}, immutable`,
      'X-Content-Type-Options': 'nosniff',
    };
    if (matchesNoneMatch(ifNoneMatch, etag)) {
      response.status(304).set(cacheHeaders).end();
      return;
    }
    const bytes = await this.store.open(image.id);
    if (!bytes) {
      this.logger.error(`image ${image.id} has a row but no bytes`);
      throw ApiError.notFound('No such image.');
    }
    response
      .status(200)
      .set({ ...cacheHeaders, 'Content-Type': image.mime, 'Content-Length': String(image.size) });
    try {
      await pipeline(bytes, response);
    } catch (error) {
      // The client left, or the store failed mid-body: pipeline has closed both ends already.
      if (
        !response.writableFinished &&
        (error as NodeJS.ErrnoException).code !== 'ERR_STREAM_PREMATURE_CLOSE'
      ) {
        this.logger.warn(`streaming image ${image.id}: ${String(error)}`);
      }
    }
  }
}
