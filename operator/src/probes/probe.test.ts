import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Backlog } from 'taskfleet';
import type { KafkaBroker } from 'taskfleet/operator';
import { blackHole } from '../../../test/support/black-hole.ts';
import { eventually } from '../../../test/support/eventually.ts';
import {
  type BrokerReading,
  type KafkaTarget,
  ProbeFailedError,
  ProbePool,
  type RedisTarget,
  ratesBetween,
  scalingBacklog,
} from './probe.ts';

// Nothing here connects: a KafkaBroker connects on its first request, and these tests make none.
const target = (extra: Partial<KafkaTarget> = {}): KafkaTarget => ({
  kind: 'kafka',
  brokers: ['kafka-0:9092', 'kafka-1:9092'],
  prefix: 'tf',
  queue: 'emails',
  ...extra,
});

/** The Kafka client of a target's probe connection. */
const client = (pool: ProbePool, t: KafkaTarget) => pool.connection(t).broker as KafkaBroker;

describe('ProbePool: one Kafka client per distinct connection', () => {
  test('queues on the same brokers, TLS, credentials and prefix share one; any difference makes another', async () => {
    const pool = new ProbePool();
    const sasl = { mechanism: 'scram-sha-512' as const, username: 'u', password: 'p1' };
    const a = client(pool, target({ sasl }));
    assert.equal(client(pool, target({ sasl: { ...sasl }, queue: 'reports' })), a, 'another queue');
    for (const other of [
      target({ sasl: { ...sasl, password: 'p2' } }),
      target({ sasl: { ...sasl, mechanism: 'plain' } }),
      target({ sasl, prefix: 'shop' }),
      target({ sasl, brokers: ['kafka-0:9092'] }),
      target({ sasl, tls: true }),
      target({ sasl, tls: { ca: 'PEM' } }),
      target(),
    ]) {
      assert.notEqual(client(pool, other), a, JSON.stringify(other));
    }
    assert.equal(pool.size, 8);
    assert.equal(a.prefix, 'tf');
    assert.deepEqual(a.options.sasl, sasl);
    await pool.close();
    assert.equal(pool.size, 0);
  });

  test('a client nobody used for idleMs is closed and replaced on its next use', async () => {
    let now = 1_000_000;
    const pool = new ProbePool({ idleMs: 20, now: () => now });
    const a = client(pool, target());
    const b = client(pool, target({ prefix: 'other' }));
    now += 20;
    assert.equal(client(pool, target()), a, 'still fresh at exactly idleMs');
    now += 21;
    const c = client(pool, target());
    assert.notEqual(c, a);
    assert.equal(pool.size, 1, 'both idle clients were closed');
    assert.notEqual(client(pool, target({ prefix: 'other' })), b);
    await pool.close();
  });
});

describe('ProbePool: an address that accepts connections and never answers', () => {
  const failure = async (promise: Promise<unknown>): Promise<ProbeFailedError> => {
    const error = await promise.then(
      () => assert.fail('the probe succeeded'),
      (e: unknown) => e,
    );
    assert.ok(error instanceof ProbeFailedError, String(error));
    return error;
  };

  test('Redis: fails after the connect timeout, then backs off (doubling, capped) without connecting, saying when it probes again', async () => {
    const hole = await blackHole();
    let now = Date.parse('2030-01-01T00:00:00Z');
    const pool = new ProbePool({ connectTimeoutMs: 100, now: () => now, backoff: { baseMs: 1000, maxMs: 4000 } });
    const target: RedisTarget = { kind: 'redis', url: hole.url, prefix: 'tf', queue: 'emails' };
    try {
      const first = await failure(pool.read(target, { namespace: 'team-a' }));
      assert.equal(first.probed, true);
      assert.equal(first.failures, 1);
      // The connect timeout ended it, not the probe's 5 s timeout.
      assert.match(first.detail, /^cannot connect to Redis at redis:\/\/127\.0\.0\.1:\d+\/0: no answer within 100 ms/);
      assert.equal(first.message, `${first.detail} (failed once; next probe at 2030-01-01T00:00:01Z)`);
      assert.equal(hole.connections, 1);
      await eventually('the connection that never answered to be closed', () => hole.open === 0);

      const reused = await failure(pool.read(target, { namespace: 'team-a' }));
      assert.equal(reused.probed, false, 'backing off: nothing sent');
      assert.equal(reused.detail, first.detail);
      assert.equal(reused.retryAt, first.retryAt);
      assert.equal(hole.connections, 1, 'no new connection while backing off');
      assert.equal(pool.size, 0, 'the connection was dropped');

      const delays = [];
      for (let i = 0; i < 3; i++) {
        now = (await failure(pool.read(target))).retryAt;
        const next = await failure(pool.read(target));
        assert.equal(next.probed, true);
        delays.push(next.retryAt - now);
      }
      assert.deepEqual(delays, [2000, 4000, 4000]);
      assert.equal(hole.connections, 4, 'one connection per probe sent');
      const other = await failure(pool.read({ ...target, queue: 'reports' }));
      assert.equal(other.probed, true, 'another queue of the same broker backs off on its own');
    } finally {
      await pool.close();
      await hole.close();
    }
  });

  test('Kafka: the client waits the connect timeout per request, not kafkajs’ 30 s', async () => {
    const hole = await blackHole();
    const pool = new ProbePool({ connectTimeoutMs: 100 });
    try {
      const error = await failure(
        pool.read(target({ brokers: [`127.0.0.1:${hole.port}`] }), { namespace: 'team-a', timeoutMs: 20_000 }),
      );
      // Were it kafkajs' 30 s request timeout, the probe's own 20 s would have ended it.
      assert.doesNotMatch(error.detail, /timed out after 20000 ms/);
      assert.ok(error.detail.startsWith(`Kafka at kafka://127.0.0.1:${hole.port}: `), error.detail);
    } finally {
      await pool.close();
      await hole.close();
    }
  });

  test('probe slots: a namespace with many hanging probes leaves a slot to another namespace', async () => {
    const hole = await blackHole();
    const pool = new ProbePool({ concurrency: 4, perNamespace: 1, connectTimeoutMs: 300 });
    const target = (queue: string): RedisTarget => ({ kind: 'redis', url: hole.url, prefix: queue, queue });
    try {
      const slow = Array.from({ length: 6 }, (_, i) => pool.read(target(`slow-${i}`), { namespace: 'slow' }));
      assert.equal(pool.active, 3, 'the slow namespace alone takes all slots but the last');
      const fast = pool.read(target('fast'), { namespace: 'fast' });
      assert.equal(pool.active, 4, 'the other namespace’s probe starts at once');
      const results = await Promise.allSettled([...slow, fast]);
      assert.ok(results.every((r) => r.status === 'rejected'));
      assert.equal(pool.active, 0);
      assert.equal(hole.connections, 7);
    } finally {
      await pool.close();
      await hole.close();
    }
  });
});

const backlog = (b: Partial<Backlog>): Backlog => ({ ready: 0, delayed: 0, due: 0, inFlight: 0, ...b });

describe('scalingBacklog', () => {
  test('Redis: only the due delayed calls need a worker now', () => {
    assert.deepEqual(scalingBacklog('redis', backlog({ ready: 5, delayed: 100, due: 3, inFlight: 2 })), {
      ready: 5,
      delayed: 3,
      inFlight: 2,
    });
  });

  test('Kafka: every delayed call counts, since only a running consumer releases them when due', () => {
    assert.deepEqual(scalingBacklog('kafka', backlog({ ready: 5, delayed: 100, due: 0, inFlight: 2, partitions: 4 })), {
      ready: 5,
      delayed: 100,
      inFlight: 2,
    });
  });
});

describe('ratesBetween', () => {
  const reading = (at: number, b: Partial<Backlog>): BrokerReading => ({ at, backlog: backlog(b) });

  test('arrival from what was added, completion from what was taken and is no longer in flight', () => {
    // Kafka: added = Σ high watermarks; delivered = Σ committed offsets + records handed or finished above.
    const before = reading(10_000, { added: 1000, delivered: 400, inFlight: 20 });
    const after = reading(12_000, { added: 1300, delivered: 700, inFlight: 40 });
    assert.deepEqual(ratesBetween(before, after), { arrival: 150, completion: 140 });
  });

  test('nothing before the second reading, nor from a counter that went back (a topic recreated)', () => {
    const first = reading(10_000, { added: 1000, delivered: 400 });
    assert.deepEqual(ratesBetween(undefined, first), {});
    assert.deepEqual(ratesBetween(first, reading(12_000, { added: 10, delivered: 5 })), {});
    assert.deepEqual(ratesBetween(first, reading(10_000, { added: 1100, delivered: 500 })), {}, 'no time passed');
  });

  test('a broker without counters gives no rates', () => {
    assert.deepEqual(ratesBetween(reading(0, {}), reading(1000, {})), {});
  });
});
