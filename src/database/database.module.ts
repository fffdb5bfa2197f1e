import { Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { type AppConfig } from '../config/app-config.js';
import { APP_CONFIG } from '../config/config.module.js';
import { DatabaseClient } from './database.client.js';

@Module({
  providers: [
    {
      provide: DatabaseClient,
      inject: [APP_CONFIG],
      useFactory: (config: AppConfig) =>
        DatabaseClient.connect({
          databaseUrl: config.databaseUrl,
          dataDir: config.dataDir,
          pgliteWorker: config.pgliteWorker,
        }),
    },
  ],
  exports: [DatabaseClient],
})
export class DatabaseModule implements OnApplicationShutdown {
  constructor(@Inject(DatabaseClient) private readonly client: DatabaseClient) {}

  async onApplicationShutdown(): Promise<void> {
    await this.client.close();
  }
}
