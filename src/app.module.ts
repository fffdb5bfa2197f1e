import { type DynamicModule, Module } from '@nestjs/common';
import { ChatModule } from './chat/chat.module.js';
import { type AppConfig } from './config/app-config.js';
import { ConfigModule } from './config/config.module.js';
import { DemoModule } from './demo/demo.module.js';
import { HealthModule } from './health/health.module.js';
import { ImagesModule } from './images/images.module.js';
import { ObservabilityModule } from './observability/observability.module.js';

@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    return {
      module: AppModule,
      imports: [
        ConfigModule.forRoot(config),
        ObservabilityModule,
        HealthModule,
        ImagesModule,
        ChatModule,
        ...(config.demoPage ? [DemoModule.forRoot(config)] : []),
      ],
    };
  }
}
