/** A one-line progress bar on stderr (plain lines when stderr is not a terminal). */
export class Progress {
  private done = 0;
  private label = '';
  private readonly started = Date.now();
  private readonly timer: NodeJS.Timeout | null;
  private readonly tty = process.stderr.isTTY === true;

  constructor(private readonly total: number) {
    this.timer = this.tty ? setInterval(() => this.draw(), 100) : null;
    this.timer?.unref();
  }

  advance(units: number): void {
    this.done += units;
  }

  /** A new phase: redrawn at once on a terminal, logged as a line otherwise. */
  phase(label: string): void {
    this.label = label;
    if (this.tty) this.draw();
    else process.stderr.write(`${this.line()}\n`);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    if (this.tty) process.stderr.write(`\r\x1b[2K${this.line()}\n`);
  }

  private line(): string {
    const share = Math.min(1, this.total === 0 ? 1 : this.done / this.total);
    const width = 30;
    const filled = Math.round(share * width);
    const seconds = Math.round((Date.now() - this.started) / 1000);
    const elapsed = `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, '0')}s`;
    const bar = `${'█'.repeat(filled)}${'░'.repeat(width - filled)}`;
    return `bench ${bar} ${String(Math.round(share * 100)).padStart(3)}% ${elapsed}  ${this.label}`;
  }

  private draw(): void {
    process.stderr.write(`\r\x1b[2K${this.line()}`);
  }
}
