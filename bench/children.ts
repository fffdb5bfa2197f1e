/** The processes a bench run starts: upstream, floor, peer and Easel, each with IPC. */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { type Command, isReport, type Report, type Stats } from './ipc.js';

/** `getconf CLK_TCK`: 100 on every Linux that matters here. */
const CLOCK_TICKS = 100;

type ReportOf<T extends Report['type']> = Extract<Report, { type: T }>;

export interface ProcMemory {
  readonly rssKiB: number;
  /** Peak RSS since the process started. */
  readonly hwmKiB: number;
}

export class Child {
  private readonly proc: ChildProcess;
  private output = '';
  private nextId = 0;
  private readonly listeners = new Set<(report: Report) => void>();
  readonly exited: Promise<void>;

  constructor(
    readonly name: string,
    script: string,
    options: { env: NodeJS.ProcessEnv; execArgv: string[]; cwd: string },
  ) {
    this.proc = fork(script, [], { ...options, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    // Only the tail is kept, to explain a child that died.
    const keep = (part: Buffer): void => {
      this.output = (this.output + part.toString('utf8')).slice(-4000);
    };
    this.proc.stdout?.on('data', keep);
    this.proc.stderr?.on('data', keep);
    this.proc.on('message', (message: unknown) => {
      if (isReport(message)) for (const listener of this.listeners) listener(message);
    });
    // A send to a child that already died: `waitFor` reports the exit, with the output.
    this.proc.on('error', (error) => keep(Buffer.from(`\n[bench] ${error.message}\n`)));
    this.exited = new Promise((resolve) => this.proc.once('exit', () => resolve()));
  }

  get pid(): number {
    return this.proc.pid ?? 0;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  get tail(): string {
    return this.output;
  }

  /** Every report from now on, until the returned function is called. */
  onReport(listener: (report: Report) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Forgets the peak RSS so far (Linux ≥ 4.0), so VmHWM is the peak of what follows. */
  resetPeak(): void {
    try {
      writeFileSync(`/proc/${this.pid}/clear_refs`, '5');
    } catch {
      // Not allowed here: VmHWM then also covers the boot.
    }
  }

  send(command: Command): void {
    this.proc.send(command);
  }

  /** The next report of `type` (and `match`), or a rejection on timeout or exit. */
  waitFor<T extends Report['type']>(
    type: T,
    timeoutMs: number,
    match: (report: ReportOf<T>) => boolean = () => true,
  ): Promise<ReportOf<T>> {
    return new Promise((resolve, reject) => {
      const done = (): void => {
        clearTimeout(timer);
        this.listeners.delete(listener);
      };
      const listener = (report: Report): void => {
        if (report.type !== type || !match(report as ReportOf<T>)) return;
        done();
        resolve(report as ReportOf<T>);
      };
      const timer = setTimeout(() => {
        done();
        reject(new Error(`${this.name}: no "${type}" within ${timeoutMs} ms\n${this.output}`));
      }, timeoutMs);
      this.listeners.add(listener);
      void this.exited.then(() => {
        done();
        reject(new Error(`${this.name} exited while waiting for "${type}"\n${this.output}`));
      });
    });
  }

  async stats(gc: boolean): Promise<Stats> {
    const id = ++this.nextId;
    const reply = this.waitFor('stats', 30_000, (report) => report.id === id);
    this.send({ cmd: 'stats', id, gc });
    return (await reply).stats;
  }

  /**
   * CPU time of the process's main thread alone (the one that relays), ms: a database in a
   * worker thread moves work off it that the process-wide figure still counts. Linux only,
   * 10 ms resolution (clock ticks).
   */
  mainThreadCpuMs(): number {
    const stat = readFileSync(`/proc/${this.pid}/task/${this.pid}/stat`, 'utf8');
    // Fields after the parenthesised command name: state is field 3, utime 14, stime 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) * (1000 / CLOCK_TICKS);
  }

  async heapSnapshot(path: string): Promise<void> {
    const id = ++this.nextId;
    const reply = this.waitFor('snapshot', 120_000, (report) => report.id === id);
    this.send({ cmd: 'heap-snapshot', id, path });
    await reply;
  }

  memory(): ProcMemory {
    const status = readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kib = (key: string): number =>
      Number(new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(status)?.[1]);
    return { rssKiB: kib('VmRSS'), hwmKiB: kib('VmHWM') };
  }

  /** `exit` over IPC (a clean exit, so profiles get written), then SIGKILL if it lingers. */
  async stop(graceMs = 8000): Promise<void> {
    if (!this.alive) return;
    this.send({ cmd: 'exit' });
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** Polls `GET path` until it answers 200. */
export async function waitHttpReady(
  child: Child,
  port: number,
  path: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!child.alive) throw new Error(`${child.name} exited during boot\n${child.tail}`);
    const status = await new Promise<number>((resolve) => {
      get({ host: '127.0.0.1', port, path }, (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      }).on('error', () => resolve(0));
    });
    if (status === 200) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${child.name} not ready within ${timeoutMs} ms\n${child.tail}`);
}
