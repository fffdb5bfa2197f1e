import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { AppLogger, createPinoLogger } from './logger.service.js';
import { currentRequestId, requestIdFrom } from './request-context.js';
import { requestLogging } from './request-logging.middleware.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

type Line = Record<string, unknown>;

describe('requestIdFrom', () => {
  it.each(['abc', 'req-1.2_3', 'A'.repeat(64)])('keeps the sane id %s', (id) => {
    expect(requestIdFrom(id)).toBe(id);
  });

  it.each([
    ['missing', undefined],
    ['empty', ''],
    ['too long', 'A'.repeat(65)],
    ['spaces', 'a b'],
    ['a log-injection attempt', 'x\n{"level":"fatal"}'],
    ['repeated headers', ['a', 'b']],
  ])('makes a uuid when the header is %s', (_name, header) => {
    expect(requestIdFrom(header)).toMatch(UUID);
  });
});

describe('requestLogging middleware', () => {
  const raw: string[] = [];
  const lines = (): Line[] => raw.map((line) => JSON.parse(line) as Line);
  const logger = new AppLogger(
    createPinoLogger({ level: 'info', destination: { write: (line) => raw.push(line) } }),
  );
  const middleware = requestLogging(logger.pino);
  let server: Server;
  let baseUrl: string;

  beforeAll(async () => {
    // A handler that logs across awaits and timers, as a turn does, without passing the id on.
    server = createServer((req, res) =>
      middleware(Object.assign(req, { userId: 'alice' }), res, () => {
        void (async () => {
          await sleep(20);
          logger.log('working', 'Handler');
          setTimeout(() => {
            logger.warn('later', 'Handler');
            res.statusCode = 201;
            res.end(currentRequestId());
          }, 10);
        })();
      }),
    );
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  });

  beforeEach(() => {
    raw.length = 0;
  });

  it('echoes the client id and puts it on every line of the request, concurrently', async () => {
    const ids = ['req-a', 'req-b', 'req-c'];
    const responses = await Promise.all(
      ids.map((id) =>
        fetch(`${baseUrl}/v1/things?sig=secret`, { headers: { 'x-request-id': id } }),
      ),
    );
    for (const [i, response] of responses.entries()) {
      expect(response.headers.get('x-request-id')).toBe(ids[i]);
      expect(await response.text()).toBe(ids[i]);
    }
    await new Promise((resolve) => setImmediate(resolve));
    for (const id of ids) {
      const own = lines().filter((line) => line.request_id === id);
      expect(own.map((line) => line.msg).sort()).toEqual(['later', 'request', 'working']);
      expect(own.find((line) => line.msg === 'request')).toEqual(
        expect.objectContaining({
          level: 'info',
          method: 'GET',
          path: '/v1/things',
          status: 201,
          user_id: 'alice',
          ms: expect.any(Number),
        }),
      );
    }
    expect(raw.join('')).not.toContain('secret');
  });

  it('makes a new id when the client sends none or a bad one', async () => {
    const response = await fetch(baseUrl, { headers: { 'x-request-id': 'no spaces allowed' } });
    const id = response.headers.get('x-request-id');
    expect(id).toMatch(UUID);
    expect(await response.text()).toBe(id);
    await new Promise((resolve) => setImmediate(resolve));
    expect(lines().every((line) => line.request_id === id)).toBe(true);
  });

  it('has no request id outside a request', () => {
    expect(currentRequestId()).toBeUndefined();
    logger.log('boot');
    expect(lines()[0]).not.toHaveProperty('request_id');
  });
});
