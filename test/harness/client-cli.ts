import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const CLI = join(ROOT, 'client/dist/client/src/cli.js');

/** Builds @easel/client as `npm run build -w client` ships it (the CLI runs from its dist). */
export async function buildClient(): Promise<void> {
  await promisify(execFile)('npm', ['run', '-s', 'build', '-w', 'client'], { cwd: ROOT });
}

/** `easel chat …args` as `token`'s user. */
export function spawnChat(token: string, args: string[]): ChildProcessWithoutNullStreams {
  return spawn(process.execPath, [CLI, 'chat', ...args], {
    env: { ...process.env, EASEL_TOKEN: token, NODE_OPTIONS: '' },
  });
}

/** {@link spawnChat} run to its end: its exit code and what it wrote. */
export function runChat(
  token: string,
  args: string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawnChat(token, args);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}
