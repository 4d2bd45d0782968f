import type { Redis } from 'ioredis';

/** What Redis has done so far: calls per command and its own CPU time. */
export interface ServerWork {
  calls: Map<string, number>;
  cpuSeconds: number;
}

/** Redis's counters, read with INFO. Commands a Lua script runs count too, besides the EVALSHA itself. */
export async function serverWork(redis: Redis): Promise<ServerWork> {
  const [stats, cpu] = await Promise.all([redis.info('commandstats'), redis.info('cpu')]);
  const calls = new Map<string, number>();
  for (const [, name, n] of stats.matchAll(/^cmdstat_([^:]+):calls=(\d+)/gm)) calls.set(name as string, Number(n));
  const field = (name: string) => Number(new RegExp(`^${name}:([\\d.]+)`, 'm').exec(cpu)?.[1] ?? 0);
  return { calls, cpuSeconds: field('used_cpu_user') + field('used_cpu_sys') };
}

/** The work done between two readings, per task. */
export interface WorkPerTask {
  /** Every command Redis ran, scripts' inner commands included. */
  commands: number;
  /** Script calls (EVALSHA, EVAL, FCALL): each one round of Lua. */
  scripts: number;
  /** Redis's CPU time, µs. */
  cpuMicros: number;
  /** The heaviest commands, per task, most first. */
  top: [string, number][];
}

const SCRIPT_CALLS = new Set(['evalsha', 'eval', 'evalsha_ro', 'eval_ro', 'fcall', 'fcall_ro']);
const OBSERVER_CALLS = new Set(['info']);

export function workPerTask(before: ServerWork, after: ServerWork, tasks: number): WorkPerTask {
  const delta: [string, number][] = [];
  for (const [name, n] of after.calls) {
    const d = n - (before.calls.get(name) ?? 0);
    if (d > 0 && !OBSERVER_CALLS.has(name)) delta.push([name, d / tasks]);
  }
  delta.sort((a, b) => b[1] - a[1]);
  return {
    commands: delta.reduce((sum, [, n]) => sum + n, 0),
    scripts: delta.filter(([name]) => SCRIPT_CALLS.has(name)).reduce((sum, [, n]) => sum + n, 0),
    cpuMicros: ((after.cpuSeconds - before.cpuSeconds) * 1e6) / tasks,
    top: delta.slice(0, 6),
  };
}
