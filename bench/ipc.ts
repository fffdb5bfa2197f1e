/** Messages between the bench orchestrator (`run.ts`) and the processes it starts. */
import type { IncomingMessage } from 'node:http';
import { writeHeapSnapshot } from 'node:v8';

/** Orchestrator → child. `arm` and `release` are for the upstream only. */
export type Command =
  | { readonly cmd: 'stats'; readonly id: number; readonly gc: boolean }
  /** Hold the next `count` streams, each `chunks` long. */
  | { readonly cmd: 'arm'; readonly count: number; readonly chunks: number }
  | { readonly cmd: 'release' }
  /** Upstream: answer image requests with a PNG of about `bytes` from now on. */
  | { readonly cmd: 'image-bytes'; readonly bytes: number }
  /** Upstream: answer image requests after `ms` from now on (a drawing model's pace). */
  | { readonly cmd: 'image-delay'; readonly ms: number }
  /** Forced GC, then a V8 heap snapshot written to `path`. */
  | { readonly cmd: 'heap-snapshot'; readonly id: number; readonly path: string }
  | { readonly cmd: 'exit' };

export interface Stats {
  /** user + system CPU of the whole process since it started, µs. */
  readonly cpuUs: number;
  /** CPU spent in the forced GC of this sample, so it can be left out of the load's cost. */
  readonly gcCpuUs: number;
  readonly rss: number;
  readonly heapUsed: number;
  readonly external: number;
}

/** Child → orchestrator. */
export type Report =
  | { readonly type: 'ready'; readonly port: number }
  | { readonly type: 'stats'; readonly id: number; readonly stats: Stats }
  /** Upstream: an armed stream arrived; `count` are held now. */
  | { readonly type: 'held'; readonly count: number }
  | { readonly type: 'snapshot'; readonly id: number };

export function isCommand(value: unknown): value is Command {
  return typeof value === 'object' && value !== null && 'cmd' in value;
}

export function isReport(value: unknown): value is Report {
  return typeof value === 'object' && value !== null && 'type' in value;
}

export function report(message: Report): void {
  process.send?.(message);
}

/** Monotonic µs (CLOCK_MONOTONIC): one clock shared by every process on the machine. */
export function nowUs(): number {
  return Number(process.hrtime.bigint() / 1000n);
}

/**
 * Answers `stats` (and `exit`) over IPC, and exits with the orchestrator. `gc: true` needs
 * `--expose-gc`; collecting twice lets weak callbacks and finalizers settle, so heap figures
 * are comparable between samples.
 */
export function serveStats(): void {
  // The orchestrator is gone (finished, crashed or killed): so is the reason to run.
  process.on('disconnect', () => process.exit(0));
  process.on('message', (message: unknown) => {
    if (!isCommand(message)) return;
    // A normal exit (not a signal) is what makes `--cpu-prof` write its profile.
    if (message.cmd === 'exit') process.exit(0);
    const gc = (globalThis as { gc?: () => void }).gc;
    if (message.cmd === 'heap-snapshot') {
      gc?.();
      gc?.();
      writeHeapSnapshot(message.path);
      report({ type: 'snapshot', id: message.id });
      return;
    }
    if (message.cmd !== 'stats') return;
    const before = process.cpuUsage();
    if (message.gc && gc) {
      gc();
      gc();
    }
    const after = process.cpuUsage();
    const memory = process.memoryUsage();
    report({
      type: 'stats',
      id: message.id,
      stats: {
        cpuUs: after.user + after.system,
        gcCpuUs: after.user + after.system - (before.user + before.system),
        rss: memory.rss,
        heapUsed: memory.heapUsed,
        external: memory.external,
      },
    });
  });
}

/** The whole request body as text. */
export function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const parts: Buffer[] = [];
    req.on('data', (part: Buffer) => parts.push(part));
    req.on('error', reject);
    req.on('end', () => resolve(Buffer.concat(parts).toString('utf8')));
  });
}
