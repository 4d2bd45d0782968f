import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { Envelope } from '../message/envelope.ts';
import type { FencingLease } from './lease.ts';
import { parseSchedule } from './schedule.ts';
import { Scheduler } from './scheduler.ts';
import type {
  AdvanceRequest,
  FireOutcome,
  FireRequest,
  ScheduleState,
  ScheduleStore,
  ScheduleTarget,
} from './store.ts';

/** The Redis store's semantics in memory (one process: atomic by construction). */
class MemoryStore implements ScheduleStore {
  readonly states = new Map<string, ScheduleState>();
  readonly enqueued: Envelope[] = [];
  readonly fences = new Map<string, number>();
  readonly marks = new Set<string>();

  async load(targets: readonly ScheduleTarget[], now: number) {
    for (const t of targets)
      if (!this.states.has(t.name)) this.states.set(t.name, { watermark: now, fires: 0, missed: 0 });
    return new Map(targets.map((t) => [t.name, { ...(this.states.get(t.name) as ScheduleState) }]));
  }

  #fenced(target: ScheduleTarget, fence: FireRequest['fence']): boolean {
    if (!fence) return false;
    const key = `${target.queue}:${fence.lease}`;
    const highest = this.fences.get(key) ?? -1;
    if (fence.token < highest) return true;
    this.fences.set(key, fence.token);
    return false;
  }

  async fire(r: FireRequest): Promise<FireOutcome> {
    if (this.#fenced(r.target, r.fence)) return 'fenced';
    const state = this.states.get(r.target.name) as ScheduleState;
    if (r.tick <= state.watermark || this.marks.has(r.envelope.id)) return 'duplicate';
    this.marks.add(r.envelope.id);
    this.enqueued.push(r.envelope);
    this.states.set(r.target.name, {
      ...state,
      watermark: r.tick,
      lastFire: { tick: r.tick, taskId: r.envelope.id, at: r.now },
      ...(r.nextTick !== undefined ? { nextTick: r.nextTick } : {}),
      fires: state.fires + 1,
    });
    return 'fired';
  }

  async advance(r: AdvanceRequest): Promise<'advanced' | 'fenced'> {
    if (this.#fenced(r.target, r.fence)) return 'fenced';
    const state = this.states.get(r.target.name) as ScheduleState;
    const { nextTick: _, ...rest } = state;
    this.states.set(r.target.name, {
      ...rest,
      watermark: Math.max(state.watermark, r.watermark),
      ...(r.nextTick !== undefined ? { nextTick: r.nextTick } : {}),
      missed: state.missed + r.missed,
    });
    return 'advanced';
  }
}

class FakeLease implements FencingLease {
  readonly name = 'test';
  token: number | undefined;
  lostCalls = 0;
  constructor(token?: number) {
    this.token = token;
  }
  current() {
    return this.token;
  }
  lost() {
    this.lostCalls++;
    this.token = undefined;
  }
}

const T0 = Date.parse('2025-01-01T00:00:00Z');
const everySecond = parseSchedule('every-second', { every: 1000, task: 'tick', options: { queue: 'q' } });
const everyTwo = parseSchedule('every-two', { every: 2000, task: 'tock', args: [1], options: { queue: 'q' } });

test('each due tick fires with its deterministic id and headers; status shows the last and next fire', async () => {
  const store = new MemoryStore();
  const scheduler = new Scheduler({ schedules: [everySecond, everyTwo], store });
  await scheduler.tick(T0); // first sight: ticks before now are not due
  const report = await scheduler.tick(T0 + 2500);
  assert.equal(report.leading, true);
  assert.deepEqual(
    report.fired.map((f) => f.taskId),
    [
      'every-second@2025-01-01T00:00:01.000Z',
      'every-second@2025-01-01T00:00:02.000Z',
      'every-two@2025-01-01T00:00:02.000Z',
    ],
  );
  assert.equal(report.nextDueAt, T0 + 3000);
  const [first] = store.enqueued;
  assert.equal(first?.id, 'every-second@2025-01-01T00:00:01.000Z');
  assert.equal(first?.queue, 'q');
  assert.deepEqual(first?.headers, {
    'taskfleet-schedule': 'every-second',
    'taskfleet-tick': '2025-01-01T00:00:01.000Z',
  });
  assert.deepEqual(store.enqueued.at(-1)?.args, [1]);
  const [status] = await scheduler.status(T0 + 2500);
  assert.deepEqual(
    { last: status?.lastFire?.taskId, next: status?.nextFire, fires: status?.fires },
    { last: 'every-second@2025-01-01T00:00:02.000Z', next: T0 + 3000, fires: 2 },
  );
});

test('a host that does not hold its lease fires nothing', async () => {
  const store = new MemoryStore();
  const scheduler = new Scheduler({ schedules: [everySecond], store, lease: new FakeLease(undefined) });
  const report = await scheduler.tick(T0 + 5000);
  assert.equal(report.leading, false);
  assert.equal(store.enqueued.length, 0);
});

test('three hosts with no lease at all, ticking at jittered moments: each tick fires once', async () => {
  const store = new MemoryStore();
  const hosts = [0, 1, 2].map(() => new Scheduler({ schedules: [everySecond, everyTwo], store }));
  await hosts[0]?.tick(T0);
  for (let step = 1; step <= 300; step++) {
    await Promise.all(hosts.map((h, i) => h.tick(T0 + step * 333 + i * 7)));
  }
  const ids = store.enqueued.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, 'no tick fired twice');
  const last = T0 + 300 * 333;
  assert.equal(ids.filter((id) => id.startsWith('every-second@')).length, Math.floor((last - T0) / 1000));
  assert.equal(ids.filter((id) => id.startsWith('every-two@')).length, Math.floor((last - T0) / 2000));
});

test('a fire fenced off by a newer holder steps the host down at once', async () => {
  const store = new MemoryStore();
  const old = new FakeLease(1);
  const current = new FakeLease(2);
  const a = new Scheduler({ schedules: [everySecond], store, lease: old });
  const b = new Scheduler({ schedules: [everySecond], store, lease: current });
  await b.tick(T0);
  await b.tick(T0 + 1000);
  const report = await a.tick(T0 + 2000);
  assert.equal(report.leading, false);
  assert.deepEqual(report.fired, []);
  assert.equal(old.lostCalls, 1);
  assert.deepEqual(
    store.enqueued.map((e) => e.id),
    ['every-second@2025-01-01T00:00:01.000Z'],
  );
});

test('beforeFire runs after the lease check and before each fire; a lease lost meanwhile stops the round', async () => {
  const store = new MemoryStore();
  const lease = new FakeLease(1);
  const seen: string[] = [];
  const scheduler = new Scheduler({
    schedules: [everySecond],
    store,
    lease,
    beforeFire: (fire) => {
      seen.push(fire.taskId);
      lease.token = undefined; // the lease lapses while the first fire is held
    },
  });
  await scheduler.tick(T0);
  lease.token = 1;
  const report = await scheduler.tick(T0 + 3000);
  // The held fire goes on (the store's fencing and idempotency judge it); the round stops after it.
  assert.deepEqual(seen, ['every-second@2025-01-01T00:00:01.000Z']);
  assert.equal(report.fired.length, 1);
  assert.equal(report.leading, false);
});

test('a schedule whose message cannot be built is reported and left due; the others fire', async () => {
  const store = new MemoryStore();
  const scheduler = new Scheduler({
    schedules: [everySecond, everyTwo],
    store,
    envelope: (fire) => {
      if (fire.schedule.name === 'every-two') throw new Error('no task named tock');
      return {
        v: 1,
        id: fire.taskId,
        task: fire.schedule.task,
        args: [],
        kwargs: {},
        queue: fire.queue,
        attempt: 1,
        priority: 5,
        rootId: fire.taskId,
        createdAt: fire.tick,
        headers: {},
      };
    },
  });
  await scheduler.tick(T0);
  const report = await scheduler.tick(T0 + 2000);
  assert.deepEqual(
    report.failed.map((f) => [f.schedule, f.error.message]),
    [['every-two', 'no task named tock']],
  );
  assert.equal(report.fired.length, 2);
  assert.equal(store.states.get('every-two')?.watermark, T0, 'its tick stays due');
});

test("missed ticks under 'skip' move the watermark and are counted in status", async () => {
  const store = new MemoryStore();
  const skip = parseSchedule('skipper', { every: 1000, task: 'tick', missed: 'skip', missedAfter: 5000 });
  const scheduler = new Scheduler({ schedules: [skip], store });
  await scheduler.tick(T0);
  const report = await scheduler.tick(T0 + 60_000);
  assert.deepEqual(report.missed, [{ schedule: 'skipper', count: 54 }]);
  assert.equal(report.fired.length, 6, 'the ticks of the last 5 s are late, not missed: they fire');
  const [status] = await scheduler.status(T0 + 60_000);
  assert.equal(status?.missed, 54);
  assert.equal(status?.fires, 6);
});
