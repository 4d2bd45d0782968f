/**
 * The end of an at-least-once chaos run, the same on every broker: stop the surviving workers with
 * SIGTERM (each must exit 0), then read the fixture's per-task counters (`<prefix>:starts` and
 * `<prefix>:runs`, test/integration/worker/fixtures/at-least-once.tasks.ts) and check every task ran.
 */
import assert from 'node:assert/strict';
import type { Redis } from 'ioredis';
import type { WorkerProcess } from './cli.ts';

export interface RunCounts {
  /** Tasks whose handler ran to the end more than once. */
  ranMoreThanOnce: number;
  /** Handler runs beyond one per task. */
  extraRuns: number;
  /** Runs cut short by a kill: proof that kills landed mid-task. */
  interruptedRuns: number;
}

export async function stopAndCount(
  fleet: readonly WorkerProcess[],
  redis: Redis,
  prefix: string,
  ids: readonly string[],
): Promise<RunCounts> {
  // A worker still loading its modules has no SIGTERM handler yet (and holds nothing): stop started ones.
  await Promise.all(fleet.map((w) => w.log('worker started')));
  for (const worker of fleet) worker.signal('SIGTERM');
  const exits = await Promise.all(fleet.map((w) => w.exit()));
  exits.forEach((exit, i) => {
    assert.deepEqual(exit, { code: 0, signal: null }, `SIGTERM ends a worker with 0:\n${fleet[i]?.output()}`);
  });

  const runs = await redis.hgetall(`${prefix}:runs`);
  const starts = await redis.hgetall(`${prefix}:starts`);
  const never = ids.filter((id) => !(Number(runs[id]) >= 1));
  assert.deepEqual(never.slice(0, 10), [], `${never.length} tasks reached SUCCESS without their handler running`);
  assert.equal(Object.keys(runs).length, ids.length, 'only the enqueued tasks ran');
  const totalRuns = Object.values(runs).reduce((n, v) => n + Number(v), 0);
  const totalStarts = Object.values(starts).reduce((n, v) => n + Number(v), 0);
  return {
    ranMoreThanOnce: Object.values(runs).filter((v) => Number(v) > 1).length,
    extraRuns: totalRuns - ids.length,
    interruptedRuns: totalStarts - totalRuns,
  };
}
