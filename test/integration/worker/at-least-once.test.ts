/**
 * The at-least-once proof: tasks are consumed by a fleet of real `taskfleet worker` processes while a
 * chaos loop SIGKILLs one at random moments and starts a new one in its place. Every task must end
 * in SUCCESS and every handler must have run to its end at least once; running twice is allowed
 * (that is what at-least-once means) and reported.
 *
 * The kill schedule comes from a seeded PRNG: the seed is printed, and TASKFLEET_CHAOS_SEED=<seed>
 * replays the same schedule (the moments a kill lands within a task still vary).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { testApp } from '../../support/app.ts';
import * as chaos from '../../support/chaos.ts';
import { spawnWorker, type WorkerProcess } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';
import { useRedis } from '../../support/stack.ts';

const TASKS = 20_000;
const WORKERS = 4;
const VISIBILITY_TIMEOUT_MS = 1000;
/**
 * From–to, ms. Four workers run 20,000 short tasks in seconds, so kills come often enough for dozens
 * of them to land, and seldom enough that the restarted workers (some 300 ms of start-up each) keep
 * up on two cores.
 */
const KILL_EVERY_MS = [100, 600] as const;
/** Bounds a run that stops making progress; a passing run is far quicker (see the reported duration). */
const CHAOS_DEADLINE_MS = 140_000;
const fixture = fileURLToPath(new URL('./fixtures/at-least-once.tasks.ts', import.meta.url));

test(`at-least-once: ${TASKS} tasks all succeed while workers are SIGKILLed at random`, {
  timeout: 170_000,
}, async (t) => {
  const { seed, random, between } = chaos.randomness(t);
  const began = Date.now();

  const { url } = await useRedis();
  const app = await testApp();
  const redis = app.control.redis;
  const ids = await chaos.sendRecordRuns(app, TASKS);

  const env = chaos.workerEnv(app, url, url);
  const args = chaos.workerArgs(fixture, VISIBILITY_TIMEOUT_MS);
  const fleet: WorkerProcess[] = Array.from({ length: WORKERS }, () => spawnWorker(args, env));
  const crashed = () => fleet.find((w) => !w.running);

  let pending = ids;
  let kills = 0;
  for (;;) {
    // The chaos schedule itself, not a wait for an effect: a kill every KILL_EVERY_MS.
    await sleep(between(KILL_EVERY_MS));
    const dead = crashed();
    assert.equal(dead, undefined, `a worker exited without being killed:\n${dead?.output()}`);
    pending = await chaos.notYetSucceeded(redis, app.prefix, pending);
    if (pending.length === 0) break;
    // A message is acknowledged only after its result is stored: once the queue holds nothing, a task
    // that has not succeeded by then never will. Say so now rather than at the deadline.
    const backlog = await app.broker.backlog(app.defaultQueue);
    if (backlog.ready + backlog.inFlight + backlog.delayed === 0) {
      const lost = await chaos.notYetSucceeded(redis, app.prefix, pending);
      assert.deepEqual(lost.slice(0, 5), [], `${lost.length} tasks were lost: gone from the queue, never succeeded`);
    }
    if (Date.now() - began > CHAOS_DEADLINE_MS) {
      const backlog = await app.broker.backlog(app.defaultQueue);
      const letters = await app.broker.deadLetters(app.defaultQueue, { limit: 5 });
      assert.fail(
        `${pending.length} tasks still not SUCCESS after ${kills} kills; backlog ${JSON.stringify(backlog)}; ` +
          `dead letters ${JSON.stringify(letters)}; e.g. ${pending.slice(0, 3).join(', ')}`,
      );
    }
    const slot = Math.floor(random() * WORKERS);
    await chaos.kill(fleet[slot] as WorkerProcess);
    kills++;
    fleet[slot] = spawnWorker(args, env);
  }
  const succeededAt = Date.now();

  // Redeliveries of calls that had already succeeded when their worker died run again and are
  // acknowledged: with no more kills, the queue must drain to nothing.
  await eventually('the queue to drain: nothing ready, in flight or delayed', async () => {
    const b = await app.broker.backlog(app.defaultQueue);
    return b.ready === 0 && b.inFlight === 0 && b.delayed === 0;
  });
  assert.deepEqual(await app.broker.deadLetters(app.defaultQueue), [], 'no task was dead-lettered');

  const counts = await chaos.stopAndCount(fleet, redis, app.prefix, ids);
  const figures = {
    seed,
    tasks: TASKS,
    workers: WORKERS,
    kills,
    ...counts,
    allSucceededAfterS: (succeededAt - began) / 1000,
    durationS: (Date.now() - began) / 1000,
  };
  t.diagnostic(`chaos figures ${JSON.stringify(figures)}`);
  console.log('at-least-once chaos:', figures);
  assert.ok(kills > 0, 'the chaos loop killed workers');
  assert.ok(counts.interruptedRuns > 0, 'some kills landed while a handler was running');
});
