/**
 * The chord proof: 200 chords of 50 members (10,000 member calls, one retry per chord) run on a fleet
 * of real `taskfleet worker` processes — three on the members' queue, one on the callbacks' — while a
 * chaos loop SIGKILLs one at random moments and starts another in its place. Members are redelivered
 * after kills, finish at the same instant on different workers, and retry; still every chord's callback
 * must be enqueued exactly once, with the full list of its 50 results in order. A callback whose worker
 * is killed while it runs is delivered again, so callbacks may *execute* more than once: that is
 * at-least-once execution of an exactly-once enqueue, and both numbers are reported.
 *
 * How "enqueued exactly once" is measured: only the chord script adds messages to the callbacks' lane
 * streams (callbacks never retry, and kills are SIGKILLs, which hand nothing back), and Redis counts
 * every XADD in `entries-added`. That count must equal the number of chords, and every chord's callback
 * must have succeeded: so each chord's callback was added once, no more, no fewer.
 *
 * Kills alone rarely deliver a member again *after* its chord completed (a killed worker still holds
 * the chord's unfinished members, redelivered with the duplicates), which is where a chord that counts
 * completions fires twice. So the test also delivers duplicates itself: before the workers start, the
 * member messages are put back in a shuffled order (window by window, so chords complete all along
 * the run) with copies of a fifth of them at random places — before, next to, and long after their
 * originals, which is what a redelivery looks like to the chord.
 *
 * The kill schedule, the shuffle and the copies come from a seeded PRNG: the seed is printed, and TASKFLEET_CHAOS_SEED=<seed>
 * replays it (the moments a kill lands within a task still vary).
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { type AsyncResult, chord, group, type ResultRecord } from 'taskfleet';
import { fieldMap } from '../../../worker/src/brokers/redis/broker.ts';
import { appKeys, chordKeys, queueKeys } from '../../../worker/src/brokers/redis/keys.ts';
import { testApp } from '../../support/app.ts';
import { kill, randomness, stopFleet, workerArgs, workerEnv } from '../../support/chaos.ts';
import { spawnWorker, type WorkerProcess } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';
import { useRedis } from '../../support/stack.ts';

const CHORDS = 200;
const MEMBERS = 50;
const MEMBER_WORKERS = 3;
const CALLBACK_WORKERS = 1;
const VISIBILITY_TIMEOUT_MS = 1000;
/** From–to, ms: often enough that dozens of kills land, seldom enough that restarts keep up on two cores. */
const KILL_EVERY_MS = [100, 600] as const;
/** Member messages shuffled together (20 chords' worth), and the share of them sent twice. */
const SHUFFLE_WINDOW = 1000;
const DUPLICATED = 0.2;
/** Bounds a run that stops making progress; a passing run is far quicker (see the reported duration). */
const CHAOS_DEADLINE_MS = 120_000;
const fixture = fileURLToPath(new URL('./fixtures/chord-chaos.tasks.ts', import.meta.url));

const expected = (c: number) => Array.from({ length: MEMBERS }, (_, i) => `${c}:${i}`);

test(`chords under SIGKILL: ${CHORDS} chords of ${MEMBERS} members, each callback enqueued exactly once with every result in order`, {
  timeout: 170_000,
}, async (t) => {
  const { seed, random, between } = randomness(t);
  const began = Date.now();

  const { url } = await useRedis();
  const app = await testApp();
  const callbackQueue = `${app.defaultQueue}-callbacks`;
  // The handlers run in the worker processes (fixtures/chord-chaos.tasks.ts); here they are names.
  const member = app.task('chord_member', (_ctx, _chord: number, _index: number): string => {
    throw new Error('runs on the fixture workers');
  });
  const callback = app.task(
    'chord_callback',
    { queue: callbackQueue },
    (_ctx, _results: string[], _chord: number): { chord: number; results: string[] } => {
      throw new Error('runs on the fixture workers');
    },
  );
  const chords: AsyncResult<{ chord: number; results: string[] }>[] = [];
  for (let c = 0; c < CHORDS; c += 50) {
    chords.push(
      ...(await Promise.all(
        Array.from({ length: Math.min(50, CHORDS - c) }, (_, k) =>
          chord(group(Array.from({ length: MEMBERS }, (_, i) => member.s(c + k, i))), callback.s(c + k)).delay(),
        ),
      )),
    );
  }
  const redis = app.control.redis;
  const keys = appKeys(app.prefix);

  // Shuffle the members' messages and add the copies (no worker has read the lane yet).
  const lane = queueKeys(app.prefix, app.defaultQueue).lanes[1];
  const published = (await redis.xrange(lane, '-', '+')) as [string, string[]][];
  assert.equal(published.length, CHORDS * MEMBERS, 'every member is waiting on the normal lane');
  await redis.del(lane);
  let duplicates = 0;
  for (let w = 0; w < published.length; w += SHUFFLE_WINDOW) {
    const window = published.slice(w, w + SHUFFLE_WINDOW).map(([, fields]) => fields[1] as string);
    for (const message of window.slice()) {
      if (random() < DUPLICATED) {
        window.push(message);
        duplicates++;
      }
    }
    for (let i = window.length - 1; i > 0; i--) {
      const j = Math.floor(random() * (i + 1));
      [window[i], window[j]] = [window[j] as string, window[i] as string];
    }
    const pipeline = redis.pipeline();
    for (const message of window) pipeline.xadd(lane, '*', 'm', message);
    await pipeline.exec();
  }

  const env = { ...workerEnv(app, url, url), CHORD_CALLBACK_QUEUE: callbackQueue };
  const common = workerArgs(fixture, VISIBILITY_TIMEOUT_MS);
  const roles = [
    ...Array.from({ length: MEMBER_WORKERS }, () => common),
    ...Array.from({ length: CALLBACK_WORKERS }, () => [...common, '--queue', callbackQueue]),
  ];
  const fleet: WorkerProcess[] = roles.map((args) => spawnWorker(args, env));

  /** The chords whose callback has not yet succeeded; a success must carry the full, ordered list. */
  const notYetDone = async (candidates: number[]): Promise<number[]> => {
    const texts = await redis.mget(candidates.map((c) => keys.result((chords[c] as AsyncResult<unknown>).id)));
    return candidates.filter((c, j) => {
      const text = texts[j];
      const record = text ? (JSON.parse(text) as ResultRecord) : undefined;
      if (record?.state !== 'SUCCESS') {
        assert.notEqual(record?.state, 'FAILURE', `chord ${c} failed: ${JSON.stringify(record?.error)}`);
        return true;
      }
      assert.deepEqual(record.result, { chord: c, results: expected(c) }, `what chord ${c}'s callback received`);
      return false;
    });
  };
  const backlogs = async () => {
    const [members, callbacks] = await Promise.all([
      app.broker.backlog(app.defaultQueue),
      app.broker.backlog(callbackQueue),
    ]);
    return { members, callbacks };
  };

  let pending = Array.from({ length: CHORDS }, (_, c) => c);
  let kills = 0;
  for (;;) {
    // The chaos schedule itself, not a wait for an effect: a kill every KILL_EVERY_MS.
    await sleep(between(KILL_EVERY_MS));
    const dead = fleet.find((w) => !w.running);
    assert.equal(dead, undefined, `a worker exited without being killed:\n${dead?.output()}`);
    pending = await notYetDone(pending);
    if (pending.length === 0) break;
    // A call is acknowledged only after its outcome is recorded (and a member's, in its chord): once
    // both queues hold nothing, a chord not done by then never will be. Say so now, not at the deadline.
    const { members, callbacks } = await backlogs();
    const held = (b: typeof members) => b.ready + b.inFlight + b.delayed;
    if (held(members) + held(callbacks) === 0) {
      const lost = await notYetDone(pending);
      assert.deepEqual(lost.slice(0, 5), [], `${lost.length} chords never completed, with nothing left to run`);
    }
    if (Date.now() - began > CHAOS_DEADLINE_MS) {
      assert.fail(
        `${pending.length} chords not done after ${kills} kills; backlogs ${JSON.stringify({ members, callbacks })}; ` +
          `e.g. chords ${pending.slice(0, 3).join(', ')}`,
      );
    }
    const slot = Math.floor(random() * fleet.length);
    await kill(fleet[slot] as WorkerProcess);
    kills++;
    fleet[slot] = spawnWorker(roles[slot] as string[], env);
  }
  const doneAt = Date.now();

  // Members redelivered after their chord completed run again: with no more kills, both queues drain,
  // and those late runs must not have enqueued anything.
  await eventually('both queues to drain: nothing ready, in flight or delayed', async () => {
    const { members, callbacks } = await backlogs();
    return [members, callbacks].every((b) => b.ready === 0 && b.inFlight === 0 && b.delayed === 0);
  });
  assert.deepEqual(await app.broker.deadLetters(app.defaultQueue), [], 'no member was dead-lettered');
  assert.deepEqual(await app.broker.deadLetters(callbackQueue), [], 'no callback was dead-lettered');

  // Every XADD onto the callbacks' lanes, ever: only chord completions add there.
  let enqueued = 0;
  for (const lane of queueKeys(app.prefix, callbackQueue).lanes) {
    const info = await redis.xinfo('STREAM', lane).catch(() => undefined);
    enqueued += Number(fieldMap(info)['entries-added'] ?? 0);
  }
  const states = await Promise.all(
    chords.map((r) => redis.hget(chordKeys(app.prefix, callbackQueue, r.id).state, 'state')),
  );

  await stopFleet(fleet);

  const sum = (record: Record<string, string>) => Object.values(record).reduce((n, v) => n + Number(v), 0);
  const [callbackRuns, callbackStarts, memberRuns, memberStarts] = (await Promise.all(
    ['callback-runs', 'callback-starts', 'member-runs', 'member-starts'].map((k) =>
      redis.hgetall(`${app.prefix}:${k}`),
    ),
  )) as [Record<string, string>, Record<string, string>, Record<string, string>, Record<string, string>];
  const never = chords.filter((r) => !(Number(callbackRuns[r.id]) >= 1));
  const figures = {
    seed,
    chords: CHORDS,
    membersPerChord: MEMBERS,
    workers: fleet.length,
    kills,
    memberCopiesInjected: duplicates,
    chordsCompleted: states.filter((s) => s === 'fired').length,
    callbacksEnqueued: enqueued,
    callbackExecutions: sum(callbackRuns),
    callbacksExecutedMoreThanOnce: Object.values(callbackRuns).filter((v) => Number(v) > 1).length,
    callbackRunsCutShort: sum(callbackStarts) - sum(callbackRuns),
    memberExecutions: sum(memberRuns),
    memberRunsCutShort: sum(memberStarts) - sum(memberRuns),
    allDoneAfterS: (doneAt - began) / 1000,
    durationS: (Date.now() - began) / 1000,
  };
  t.diagnostic(`chord chaos figures ${JSON.stringify(figures)}`);
  console.log('chord chaos:', figures);

  assert.deepEqual(
    states.map((s, c) => [c, s]).filter(([, s]) => s !== 'fired'),
    [],
    'every chord completed (its state is fired, not open or failed)',
  );
  assert.equal(enqueued, CHORDS, 'exactly one callback message per chord was ever enqueued');
  assert.deepEqual(never.map((r) => r.id).slice(0, 5), [], 'every callback ran to its end at least once');
  assert.equal(Object.keys(callbackRuns).length, CHORDS, 'only the chords’ callbacks ran');
  assert.equal(Object.keys(memberRuns).length, CHORDS * MEMBERS, 'every member ran');
  assert.ok(figures.memberExecutions >= CHORDS * MEMBERS + duplicates, 'the copies ran too');
  assert.ok(kills > 0, 'the chaos loop killed workers');
  assert.ok(figures.memberRunsCutShort > 0, 'some kills landed while members were running');
});
