/** What the operator benchmark reads: Prometheus text, /proc, and percentiles. */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** One sample of a Prometheus text exposition: `name` → label set → value. */
export type Samples = Map<string, { labels: Record<string, string>; value: number }[]>;

/** Parses the Prometheus text format (enough of it for prom-client's and the API server's output). */
export function parsePrometheus(text: string): Samples {
  const samples: Samples = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const brace = line.indexOf('{');
    const space = line.lastIndexOf(' ');
    const name = brace >= 0 && brace < space ? line.slice(0, brace) : line.slice(0, line.indexOf(' '));
    const labels: Record<string, string> = {};
    if (brace >= 0 && brace < space) {
      const body = line.slice(brace + 1, line.lastIndexOf('}'));
      for (const match of body.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
        labels[match[1] as string] = match[2] as string;
      }
    }
    const value = Number(line.slice(space + 1));
    let list = samples.get(name);
    if (!list) {
      list = [];
      samples.set(name, list);
    }
    list.push({ labels, value });
  }
  return samples;
}

/** The sum of a metric's samples whose labels match `where` (every key given must be equal). */
export function total(samples: Samples, name: string, where: Record<string, string> = {}): number {
  let sum = 0;
  for (const s of samples.get(name) ?? []) {
    if (Object.entries(where).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** Sums of a metric grouped by the labels `by` (joined with '/'). */
export function grouped(samples: Samples, name: string, by: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of samples.get(name) ?? []) {
    const key = by.map((l) => s.labels[l] ?? '').join(' ');
    out.set(key, (out.get(key) ?? 0) + s.value);
  }
  return out;
}

export async function scrape(url: string): Promise<{ samples: Samples; ms: number; bytes: number }> {
  const started = performance.now();
  const text = await (await fetch(`${url}/metrics`)).text();
  return { samples: parsePrometheus(text), ms: performance.now() - started, bytes: text.length };
}

const clockTicks = (() => {
  try {
    return Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  } catch {
    return 100;
  }
})();

/** CPU time (user + system) a process has used, in seconds; undefined once it is gone. */
export function cpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name, which is in parentheses and may contain spaces.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
    return (Number(fields[11]) + Number(fields[12])) / clockTicks;
  } catch {
    return undefined;
  }
}

/** Resident memory now and at its peak (VmRSS, VmHWM), bytes. */
export function memory(pid: number): { rss: number; peak: number } | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? 0) * 1024;
    return { rss: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return undefined;
  }
}

/** The q-quantile (0..1) of `values`, nearest rank. */
export function quantile(values: readonly number[], q: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] as number;
}

export function machine(): { nproc: number; cpu: string; node: string; memory: string } {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  const cpu = /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? 'unknown CPU';
  const nproc = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  const memKb = Number(/^MemTotal:\s+(\d+)/m.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  return { nproc, cpu, node: process.version, memory: `${Math.round(memKb / 1024 / 1024)} GiB` };
}

/** The 1-minute load average: other work on the machine, for the record. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}
