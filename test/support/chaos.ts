/**
 * What the chaos runs (test/integration/worker/at-least-once.test.ts, kafka-at-least-once.test.ts,
 * chord-chaos.test.ts) share: their seeded randomness, the workers' environment, a kill, and the end of
 * a run — stop the surviving workers with SIGTERM (each must exit 0), then, for the at-least-once runs,
 * read the fixture's per-task counters (`<prefix>:starts` and `<prefix>:runs`,
 * test/integration/worker/fixtures/at-least-once.tasks.ts) and check every task ran.
 */
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import type { TestContext } from 'node:test';
import type { Redis } from 'ioredis';
import type { ResultRecord, Taskfleet } from 'taskfleet';
import { appKeys } from '../../worker/src/brokers/redis/keys.ts';
import type { WorkerProcess } from './cli.ts';
import { seededRandom } from './random.ts';

export interface ChaosRandom {
  seed: number;
  /** From 0 to 1, as Math.random. */
  random: () => number;
  /** A whole number from `from` to `to` (excluded). */
  between: (range: readonly [from: number, to: number]) => number;
}

/**
 * The run's PRNG, from TASKFLEET_CHAOS_SEED or a random seed; the seed is printed, so that
 * TASKFLEET_CHAOS_SEED=<seed> replays the run's schedule.
 */
export function randomness(t: TestContext): ChaosRandom {
  const seed = Number(process.env.TASKFLEET_CHAOS_SEED ?? randomInt(2 ** 31));
  t.diagnostic(`chaos seed ${seed} (replay with TASKFLEET_CHAOS_SEED=${seed})`);
  const random = seededRandom(seed);
  return { seed, random, between: ([from, to]) => from + Math.floor(random() * (to - from)) };
}

/** Calls each chaos worker runs at once; it holds as many again prefetched, so a kill takes up to 16 down. */
export const CONCURRENCY = 8;

/** A chaos worker's arguments: its fixture, CONCURRENCY, its visibility timeout, and where it serves /metrics (0: any free port). */
export function workerArgs(fixture: string, visibilityTimeoutMs: number, metricsPort = 0): string[] {
  return [
    ...['--app', fixture, '--concurrency', String(CONCURRENCY), '--metrics-port', String(metricsPort)],
    ...['--visibility-timeout', String(visibilityTimeoutMs)],
  ];
}

/** What a chaos worker is given: the app's broker, result backend, prefix and queue. */
export function workerEnv(app: Taskfleet, broker: string, backend: string): Record<string, string> {
  return {
    TASKFLEET_BROKER: broker,
    TASKFLEET_BACKEND: backend,
    TASKFLEET_PREFIX: app.prefix,
    TASKFLEET_QUEUE: app.defaultQueue,
  };
}

/** Enqueues `count` calls of the fixture's record_run, in batches of 1000; their ids, in order. */
export async function sendRecordRuns(app: Taskfleet, count: number): Promise<string[]> {
  // The handler runs in the worker processes (fixtures/at-least-once.tasks.ts); here it is only a name.
  const recordRun = app.task('record_run', (): string => {
    throw new Error('record_run runs on the fixture workers, not in the test process');
  });
  const ids: string[] = [];
  for (let sent = 0; sent < count; sent += 1000) {
    const batch = await recordRun.applyBulk(Array.from({ length: Math.min(1000, count - sent) }, () => [] as []));
    ids.push(...batch.map((r) => r.id));
  }
  return ids;
}

/** Of the record_run `candidates`, the ids whose result is not yet SUCCESS; a SUCCESS must carry the handler's return value. */
export async function notYetSucceeded(redis: Redis, prefix: string, candidates: string[]): Promise<string[]> {
  const keys = appKeys(prefix);
  const left: string[] = [];
  for (let i = 0; i < candidates.length; i += 1000) {
    const batch = candidates.slice(i, i + 1000);
    const texts = await redis.mget(batch.map((id) => keys.result(id)));
    texts.forEach((text, j) => {
      const id = batch[j] as string;
      const record = text === null ? undefined : (JSON.parse(text) as ResultRecord);
      if (record?.state === 'SUCCESS') assert.equal(record.result, id, `the result of ${id}`);
      else left.push(id);
    });
  }
  return left;
}

/** SIGKILLs a worker and waits for it to be gone; one that had ended by itself fails the test. */
export async function kill(victim: WorkerProcess): Promise<void> {
  victim.signal('SIGKILL');
  const { signal } = await victim.exit();
  assert.equal(signal, 'SIGKILL', `worker ${victim.pid} ended by itself:\n${victim.output()}`);
}

/** Stops the fleet with SIGTERM: each worker must exit 0. */
export async function stopFleet(fleet: readonly WorkerProcess[]): Promise<void> {
  // A worker still loading its modules has no SIGTERM handler yet (and holds nothing): stop started ones.
  await Promise.all(fleet.map((w) => w.log('worker started')));
  for (const worker of fleet) worker.signal('SIGTERM');
  const exits = await Promise.all(fleet.map((w) => w.exit()));
  exits.forEach((exit, i) => {
    assert.deepEqual(exit, { code: 0, signal: null }, `SIGTERM ends a worker with 0:\n${fleet[i]?.output()}`);
  });
}

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
  await stopFleet(fleet);
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
