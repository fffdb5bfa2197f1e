import { Inject, Injectable, Logger } from '@nestjs/common';
import { readFileSync } from 'node:fs';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';

/** What `npm run build:page` writes, with the type each is served as. */
const PAGE_FILES = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'app.js.map': 'application/json; charset=utf-8',
} as const;
export type PageFile = keyof typeof PAGE_FILES;

export const isPageFile = (name: string): name is PageFile => Object.hasOwn(PAGE_FILES, name);

/** The same from src/demo (tests) and dist/demo (`npm start`): both are two levels down. */
const BUILD_DIR = new URL('../../client/dist/demo/', import.meta.url);

export interface PageAsset {
  readonly body: Buffer;
  readonly type: string;
}

/** The built page, read once at boot (a few hundred kB). */
@Injectable()
export class DemoAssetsService {
  private readonly files = new Map<PageFile, PageAsset>();

  constructor(@Inject(APP_CONFIG) config: AppConfig) {
    for (const [name, type] of Object.entries(PAGE_FILES) as [PageFile, string][]) {
      let body: Buffer;
      try {
        body = readFileSync(new URL(name, BUILD_DIR));
      } catch {
        continue;
      }
      if (name === 'index.html') {
        // The page shows its "development token" button only when POST /dev/token exists.
        body = Buffer.from(
          body.toString('utf8').replace('%DEV_TOKEN%', config.auth.generated ? 'on' : 'off'),
        );
      }
      this.files.set(name, { body, type });
    }
    if (!this.files.has('index.html')) {
      new Logger('DemoPage').warn('the demo page is not built: run `npm run build` to serve it');
    }
  }

  get(name: PageFile): PageAsset | null {
    return this.files.get(name) ?? null;
  }
}
