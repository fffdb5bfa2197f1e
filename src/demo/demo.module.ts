import { type DynamicModule, Module } from '@nestjs/common';
import { type AppConfig } from '../config/app-config.js';
import { DemoAssetsService } from './demo-assets.service.js';
import { DemoPageController } from './demo-page.controller.js';
import { DevTokenController } from './dev-token.controller.js';

/**
 * The demo page at `/` (built from the client package into client/dist/demo) and, only when the
 * server made its own JWT secret, `POST /dev/token` for the page's sign-in button. Registered by
 * AppModule when DEMO_PAGE is on. Needs nothing but the (global) config.
 */
@Module({})
export class DemoModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: DemoModule,
      controllers: [DemoPageController, ...(config.auth.generated ? [DevTokenController] : [])],
      providers: [DemoAssetsService],
    };
  }
}
