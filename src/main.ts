import { Logger } from '@nestjs/common';
import { JwtService } from './auth/jwt.service.js';
import { createApp } from './bootstrap.js';
import { ConfigError, loadConfig } from './config/app-config.js';

let config;
try {
  config = loadConfig();
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(error.message);
  process.exit(1);
}

const app = await createApp(config);
await app.listen(config.port);
const logger = new Logger('Easel');
logger.log(`listening on ${await app.getUrl()} — provider: ${config.provider.kind}, docs: /docs`);
if (config.auth.generated) {
  const token = await JwtService.sign(config.auth.jwtSecret, 'dev');
  logger.warn('AUTH_JWT_SECRET is not set: a secret was made for this process only.');
  // Straight to the terminal: the logger would (rightly) redact a JWT.
  process.stderr.write(`token for user "dev" (valid until restart):\n${token}\n`);
}
// Last, so it is the line a newcomer sees.
if (config.demoPage) logger.log(`open ${config.publicBaseUrl}/ to try it in the browser`);
