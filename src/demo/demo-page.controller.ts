import { Controller, Get, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { ApiError } from '../common/api-error.js';
import { DemoAssetsService, isPageFile, type PageFile } from './demo-assets.service.js';

/**
 * Scripts, styles and calls only from this origin; pictures from anywhere (signed URLs may sit on
 * PUBLIC_BASE_URL, durable copies on the app's own storage) and inline `data:` previews.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  'img-src * data: blob:',
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Serves the built demo page: `/` and its assets under `/demo/`. Not part of the API document. */
@ApiExcludeController()
@Controller()
export class DemoPageController {
  constructor(private readonly assets: DemoAssetsService) {}

  @Get()
  index(@Res() response: Response): void {
    this.send(response, 'index.html');
  }

  @Get('demo/:file')
  asset(@Param('file') file: string, @Res() response: Response): void {
    if (!isPageFile(file) || file === 'index.html') throw ApiError.notFound();
    this.send(response, file);
  }

  private send(response: Response, name: PageFile): void {
    const asset = this.assets.get(name);
    if (!asset) {
      response
        .status(503)
        .type('text/plain')
        .send('The demo page is not built: run `npm run build`, then restart.\n');
      return;
    }
    response
      .status(200)
      .set({
        'content-type': asset.type,
        // Small files rebuilt with the service: always revalidate rather than serve a stale page.
        'cache-control': 'no-cache',
        'content-security-policy': CONTENT_SECURITY_POLICY,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      })
      .send(asset.body);
  }
}
