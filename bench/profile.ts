/** Summarises a `--cpu-prof` profile: self time per function and per package, in a time window. */
import { readFileSync } from 'node:fs';

interface CallFrame {
  readonly functionName: string;
  readonly url: string;
  readonly lineNumber: number;
}

interface ProfileNode {
  readonly id: number;
  readonly callFrame: CallFrame;
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface SelfTime {
  readonly name: string;
  readonly ms: number;
  readonly share: number;
}

export interface ProfileSummary {
  readonly windowMs: number;
  readonly sampledMs: number;
  readonly functions: readonly SelfTime[];
  readonly packages: readonly SelfTime[];
  /** Time with an Easel function (dist/) anywhere on the stack: its synchronous share. */
  readonly easelInclusive: readonly SelfTime[];
}

/** Where code lives: a package, a Node internal, Easel's own `dist/`, or V8's pseudo-frames. */
function packageOf(frame: CallFrame, wasmNames: ReadonlyMap<string, string>): string {
  const { url, functionName } = frame;
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('wasm://')) return wasmNames.get(url) ?? 'wasm';
  if (url.startsWith('node:')) {
    const parts = url.slice(5).split('/');
    return `node:${parts.slice(0, parts[0] !== 'internal' ? 1 : parts[1] === 'deps' ? 3 : 2).join('/')}`;
  }
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) {
    const parts = url.slice(modules + 14).split('/');
    if (parts[0] === '.cache') return `bench ${parts.at(-1) ?? ''}`;
    return parts[0].startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0];
  }
  const dist = url.indexOf('/dist/');
  if (dist !== -1) return `easel ${url.slice(dist + 1)}`;
  return url.split('/').slice(-2).join('/');
}

/**
 * Wasm modules have no names in a profile. Two are expected: PGlite's Postgres (thousands of
 * functions) and undici's llhttp parser (a few dozen); the function count tells them apart.
 */
function nameWasm(nodes: readonly ProfileNode[]): Map<string, string> {
  const functions = new Map<string, Set<string>>();
  for (const { callFrame } of nodes) {
    if (!callFrame.url.startsWith('wasm://')) continue;
    const seen = functions.get(callFrame.url) ?? new Set<string>();
    seen.add(callFrame.functionName);
    functions.set(callFrame.url, seen);
  }
  return new Map(
    [...functions].map(([url, seen]) => [
      url,
      seen.size > 200 ? 'wasm: PGlite (Postgres)' : 'wasm: llhttp (undici)',
    ]),
  );
}

function labelOf(frame: CallFrame, wasmNames: ReadonlyMap<string, string>): string {
  const where = frame.url === '' ? '' : ` ${packageOf(frame, wasmNames)}:${frame.lineNumber + 1}`;
  return `${frame.functionName || '(anonymous)'}${where}`;
}

function top(totals: Map<string, number>, all: number, count: number): SelfTime[] {
  return [...totals]
    .sort((a, b) => b[1] - a[1])
    .slice(0, count)
    .map(([name, us]) => ({ name, ms: us / 1000, share: all === 0 ? 0 : us / all }));
}

/**
 * Self time of every sample taken between `fromUs` and `toUs` (the profile's clock is the
 * monotonic one `nowUs()` reads, so the load window can be cut out of a whole-process profile).
 */
export function summarise(path: string, fromUs: number, toUs: number, count = 25): ProfileSummary {
  const profile = JSON.parse(readFileSync(path, 'utf8')) as CpuProfile;
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const wasmNames = nameWasm(profile.nodes);
  const parents = new Map<number, number>();
  for (const node of profile.nodes)
    for (const child of node.children ?? []) parents.set(child, node.id);
  const inclusive = new Map<string, number>();
  const byFunction = new Map<string, number>();
  const byPackage = new Map<string, number>();
  let at = profile.startTime;
  let sampled = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    at += profile.timeDeltas[i];
    // A sample stands for the time until the next one.
    const us = profile.timeDeltas[i + 1] ?? 0;
    const frame = frames.get(profile.samples[i]);
    if (at < fromUs || at > toUs || !frame || frame.functionName === '(idle)') continue;
    sampled += us;
    const label = labelOf(frame, wasmNames);
    byFunction.set(label, (byFunction.get(label) ?? 0) + us);
    const pkg = packageOf(frame, wasmNames);
    byPackage.set(pkg, (byPackage.get(pkg) ?? 0) + us);
    const onStack = new Set<string>();
    for (let id: number | undefined = profile.samples[i]; id !== undefined; id = parents.get(id)) {
      const caller = frames.get(id);
      if (caller && packageOf(caller, wasmNames).startsWith('easel ')) {
        onStack.add(labelOf(caller, wasmNames));
      }
    }
    for (const name of onStack) inclusive.set(name, (inclusive.get(name) ?? 0) + us);
  }
  return {
    windowMs: (toUs - fromUs) / 1000,
    sampledMs: sampled / 1000,
    functions: top(byFunction, sampled, count),
    packages: top(byPackage, sampled, count),
    easelInclusive: top(inclusive, sampled, count),
  };
}
