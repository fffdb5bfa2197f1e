import type { ServerResponse } from 'node:http';
import { Controller, Get, Inject, Param, Query, Res, StreamableFile } from '@nestjs/common';
import {
  ApiOkResponse,
  ApiOperation,
  ApiParam,
  ApiQuery,
  ApiResponse,
  ApiTags,
} from '@nestjs/swagger';
import { ApiError } from '../common/api-error.js';
import { ErrorDto } from '../common/error.dto.js';
import { ImageUrlSigner } from './image-url.signer.js';
import { ImagesRepository } from './images.repository.js';

/** Serves generated images through signed URLs: public, so an `<img>` can load them. */
@ApiTags('images')
@Controller('v1/images')
export class ImagesController {
  constructor(
    @Inject(ImageUrlSigner) private readonly signer: ImageUrlSigner,
    @Inject(ImagesRepository) private readonly images: ImagesRepository,
  ) {}

  @Get(':image_id')
  @ApiOperation({
    summary: 'Fetch a generated image',
    description:
      'Public: the signature is the credential. URLs come from `image` frames and messages; ' +
      'they expire, and fetching the message again gives a fresh one.',
  })
  @ApiParam({ name: 'image_id', description: 'Image id, as in the signed URL.' })
  @ApiQuery({ name: 'exp', required: true, description: 'Expiry, unix seconds.' })
  @ApiQuery({ name: 'sig', required: true, description: 'base64url HMAC-SHA256 of `id.exp`.' })
  @ApiOkResponse({
    description: 'The image bytes; cacheable privately until the URL expires.',
    content: Object.fromEntries(
      ['image/png', 'image/jpeg', 'image/webp', 'image/gif'].map((mime) => [
        mime,
        { schema: { type: 'string', format: 'binary' } },
      ]),
    ),
  })
  @ApiResponse({
    status: 403,
    description: '`forbidden`: missing, bad or expired signature.',
    type: ErrorDto,
  })
  @ApiResponse({ status: 404, description: '`not_found`: no such image.', type: ErrorDto })
  async get(
    @Param('image_id') imageId: string,
    @Query('exp') exp: unknown,
    @Query('sig') sig: unknown,
    @Res({ passthrough: true }) response: ServerResponse,
  ): Promise<StreamableFile> {
    // The signature is checked before the lookup so a bad one cannot probe which ids exist.
    if (!this.signer.verify(imageId, exp, sig)) {
      throw ApiError.forbiddenImage();
    }
    const image = await this.images.findById(imageId);
    if (!image) throw ApiError.notFound('No such image.');
    const maxAge = Math.max(0, Number(exp) - Math.floor(Date.now() / 1000));
    response.setHeader('Cache-Control', `private, max-age=${maxAge}`);
    response.setHeader('X-Content-Type-Options', 'nosniff');
    return new StreamableFile(image.bytes, { type: image.mime, length: image.bytes.length });
  }
}
