/**
 * `npm run bench -- --ceiling`: one Easel system under a closed loop of C clients, each running
 * turns back to back for a fixed time, at increasing C. What it reports per step — turns per
 * second, added latency, and the CPU of Easel and of PostgreSQL per turn — is what the
 * ceilings in docs/architecture.md ("Durable turns") are derived from.
 */
import type { Agent } from 'node:http';
import type { Child } from './children.js';
import { Recorder, runStream, type StreamSpec } from './client.js';
import { nowUs } from './ipc.js';
import { type PostgresProbe, type StatementCounts, statementsPer } from './postgres.js';
import type { Progress } from './progress.js';

/** The part of a running system the loop needs (see `Sut` in run.ts). */
export interface LoadTarget {
  readonly child: Child;
  readonly database: { readonly name: string } | null;
  /** One per client; each call builds a new turn of the same session. */
  targets(count: number): Promise<Array<(image: boolean) => StreamSpec>>;
}

export interface CeilingStep {
  readonly clients: number;
  readonly seconds: number;
  readonly turns: number;
  readonly failed: number;
  readonly errors: string[];
  readonly turnsPerSecond: number;
  readonly latencyMs: { readonly p50: number; readonly p99: number };
  readonly firstTokenMs: { readonly p50: number; readonly p99: number };
  /** CPU over the step as a share of one core (1 = one core busy all the time). */
  readonly easelCores: number;
  readonly easelMainThreadCores: number;
  readonly postgresCores: number;
  readonly easelCpuMsPerTurn: number;
  readonly postgresCpuMsPerTurn: number;
  readonly statementsPerSecond: number;
  readonly statementsPerTurn: number;
}

function quantile(values: readonly number[], q: number): number {
  const sorted = Float64Array.from(values).sort();
  return sorted.length === 0
    ? NaN
    : sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] / 1000;
}

/**
 * `clients` loops, each with its own session, start turns one after another until `seconds`
 * have passed; the step ends when the last turn does. Every turn of a session adds to its
 * context, which the context read pays for (a few kB after 20 turns).
 */
export async function ceilingStep(
  sut: LoadTarget,
  agent: Agent,
  chunks: number,
  clients: number,
  seconds: number,
  postgres: PostgresProbe | null,
  progress: Progress,
): Promise<CeilingStep> {
  const targets = await sut.targets(clients);
  const recorder = new Recorder((n) => progress.advance(n));
  const errors: string[] = [];
  let turns = 0;
  let failed = 0;
  const database = sut.database?.name ?? null;
  const statementsBefore: StatementCounts =
    postgres && database ? await postgres.statementCounts(database) : new Map();
  const pgStart = postgres?.cpuMs() ?? NaN;
  const start = await sut.child.stats(false);
  const mainStart = sut.child.mainThreadCpuMs();
  const from = nowUs();
  const deadline = Date.now() + seconds * 1000;
  await Promise.all(
    targets.map(async (target) => {
      while (Date.now() < deadline) {
        const outcome = await runStream(agent, 'easel', target(false), chunks, recorder);
        turns += 1;
        if (!outcome.ok) {
          failed += 1;
          if (errors.length < 5 && outcome.error) errors.push(outcome.error);
        }
      }
    }),
  );
  const wallMs = (nowUs() - from) / 1000;
  const end = await sut.child.stats(false);
  const easelMs = (end.cpuUs - start.cpuUs) / 1000;
  const mainMs = sut.child.mainThreadCpuMs() - mainStart;
  const pgMs = (postgres?.cpuMs() ?? NaN) - pgStart;
  const statements =
    postgres && database
      ? statementsPer(statementsBefore, await postgres.statementCounts(database), 1).reduce(
          (sum, row) => sum + row.perTurn,
          0,
        )
      : NaN;
  return {
    clients,
    seconds: wallMs / 1000,
    turns,
    failed,
    errors,
    turnsPerSecond: turns / (wallMs / 1000),
    latencyMs: {
      p50: quantile(recorder.latenciesUs, 0.5),
      p99: quantile(recorder.latenciesUs, 0.99),
    },
    firstTokenMs: {
      p50: quantile(recorder.firstTokenUs, 0.5),
      p99: quantile(recorder.firstTokenUs, 0.99),
    },
    easelCores: easelMs / wallMs,
    easelMainThreadCores: mainMs / wallMs,
    postgresCores: pgMs / wallMs,
    easelCpuMsPerTurn: easelMs / turns,
    postgresCpuMsPerTurn: pgMs / turns,
    statementsPerSecond: statements / (wallMs / 1000),
    statementsPerTurn: statements / turns,
  };
}

export function ceilingTable(system: string, steps: readonly CeilingStep[]): string {
  const f = (value: number, digits = 1): string =>
    Number.isFinite(value) ? value.toFixed(digits) : 'n/a';
  const lines = [
    `Ceiling, ${system} (closed loop, each client one turn after another):\n`,
    '| clients | turns/s | added latency p50 / p99, ms | TTFT p99, ms | Easel cores (main thread) | PostgreSQL cores | Easel CPU ms/turn | PostgreSQL CPU ms/turn | statements/s | statements/turn | failed |',
    '|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|',
  ];
  for (const s of steps) {
    lines.push(
      `| ${s.clients} | ${f(s.turnsPerSecond)} | ${f(s.latencyMs.p50)} / ${f(s.latencyMs.p99)} | ` +
        `${f(s.firstTokenMs.p99)} | ${f(s.easelCores, 2)} (${f(s.easelMainThreadCores, 2)}) | ` +
        `${f(s.postgresCores, 2)} | ${f(s.easelCpuMsPerTurn)} | ${f(s.postgresCpuMsPerTurn, 2)} | ` +
        `${f(s.statementsPerSecond, 0)} | ${f(s.statementsPerTurn)} | ${s.failed} |`,
    );
  }
  return lines.join('\n');
}
