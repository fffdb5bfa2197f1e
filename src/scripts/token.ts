import { loadConfig } from '../config/app-config.js';
import { JwtService } from '../auth/jwt.service.js';

// `npm run token -- <user>` prints a Bearer token for the configured AUTH_JWT_SECRET.
const user = process.argv[2] ?? 'dev';
const secret = process.env.AUTH_JWT_SECRET;
if (!secret) {
  console.error(
    'AUTH_JWT_SECRET is not set: the server makes a secret per boot and logs a token for "dev".',
  );
  process.exit(1);
}
loadConfig();
console.log(await JwtService.sign(secret, user));
