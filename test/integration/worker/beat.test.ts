/**
 * Periodic tasks fire exactly once per (schedule, tick), with several beats running, through
 * failovers, and through a beat that stalls mid-fire. Every test counts what reached the queue (no
 * worker consumes it) by task id: each expected tick present once — none missing, none doubled.
 *
 * In-process beats run on a virtual clock (the test moves it; ticks are read on it), while their lease
 * lives in the real Redis in real time, as in production. The child-process test runs real
 * `taskfleet beat` commands on the real clock and SIGKILLs the lease holder.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { Envelope, Taskfleet } from 'taskfleet';
import type { RedisBroker } from '../../../worker/src/brokers/redis/broker.ts';
import { leaseKeys, queueKeys, scheduleKeys } from '../../../worker/src/brokers/redis/keys.ts';
import { Beat, type Fire, RedisScheduleStore, Scheduler, scheduledTaskId } from '../../../worker/src/schedule/index.ts';
import { intervalTiming, type Timing } from '../../../worker/src/schedule/timing.ts';
import { testApp } from '../../support/app.ts';
import { spawnBeat, type WorkerProcess } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';
import { useRedis } from '../../support/stack.ts';

const fixture = fileURLToPath(new URL('./fixtures/beat.tasks.ts', import.meta.url));
const schedulesFile = fileURLToPath(new URL('./fixtures/beat.schedules.yaml', import.meta.url));

/** Far from the real date on purpose: ticks follow the virtual clock, the lease the real one. */
const T0 = Date.UTC(2030, 0, 1);

/** A test's own prefix and queue: every beat app of a test shares them, each with its own connection. */
function namespace() {
  const id = randomUUID().slice(0, 8);
  return { prefix: `test-${id}`, defaultQueue: `q-${id}` };
}

/** An app with the `tick` task and the schedules of the in-process tests. */
async function beatApp(ns: { prefix: string; defaultQueue: string }): Promise<Taskfleet> {
  const app = await testApp(ns);
  const tick = app.task('tick', () => 'tick');
  app.schedule('every-second', { every: 1000, task: tick.s() });
  app.schedule('cron-second', { cron: '* * * * * *', timeZone: 'America/New_York', task: 'tick' });
  app.schedule('every-five', { every: 5000, task: 'tick', args: [] });
  return app;
}

function redisOf(app: Taskfleet) {
  return (app.broker as RedisBroker).redis;
}

interface Enqueued {
  id: string;
  schedule: string;
  tick: number;
}

/** Every message waiting in the app's default queue (lanes and delayed set). */
async function enqueued(app: Taskfleet): Promise<Enqueued[]> {
  const redis = redisOf(app);
  const keys = queueKeys(app.prefix, app.defaultQueue);
  const texts: string[] = [];
  for (const lane of keys.lanes) {
    const entries = (await redis.xrange(lane, '-', '+')) as [string, string[]][];
    for (const [, fields] of entries) texts.push(fields[1] as string);
  }
  texts.push(...(await redis.zrange(keys.delayed, 0, -1)).map((member) => member.slice(1)));
  return texts.map((text) => {
    const envelope = JSON.parse(text) as Envelope;
    const schedule = envelope.headers['taskfleet-schedule'] as string;
    const tick = Date.parse(envelope.headers['taskfleet-tick'] as string);
    assert.equal(envelope.id, scheduledTaskId(schedule, tick), 'the task id is derived from the schedule and tick');
    return { id: envelope.id, schedule, tick };
  });
}

interface Tally {
  ticks: number;
  fires: number;
  duplicates: number;
  missing: number;
  unexpected: number;
}

/** Fires of `schedule` counted against the ticks of `timing` in (from, to]. */
function tally(all: Enqueued[], schedule: string, timing: Timing, from: number, to: number): Tally {
  const counts = new Map<number, number>();
  for (const e of all.filter((x) => x.schedule === schedule)) counts.set(e.tick, (counts.get(e.tick) ?? 0) + 1);
  const expected: number[] = [];
  for (let t = timing.next(from); t !== undefined && t <= to; t = timing.next(t)) expected.push(t);
  const expectedSet = new Set(expected);
  return {
    ticks: expected.length,
    fires: [...counts.values()].reduce((a, b) => a + b, 0),
    duplicates: [...counts.values()].filter((n) => n > 1).length,
    missing: expected.filter((t) => !counts.has(t)).length,
    unexpected: [...counts.keys()].filter((t) => !expectedSet.has(t)).length,
  };
}

function assertExactlyOnce(name: string, t: Tally): void {
  assert.ok(t.ticks > 0, `${name}: some ticks were expected`);
  assert.deepEqual(
    { duplicates: t.duplicates, missing: t.missing, unexpected: t.unexpected, fires: t.fires },
    { duplicates: 0, missing: 0, unexpected: 0, fires: t.ticks },
    `${name}: every tick fired exactly once (${JSON.stringify(t)})`,
  );
}

/**
 * A beforeFire hook that, once armed, holds the next fire until the test opens it: a beat stalled
 * between deciding a fire and making it (a GC pause, a partition), the window a failover must survive.
 */
function stallable() {
  let pending: { reached: PromiseWithResolvers<Fire>; gate: PromiseWithResolvers<void> } | undefined;
  return {
    arm() {
      const p = { reached: Promise.withResolvers<Fire>(), gate: Promise.withResolvers<void>() };
      pending = p;
      return { reached: p.reached.promise, open: () => p.gate.resolve() };
    },
    hook: async (fire: Fire) => {
      const p = pending;
      if (!p) return;
      pending = undefined;
      p.reached.resolve(fire);
      await p.gate.promise;
    },
  };
}

for (const count of [2, 3]) {
  test(`${count} beats on a fast clock, the lease holder stalling mid-fire twice: every tick fires exactly once`, async (t) => {
    const ns = namespace();
    let now = T0;
    const beats: Beat[] = [];
    const stalls = new Map<Beat, ReturnType<typeof stallable>>();
    for (let i = 0; i < count; i++) {
      const stall = stallable();
      const beat = new Beat(await beatApp(ns), {
        clock: () => now,
        leaseTtl: 1000,
        identity: `beat-${i}`,
        beforeFire: stall.hook,
      });
      beats.push(beat);
      stalls.set(beat, stall);
    }
    let active = [...beats];
    const round = () => Promise.all(active.map((b) => b.step()));
    const leaders: string[] = [];
    let failovers = 0;
    await round();
    for (let step = 1; step <= 600; step++) {
      now += 250;
      await round();
      const leader = active.find((b) => b.leading);
      if (leader && leaders.at(-1) !== leader.identity) leaders.push(leader.identity);
      if (leader && failovers < 2 && step >= 200 * (failovers + 1)) {
        failovers++;
        // Five seconds of ticks fall due; the holder decides to fire them and stalls before the first:
        // no fire, no renewal, no release. Another beat must take over once its lease lapses and fire
        // them (late, each once); when the holder wakes, its fire must be refused.
        const stall = (stalls.get(leader) as ReturnType<typeof stallable>).arm();
        now += 5000;
        active = active.filter((b) => b !== leader);
        const stalled = leader.step();
        await stall.reached;
        const successor = await eventually('another beat to take the lapsed lease', async () => {
          await round();
          return active.find((b) => b.leading);
        });
        leaders.push(successor.identity);
        stall.open();
        const woke = await stalled;
        assert.deepEqual(woke.fired, [], 'the stalled holder fired nothing when it woke');
        assert.equal(woke.leading, false, 'and stepped down');
        const again = await leader.step();
        assert.equal(again.leading, false, 'its lease is gone: it waits');
        active.push(leader);
      }
    }
    const app = await beatApp(ns);
    const all = await enqueued(app);
    const figures: Record<string, Tally> = {};
    for (const [name, every] of [
      ['every-second', 1000],
      ['cron-second', 1000],
      ['every-five', 5000],
    ] as const) {
      figures[name] = tally(all, name, intervalTiming(every, 't'), T0, now);
      assertExactlyOnce(name, figures[name]);
    }
    t.diagnostic(`${count} beats, leaders ${leaders.join(' → ')}, figures ${JSON.stringify(figures)}`);
    console.log(`beat (${count} in-process beats):`, { leaders, stalledHoldersFencedOff: failovers, ...figures });
    assert.equal(failovers, 2, 'two holders stalled mid-fire and were replaced');

    // The status hash: the last fire and the next tick of each schedule.
    const state = await redisOf(app).hgetall(scheduleKeys(ns.prefix, ns.defaultQueue, 'every-five').state);
    assert.equal(Number(state.lastTick), now - (now % 5000));
    assert.equal(state.lastTaskId, scheduledTaskId('every-five', Number(state.lastTick)));
    assert.equal(Number(state.fires), figures['every-five']?.fires);
    const status = await (beats[0] as Beat).scheduler.status(now);
    assert.deepEqual(
      status.map((s) => [s.name, s.nextFire]),
      [
        ['every-second', now + 1000],
        ['cron-second', now + 1000],
        ['every-five', now - (now % 5000) + 5000],
      ],
    );
  });
}

test('a beat that stalls after taking the lease, just before a fire, is fenced off: no tick fires twice', async () => {
  const ns = namespace();
  let now = T0;
  const stall = stallable();
  const a = new Beat(await beatApp(ns), { clock: () => now, leaseTtl: 1000, identity: 'a', beforeFire: stall.hook });
  const b = new Beat(await beatApp(ns), { clock: () => now, leaseTtl: 1000, identity: 'b' });
  await a.step();
  await b.step();
  assert.equal(a.leading, true);
  assert.equal(b.leading, false);

  now = T0 + 3000;
  const hold = stall.arm();
  const stalled = a.step();
  const held = await hold.reached;
  assert.equal(held.taskId, scheduledTaskId('every-second', T0 + 1000));
  // a holds the lease and has decided to fire; it neither fires nor renews. Its lease lapses in Redis,
  // b takes over and fires the same ticks…
  await eventually('b to take the lease a stopped renewing', async () => {
    await b.step();
    return b.leading;
  });
  // …then a wakes up and goes on with the fire it had decided: refused.
  hold.open();
  const late = await stalled;
  assert.deepEqual(late.fired, [], 'the stalled beat fired nothing');
  assert.equal(late.leading, false, 'and stepped down');
  assert.equal(a.leading, false);

  now = T0 + 6000;
  await a.step();
  await b.step();
  const app = await beatApp(ns);
  const all = await enqueued(app);
  const figures = {
    'every-second': tally(all, 'every-second', intervalTiming(1000, 't'), T0, now),
    'cron-second': tally(all, 'cron-second', intervalTiming(1000, 't'), T0, now),
    'every-five': tally(all, 'every-five', intervalTiming(5000, 't'), T0, now),
  };
  for (const [name, figure] of Object.entries(figures)) assertExactlyOnce(name, figure);
  console.log('beat (stalled holder, fenced):', figures);
});

test('without any lease, two schedulers racing on the same tick still fire it once: the fire script alone', async () => {
  const ns = namespace();
  let now = T0;
  const stall = stallable();
  const make = async (beforeFire?: (fire: Fire) => Promise<void>) => {
    const app = await beatApp(ns);
    return new Scheduler({
      schedules: [...app.schedules.values()],
      store: new RedisScheduleStore(redisOf(app), { prefix: ns.prefix }),
      queueOf: () => ns.defaultQueue,
      clock: () => now,
      ...(beforeFire ? { beforeFire } : {}),
    });
  };
  const a = await make(stall.hook);
  const b = await make();
  await a.tick();
  now = T0 + 3000;
  const hold = stall.arm();
  const stalled = a.tick();
  const held = await hold.reached;
  // b fires everything due, including the tick a holds…
  const ahead = await b.tick();
  assert.ok(ahead.fired.some((f) => f.taskId === held.taskId));
  hold.open();
  const late = await stalled;
  // …and every fire of a, the held one first, is refused as already fired.
  assert.deepEqual(late.fired, []);
  assert.equal(late.duplicates[0]?.taskId, held.taskId);
  assert.equal(late.duplicates.length, ahead.fired.length);

  const app = await beatApp(ns);
  const all = await enqueued(app);
  assertExactlyOnce('every-second', tally(all, 'every-second', intervalTiming(1000, 't'), T0, now));
  assertExactlyOnce('cron-second', tally(all, 'cron-second', intervalTiming(1000, 't'), T0, now));
  // A second enqueue of a tick could not hide: it would carry the same task id.
  const ids = all.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length);
});

test('a stopped beat releases its lease: another takes over on its next round, without waiting it out', async () => {
  const ns = namespace();
  let now = T0;
  const a = new Beat(await beatApp(ns), { clock: () => now, leaseTtl: 600_000, identity: 'a' });
  const b = new Beat(await beatApp(ns), { clock: () => now, leaseTtl: 600_000, identity: 'b' });
  await a.step();
  await b.step();
  assert.equal(a.leading, true);
  await a.stop();
  now += 2000;
  await b.step();
  assert.equal(b.leading, true, 'with a 10-minute lease, only a release lets b lead now');
  const holder = await b.lease.holder();
  assert.equal(holder?.identity, 'b');
  assert.ok((holder?.token ?? 0) > 1, 'a new holding has a larger fencing token');
});

test("ticks missed while every beat was down: 'fire-once' fires one, 'skip' none; status counts them", async () => {
  const ns = namespace();
  let now = T0;
  const app = await testApp(ns);
  app.task('report', () => 'ok');
  app.schedule('once', { every: 60_000, task: 'report', missed: 'fire-once', missedAfter: 2000 });
  app.schedule('skipped', { every: 60_000, task: 'report', missed: 'skip', missedAfter: 2000 });
  const beat = new Beat(app, { clock: () => now, leaseTtl: 1000 });
  await beat.step();
  now = T0 + 10 * 60_000 + 30_000; // down for ten and a half minutes: ten ticks missed
  const report = await beat.step();
  assert.deepEqual(
    report.fired.map((f) => f.taskId),
    [scheduledTaskId('once', T0 + 10 * 60_000)],
  );
  assert.deepEqual(report.missed, [
    { schedule: 'once', count: 9 },
    { schedule: 'skipped', count: 10 },
  ]);
  const status = await beat.scheduler.status(now);
  assert.deepEqual(
    status.map((s) => ({ name: s.name, fires: s.fires, missed: s.missed, next: s.nextFire })),
    [
      { name: 'once', fires: 1, missed: 9, next: T0 + 11 * 60_000 },
      { name: 'skipped', fires: 0, missed: 10, next: T0 + 11 * 60_000 },
    ],
  );
  // Nothing more until the next tick.
  now += 1000;
  assert.deepEqual((await beat.step()).fired, []);
  await beat.stop();
});

test('real `taskfleet beat` processes, the lease holder SIGKILLed twice: every second fires exactly once', {
  timeout: 120_000,
}, async (t) => {
  const { url } = await useRedis();
  const ns = namespace();
  const env = { TASKFLEET_BROKER: url, TASKFLEET_PREFIX: ns.prefix, TASKFLEET_QUEUE: ns.defaultQueue };
  const args = ['--app', fixture, '--schedules', schedulesFile, '--lease-ttl', '1500'];
  const app = await testApp(ns);
  const redis = redisOf(app);
  const fleet: WorkerProcess[] = [spawnBeat(args, env), spawnBeat(args, env), spawnBeat(args, env)];
  const identities = new Map<WorkerProcess, string>();
  for (const beat of fleet) identities.set(beat, String((await beat.log('beat started')).identity));

  const holderValue = () => redis.get(leaseKeys(ns.prefix, 'beat').holder);
  /** The beat process that holds the lease now. */
  const holder = () =>
    eventually('a beat to hold the lease', async () => {
      const value = await holderValue();
      return fleet.find((b) => b.running && value?.endsWith(` ${identities.get(b)}`));
    });
  const firesOf = async (schedule: string) => (await enqueued(app)).filter((e) => e.schedule === schedule).length;
  const waitFires = (n: number) =>
    eventually(`${n} fires of every-second`, async () => (await firesOf('every-second')) >= n);

  await waitFires(4);
  const kills: string[] = [];
  for (let k = 0; k < 2; k++) {
    const victim = await holder();
    const before = await firesOf('every-second');
    victim.signal('SIGKILL');
    assert.equal((await victim.exit()).signal, 'SIGKILL');
    kills.push(identities.get(victim) as string);
    // A successor takes the lease once it lapses and catches up; keep three beats running.
    const replacement = spawnBeat(args, env);
    fleet.push(replacement);
    identities.set(replacement, String((await replacement.log('beat started')).identity));
    const successor = await holder();
    assert.notEqual(identities.get(successor), kills.at(-1));
    await waitFires(before + 5);
  }

  // SIGTERM everyone; the holder releases the lease on its way out.
  const running = fleet.filter((b) => b.running);
  const last = await holder();
  last.signal('SIGTERM');
  assert.deepEqual(await last.exit(), { code: 0, signal: null }, last.output());
  assert.equal((await last.log('beat stopped')).released, true, 'the holder released the lease');
  for (const beat of running.filter((b) => b !== last)) beat.signal('SIGTERM');
  for (const beat of running) assert.deepEqual(await beat.exit(), { code: 0, signal: null }, beat.output());

  const all = await enqueued(app);
  const figures: Record<string, Tally> = {};
  for (const schedule of ['every-second', 'cron-second']) {
    const ticks = all.filter((e) => e.schedule === schedule).map((e) => e.tick);
    // The fleet's first and last fires bound the run: every second between must be there, once.
    figures[schedule] = tally(all, schedule, intervalTiming(1000, 't'), Math.min(...ticks) - 1, Math.max(...ticks));
    assertExactlyOnce(schedule, figures[schedule]);
  }
  const leaderships = fleet.flatMap((b) => b.logs.filter((r) => r.msg === 'became the leader')).length;
  // Fires made well after their tick: those a successor caught up on after a kill.
  const caughtUp = fleet
    .flatMap((b) => b.logs.filter((r) => r.msg === 'fired'))
    .filter((r) => Date.parse(String(r.time)) - Date.parse(String(r.tick)) > 500).length;
  t.diagnostic(`kills ${kills.length}, leaderships ${leaderships}, figures ${JSON.stringify(figures)}`);
  console.log('beat (taskfleet beat processes, kill -9):', { kills: kills.length, leaderships, caughtUp, ...figures });
  assert.ok(leaderships >= 3, 'the lease changed hands after each kill');
});
