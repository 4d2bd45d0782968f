/**
 * The at-least-once proof on Kafka: 20,000 tasks on a 12-partition topic are consumed by a fleet of
 * real `taskfleet worker` processes in one consumer group while a chaos loop SIGKILLs them
 * - mid-batch: a worker is killed while it runs calls (its /metrics shows calls in flight), and
 * - during a rebalance: right after that kill and its replacement's start, once the group is seen
 *   rebalancing, another worker is killed,
 * and the Kafka broker itself is stopped and started again once, mid-run, on the same data. Every
 * task must end in SUCCESS and every handler must have run to its end at least once; running twice
 * is allowed (that is what at-least-once means) and reported.
 *
 * The broker is a private one (the run's shared Kafka cannot be restarted under other tests). The
 * kill schedule comes from a seeded PRNG: the seed is printed, and TASKFLEET_CHAOS_SEED=<seed>
 * replays the same schedule (the moments a kill lands within a task or a rebalance still vary).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { KafkaBroker } from '../../../worker/src/brokers/kafka/broker.ts';
import { startKafka } from '../../stack/kafka.ts';
import { freePort } from '../../stack/process.ts';
import { buildComponents, stackDirPrefix } from '../../stack/stack.ts';
import { testApp } from '../../support/app.ts';
import {
  CONCURRENCY,
  kill,
  notYetSucceeded,
  randomness,
  sendRecordRuns,
  stopAndCount,
  workerArgs,
  workerEnv,
} from '../../support/chaos.ts';
import { spawnWorker, type WorkerProcess } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';
import { useRedis } from '../../support/stack.ts';

const TASKS = 20_000;
const PARTITIONS = 12;
const WORKERS = 4;
/**
 * The consumer group's session timeout: a SIGKILLed worker's partitions (and the calls it held) go
 * to the others this long after its last heartbeat.
 */
const VISIBILITY_TIMEOUT_MS = 2000;
/**
 * From–to, ms, between rounds of chaos; a round kills one worker, and half the time (every time until
 * one has landed) a second one while the group rebalances. Kafka recovers slower than Redis: a dead
 * member's partitions move only once its session times out (2 s), each death and each start makes the
 * group rebalance, and a rebalancing group fetches nothing new. Rounds this often (each also waits for
 * its moments, so they come every 2–5 s) keep the group rebalancing much of the run yet leave it stable
 * stretches to work in: a run takes under a minute on two cores, broker restart included.
 */
const KILL_EVERY_MS = [500, 2000] as const;
/**
 * Chance that a round's kill is followed by a second one while the group rebalances. Until one such
 * kill has landed, every round makes it: a fast run has only a few rounds, and the test asserts one.
 */
const REBALANCE_KILL_CHANCE = 0.5;
/** How long a kill waits for its victim to have calls in flight (an idle one is killed all the same). */
const BUSY_WAIT_MS = 2000;
/** How long the second kill of a round waits for the group to rebalance (joins take a session timeout or so). */
const REBALANCE_WAIT_MS = 4000;
/** Bounds a run that stops making progress; a passing run is far quicker (see the reported duration). */
const CHAOS_DEADLINE_MS = 180_000;
const fixture = fileURLToPath(new URL('./fixtures/at-least-once.tasks.ts', import.meta.url));

test(`at-least-once on Kafka: ${TASKS} tasks all succeed through SIGKILLs mid-batch and mid-rebalance and a broker restart`, {
  timeout: 240_000,
}, async (t) => {
  const { seed, random, between } = randomness(t);

  // A Kafka of this test's own, to restart. Its directory is named like a stack's, with this process
  // as owner, so that the stack's sweep removes it if this process dies before its cleanup.
  await buildComponents(['kafka']);
  const dir = await mkdtemp(join(tmpdir(), stackDirPrefix));
  await writeFile(join(dir, 'owner.pid'), String(process.pid));
  const kafka = await startKafka(dir);
  after(async () => {
    await Promise.all(kafka.services.map((s) => s.stop()));
    await rm(dir, { recursive: true, force: true });
  });
  const began = Date.now();

  const { url: redisUrl } = await useRedis();
  const brokerUrl = `kafka://${kafka.endpoint.brokers.join(',')}?partitions=${PARTITIONS}`;
  const app = await testApp({ broker: brokerUrl, backend: redisUrl });
  const broker: KafkaBroker = app.broker instanceof KafkaBroker ? app.broker : assert.fail('the app is on Kafka');
  const topics = await broker.topics(app.defaultQueue);
  const redis = app.control.redis;
  const ids = await sendRecordRuns(app, TASKS);
  const partitions = await (await broker.admin()).fetchTopicOffsets(topics.main);
  assert.equal(partitions.length, PARTITIONS, `the queue's topic ${topics.main} has ${PARTITIONS} partitions`);

  const env = workerEnv(app, brokerUrl, redisUrl);
  // Each worker serves /metrics, where the test reads whether it has calls in flight.
  const spawn = async () => spawnWorker(workerArgs(fixture, VISIBILITY_TIMEOUT_MS, await freePort()), env);
  const fleet: WorkerProcess[] = await Promise.all(Array.from({ length: WORKERS }, spawn));
  const crashed = () => fleet.find((w) => !w.running);

  /** The calls the worker is running now; undefined while it has not started (it holds nothing then). */
  const inFlight = async (worker: WorkerProcess): Promise<number | undefined> => {
    const address = worker.logs.find((r) => r.msg === 'worker started')?.metrics;
    if (typeof address !== 'string') return undefined;
    const text = await fetch(`${address}/metrics`).then(
      (r) => r.text(),
      () => '',
    );
    const line = text.split('\n').find((l) => l.startsWith('taskfleet_tasks_in_flight{'));
    return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  /** Whether the queue's consumer group is between generations: members joining, or awaiting their assignment. */
  const rebalancing = async (): Promise<boolean> => {
    const { groups } = await (await broker.admin()).describeGroups([topics.group]);
    return ['PreparingRebalance', 'CompletingRebalance'].includes(groups[0]?.state ?? '');
  };
  /** Polls `moment` until it holds or `ms` pass; whether it held. */
  const awaitMoment = async (moment: () => Promise<boolean>, ms: number): Promise<boolean> => {
    const deadline = Date.now() + ms;
    for (;;) {
      if (await moment().catch(() => false)) return true;
      if (Date.now() > deadline) return false;
      await sleep(20);
    }
  };
  const replace = async (slot: number): Promise<void> => {
    await kill(fleet[slot] as WorkerProcess);
    fleet[slot] = await spawn();
  };

  /**
   * Kills and the broker restart take turns. A worker started while the broker is down may exit (it
   * loses the broker between its first contact and joining the group), which is not what the
   * restart is about; and the round's checks read the group's offsets from the broker.
   */
  let turn = Promise.resolve();
  const exclusively = <T>(step: () => Promise<T>): Promise<T> => {
    const result = turn.then(step);
    turn = result.then(
      () => {},
      () => {},
    );
    return result;
  };

  // Once, at the first turn after a quarter of the tasks have run (a round holds its turn a few
  // seconds at most, so this lands mid-run however fast the run): the broker goes down (a controlled
  // shutdown) and comes back on the same ports and data, under workers holding calls. They ride it
  // out on their own.
  let ended = false;
  after(() => {
    ended = true;
  });
  const brokerRestart = (async () => {
    while (!ended && (await redis.hlen(`${app.prefix}:runs`)) < TASKS / 4) await sleep(50);
    if (ended) return undefined;
    return exclusively(async () => {
      await Promise.all(fleet.map((w) => w.log('worker started')));
      const ran = await redis.hlen(`${app.prefix}:runs`);
      const down = Date.now();
      await kafka.restart();
      const downMs = Date.now() - down;
      t.diagnostic(`broker restarted after ${ran} of ${TASKS} tasks ran: ${downMs} ms until it answered again`);
      return { ran, downMs };
    });
  })();
  brokerRestart.catch(() => {}); // awaited after the chaos; a failure before that is the test's own

  let pending = ids;
  let kills = 0;
  let killsMidBatch = 0;
  let killsDuringRebalance = 0;
  for (;;) {
    // The chaos schedule itself, not a wait for an effect: a round every KILL_EVERY_MS.
    await sleep(between(KILL_EVERY_MS));
    const done = await exclusively(async () => {
      const dead = crashed();
      assert.ok(!dead, `worker ${dead?.pid} exited without being killed:\n${dead?.output()}`);
      pending = await notYetSucceeded(redis, app.prefix, pending);
      if (pending.length === 0) return true;
      // A record is committed only after its result is stored: once the group has committed every
      // record, a task that has not succeeded by then never will. Say so now rather than at the deadline.
      const backlog = await broker.backlog(app.defaultQueue);
      if (backlog.ready + backlog.inFlight + backlog.delayed === 0) {
        const lost = await notYetSucceeded(redis, app.prefix, pending);
        // A record whose workers kept dying on it is dead-lettered as poison: committed, recorded FAILURE.
        const letters = await broker.deadLetters(app.defaultQueue, { limit: TASKS });
        const poison = new Set<string | undefined>(letters.map((l) => l.taskId));
        const deadLettered = lost.filter((id) => poison.has(id)).length;
        assert.deepEqual(
          lost.slice(0, 5),
          [],
          `${lost.length} tasks were committed and never succeeded: ${deadLettered} dead-lettered, ${lost.length - deadLettered} lost`,
        );
      }
      if (Date.now() - began > CHAOS_DEADLINE_MS) {
        const letters = await broker.deadLetters(app.defaultQueue, { limit: 5 });
        assert.fail(
          `${pending.length} tasks still not SUCCESS after ${kills} kills; backlog ${JSON.stringify(backlog)}; ` +
            `dead letters ${JSON.stringify(letters)}; e.g. ${pending.slice(0, 3).join(', ')}`,
        );
      }

      // Mid-batch: the victim, chosen at random, is killed as soon as it is seen running half its
      // concurrency or more. A handler takes 0–5 ms and a Kafka worker often waits on a fetch between
      // batches, so one seen running a single call may well be idle by the time the kill lands; with
      // several running, one is still in its handler. Not the busiest worker: near the end only the
      // owner of the last partitions with work is busy, and killing it every round would keep any owner
      // from ever getting through them. Until one kill has landed mid-batch (a fast run has only a few
      // rounds), the first worker seen so busy is the victim.
      let slot = Math.floor(random() * WORKERS);
      const busy = async () => {
        for (const candidate of killsMidBatch === 0 ? fleet.keys() : [slot]) {
          if (((await inFlight(fleet[candidate] as WorkerProcess)) ?? 0) >= CONCURRENCY / 2) {
            slot = candidate;
            return true;
          }
        }
        return false;
      };
      if (await awaitMoment(busy, BUSY_WAIT_MS)) killsMidBatch++;
      await replace(slot);
      kills++;
      // During a rebalance: the death and the start just now make the group rebalance (the start at
      // once, the death when its session times out); another worker dies in the middle of it.
      // random() is drawn every round, so that a seed replays the same schedule of victims.
      if (random() < REBALANCE_KILL_CHANCE || killsDuringRebalance === 0) {
        const other = (slot + 1 + Math.floor(random() * (WORKERS - 1))) % WORKERS;
        if (await awaitMoment(rebalancing, REBALANCE_WAIT_MS)) killsDuringRebalance++;
        await replace(other);
        kills++;
      }
      return false;
    });
    if (done) break;
  }
  const succeededAt = Date.now();
  const restart = await brokerRestart;

  // Redeliveries of calls that had already succeeded when their worker died run again and are
  // committed: with no more kills, the group must commit every record.
  await eventually('the queue to drain: nothing ready, in flight or delayed', async () => {
    const b = await broker.backlog(app.defaultQueue);
    return b.ready === 0 && b.inFlight === 0 && b.delayed === 0;
  });
  assert.deepEqual(await broker.deadLetters(app.defaultQueue), [], 'no task was dead-lettered');

  const counts = await stopAndCount(fleet, redis, app.prefix, ids);
  const figures = {
    seed,
    tasks: TASKS,
    partitions: PARTITIONS,
    workers: WORKERS,
    kills,
    killsMidBatch,
    killsDuringRebalance,
    brokerRestarts: restart === undefined ? 0 : 1,
    brokerRestartAfterRuns: restart?.ran,
    brokerDownS: restart === undefined ? undefined : restart.downMs / 1000,
    ...counts,
    allSucceededAfterS: (succeededAt - began) / 1000,
    durationS: (Date.now() - began) / 1000,
  };
  t.diagnostic(`chaos figures ${JSON.stringify(figures)}`);
  console.log('kafka at-least-once chaos:', figures);
  assert.ok(restart && restart.ran < TASKS, 'the broker was restarted mid-run');
  assert.ok(killsMidBatch > 0, 'some kills landed while the worker ran calls');
  assert.ok(killsDuringRebalance > 0, 'some kills landed while the group rebalanced');
  assert.ok(counts.interruptedRuns > 0, 'some kills landed while a handler was running');
});
