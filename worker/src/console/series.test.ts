import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { LatencyView, Overview, QueueView, WorkerView } from './contract.ts';
import { Ring, SERIES_QUEUES, samplePoint, withRates } from './series.ts';

const worker = (id: string, queue: string, at: number, processed: Record<string, number>): WorkerView => ({
  id,
  hostname: 'h',
  queue,
  concurrency: 4,
  running: 0,
  reserved: 0,
  processed,
  startedAt: 0,
  lastHeartbeat: at,
  version: '0',
  active: [],
});
const queue = (name: string, extra: Partial<QueueView> = {}): QueueView => ({
  name,
  ready: 0,
  delayed: 0,
  inFlight: 0,
  ...extra,
});
const overview = (at: number, workers: WorkerView[], queues: QueueView[], extra: Partial<Overview> = {}) => ({
  at,
  workers,
  queues,
  ...extra,
});
const none = new Map<string, LatencyView>();

describe('samplePoint', () => {
  it('has no rates on the first tick: counters since a worker started are not this tick’s', () => {
    const { point } = samplePoint(
      overview(1000, [worker('w1', 'q', 1000, { success: 50 })], [queue('q', { added: 80, ready: 30 })]),
      none,
      undefined,
    );
    assert.deepEqual(point.queues.q, { ready: 30, delayed: 0, inFlight: 0, outcomesPerSecond: {} });
  });

  it('turns counter deltas into per-second rates: arrivals from added, completions by outcome from workers', () => {
    const first = samplePoint(
      overview(
        1000,
        [worker('w1', 'q', 1000, { success: 10 }), worker('w2', 'q', 1000, { success: 5, failure: 1 })],
        [queue('q', { added: 100 })],
      ),
      none,
      undefined,
    );
    const { point } = samplePoint(
      overview(
        3000,
        [worker('w1', 'q', 3000, { success: 30 }), worker('w2', 'q', 3000, { success: 9, failure: 3 })],
        [queue('q', { added: 160 })],
      ),
      none,
      first.memory,
    );
    const q = point.queues.q;
    assert.equal(q?.arrivalsPerSecond, 30); // 60 added in 2 s
    assert.deepEqual(q?.outcomesPerSecond, { success: 12, failure: 1 }); // (20 + 4) / 2, 2 / 2
    assert.equal(q?.completionsPerSecond, 13);
  });

  it('counts a worker that restarted under the same id from zero, and ignores a new worker’s past', () => {
    const first = samplePoint(overview(0, [worker('w1', 'q', 0, { success: 100 })], [queue('q')]), none, undefined);
    const { point } = samplePoint(
      overview(
        1000,
        [worker('w1', 'q', 1000, { success: 4 }), worker('w2', 'q', 1000, { success: 999 })],
        [queue('q')],
      ),
      none,
      first.memory,
    );
    assert.deepEqual(point.queues.q?.outcomesPerSecond, { success: 4 });
  });

  it('keeps completions with the queue their worker consumes', () => {
    const first = samplePoint(
      overview(0, [worker('a', 'emails', 0, {}), worker('b', 'images', 0, {})], [queue('emails'), queue('images')]),
      none,
      undefined,
    );
    const { point } = samplePoint(
      overview(
        1000,
        [worker('a', 'emails', 1000, { success: 3 }), worker('b', 'images', 1000, { revoked: 2 })],
        [queue('emails'), queue('images')],
      ),
      none,
      first.memory,
    );
    assert.deepEqual(point.queues.emails?.outcomesPerSecond, { success: 3 });
    assert.deepEqual(point.queues.images?.outcomesPerSecond, { revoked: 2 });
  });

  it('sums the replicas of the TaskQueues of a queue, and carries backlog and latency', () => {
    const tq = (name: string, desired: number, ready: number) => ({
      namespace: 'ns',
      name,
      queue: 'q',
      desiredReplicas: desired,
      readyReplicas: ready,
      conditions: [],
    });
    const latency = new Map<string, LatencyView>([
      ['q', { sampled: 3, duration: { p50: 5, p90: 9, p99: 10 }, wait: null }],
    ]);
    const { point } = samplePoint(
      overview(0, [], [queue('q', { ready: 7, deadLetters: 2, oldestAgeSeconds: 1.23456 })], {
        kubernetes: { taskQueues: [tq('a', 3, 2), tq('b', 1, 1)] },
      }),
      latency,
      undefined,
    );
    assert.deepEqual(point.queues.q, {
      ready: 7,
      delayed: 0,
      inFlight: 0,
      outcomesPerSecond: {},
      deadLetters: 2,
      oldestAgeSeconds: 1.235,
      duration: { p50: 5, p90: 9, p99: 10 },
      desiredReplicas: 4,
      readyReplicas: 3,
    });
  });

  it(`keeps at most ${SERIES_QUEUES} queues in a point`, () => {
    const queues = Array.from({ length: SERIES_QUEUES + 5 }, (_, i) => queue(`q${String(i).padStart(2, '0')}`));
    const { point } = samplePoint(overview(0, [], queues), none, undefined);
    assert.equal(Object.keys(point.queues).length, SERIES_QUEUES);
  });

  it('withRates copies the latest rates onto a fresh overview', () => {
    const fresh = overview(5, [], [queue('q'), queue('other')]);
    withRates(fresh, {
      at: 4,
      queues: { q: { ...queue('q'), outcomesPerSecond: {}, arrivalsPerSecond: 2, completionsPerSecond: 1 } },
    });
    assert.equal(fresh.queues[0]?.arrivalsPerSecond, 2);
    assert.equal(fresh.queues[0]?.completionsPerSecond, 1);
    assert.equal(fresh.queues[1]?.arrivalsPerSecond, undefined);
  });
});

describe('Ring', () => {
  it('keeps the newest `capacity` items, oldest first', () => {
    const ring = new Ring<number>(3);
    assert.deepEqual(ring.toArray(), []);
    assert.equal(ring.last(), undefined);
    for (let i = 1; i <= 7; i++) ring.push(i);
    assert.deepEqual(ring.toArray(), [5, 6, 7]);
    assert.equal(ring.size, 3);
    assert.equal(ring.last(), 7);
  });
});
