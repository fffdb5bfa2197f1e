import { execFileSync } from 'node:child_process';
import { availableParallelism } from 'node:os';

/**
 * Puts one thread on a set of cores (Linux, `taskset` from util-linux; a thread id where Linux
 * takes one, the main thread's being the process id). On a small machine the fault load's
 * generator and the app share cores, so either one's CPU showed up as the other's latency; a
 * load generator on a machine of its own would not. Returns false where it cannot be done.
 */
export function placeThread(threadId: number | null, cores: string): boolean {
  if (threadId === null) return false;
  try {
    execFileSync('taskset', ['-p', '-c', cores, String(threadId)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Every core the process may use, as `taskset` writes them. */
export const allCores = (): string => `0-${availableParallelism() - 1}`;

/** The machine's last core, or null when it has only one (nothing to split). */
export function lastCore(): number | null {
  const cores = availableParallelism();
  return cores < 2 ? null : cores - 1;
}
