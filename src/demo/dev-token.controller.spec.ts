import type { Request } from 'express';
import { JwtService } from '../auth/jwt.service.js';
import { ApiError } from '../common/api-error.js';
import { loadConfig } from '../config/app-config.js';
import { DEV_USER, DevTokenController } from './dev-token.controller.js';

describe('DevTokenController', () => {
  const config = loadConfig({ NODE_ENV: 'development' });
  const controller = new DevTokenController(config);
  const from = (remoteAddress: string): Request =>
    ({ socket: { remoteAddress } }) as unknown as Request;

  it.each(['127.0.0.1', '::1', '::ffff:127.0.0.1'])(
    'signs a token for the dev user for %s',
    async (address) => {
      const { token, user_id } = await controller.token(from(address));
      expect(user_id).toBe(DEV_USER);
      expect(await new JwtService(config).verify(token)).toBe(DEV_USER);
    },
  );

  it.each(['192.168.1.20', '::ffff:10.0.0.7', ''])(
    'refuses %j (not this machine)',
    async (address) => {
      await expect(controller.token(from(address))).rejects.toBeInstanceOf(ApiError);
    },
  );
});
