/** Small timing helpers for the benchmarks: they print figures, never assert. */
import { performance } from 'perf_hooks';

export interface Stats {
  readonly name: string;
  readonly runs: number;
  readonly medianMs: number;
  readonly p10Ms: number;
  readonly p90Ms: number;
  readonly minMs: number;
  readonly maxMs: number;
}

export function measure(name: string, runs: number, warmup: number, fn: () => void): Stats {
  for (let i = 0; i < warmup; i++) fn();
  const samples: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    samples.push(performance.now() - start);
  }
  samples.sort((a, b) => a - b);
  const pick = (q: number) => samples[Math.min(samples.length - 1, Math.floor(q * samples.length))];
  return { name, runs, medianMs: pick(0.5), p10Ms: pick(0.1), p90Ms: pick(0.9), minMs: samples[0], maxMs: samples[samples.length - 1] };
}

export function printTable(rows: Stats[]): void {
  const header = ['benchmark', 'runs', 'median ms', 'p10 ms', 'p90 ms', 'min ms', 'max ms', 'spread (p90-p10)/median'];
  console.log(header.join(' | '));
  console.log(header.map(() => '---').join(' | '));
  for (const r of rows) {
    console.log([r.name, r.runs, r.medianMs.toFixed(1), r.p10Ms.toFixed(1), r.p90Ms.toFixed(1), r.minMs.toFixed(1), r.maxMs.toFixed(1),
      `${(((r.p90Ms - r.p10Ms) / r.medianMs) * 100).toFixed(1)}%`].join(' | '));
  }
}
