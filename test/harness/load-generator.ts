import { build } from 'esbuild';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { lastCore, placeThread } from './cpu-placement.js';
import type { DriverMessage, DriverRequest, LoadDriver } from './load-driver.js';

/** The load driver (load-driver.ts) in a worker thread, called from the test's thread. */
export interface LoadGenerator extends LoadDriver {
  /** The fake upstream's base URL (the app's LLM_BASE_URL). */
  readonly upstreamUrl: string;
  /** The core the load runs on, or null if it was not placed (it shares them all). */
  readonly core: number | null;
}

/** The load's thread on the machine's last core, alone of this process's threads (cpu-placement.ts). */
function pinToLastCore(threadId: number | null): number | null {
  const core = lastCore();
  return core !== null && placeThread(threadId, String(core)) ? core : null;
}

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));
/** Inside node_modules, so the bundle's imports of packages resolve as the test's do. */
const CACHE = here('../../node_modules/.cache/easel-load/');

/**
 * A worker cannot use jest's TypeScript transform, so the driver is bundled first (packages stay
 * imports); the bundle is removed once the worker has loaded it.
 */
export async function startLoadGenerator(): Promise<LoadGenerator> {
  await mkdir(CACHE, { recursive: true });
  const dir = await mkdtemp(CACHE);
  let worker: Worker;
  let upstreamUrl: string;
  let threadId: number | null;
  const pending = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
  const failAll = (error: Error): void => {
    for (const call of pending.values()) call.reject(error);
    pending.clear();
  };
  try {
    const file = join(dir, 'load-driver.mjs');
    await build({
      entryPoints: [here('load-driver.ts')],
      outfile: file,
      platform: 'node',
      format: 'esm',
      target: 'node20',
      bundle: true,
      packages: 'external',
      logLevel: 'warning',
    });
    worker = new Worker(file);
    [upstreamUrl, threadId] = await new Promise<[string, number | null]>((resolve, reject) => {
      worker.once('error', reject);
      worker.once('exit', (code) => reject(new Error(`load driver exited (${code}) at start`)));
      worker.on('message', (message: DriverMessage) => {
        if (message.type === 'ready') {
          resolve([message.upstreamUrl, message.threadId]);
          return;
        }
        const call = pending.get(message.id);
        pending.delete(message.id);
        if (message.type === 'result') call?.resolve(message.value);
        else call?.reject(new Error(`load driver: ${message.error}`));
      });
    });
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
  worker.removeAllListeners('error').removeAllListeners('exit');
  worker.on('error', failAll);
  worker.on('exit', (code) => failAll(new Error(`load driver exited (${code})`)));

  let nextId = 0;
  const call = <K extends keyof LoadDriver>(
    method: K,
    ...args: Parameters<LoadDriver[K]>
  ): ReturnType<LoadDriver[K]> =>
    new Promise((resolve, reject) => {
      const id = nextId++;
      pending.set(id, { resolve, reject });
      worker.postMessage({ id, method, args } as DriverRequest);
    }) as ReturnType<LoadDriver[K]>;

  return {
    upstreamUrl,
    core: pinToLastCore(threadId),
    run: (...args) => call('run', ...args),
    upstreamCallCount: () => call('upstreamCallCount'),
    upstreamCalls: (...args) => call('upstreamCalls', ...args),
    upstreamQuiet: (...args) => call('upstreamQuiet', ...args),
    upstreamConnections: () => call('upstreamConnections'),
    async close() {
      await call('close');
      await worker.terminate();
    },
  };
}
