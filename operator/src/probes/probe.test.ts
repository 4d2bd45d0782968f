import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Backlog } from 'taskfleet';
import { type BrokerReading, type KafkaTarget, ProbePool, ratesBetween, scalingBacklog } from './probe.ts';

// Nothing here connects: a KafkaBroker connects on its first request, and these tests make none.
const target = (extra: Partial<KafkaTarget> = {}): KafkaTarget => ({
  kind: 'kafka',
  brokers: ['kafka-0:9092', 'kafka-1:9092'],
  prefix: 'tf',
  queue: 'emails',
  ...extra,
});

describe('ProbePool: one Kafka client per distinct connection', () => {
  test('queues on the same brokers, TLS, credentials and prefix share one; any difference makes another', async () => {
    const pool = new ProbePool();
    const sasl = { mechanism: 'scram-sha-512' as const, username: 'u', password: 'p1' };
    const a = pool.kafkaBroker(target({ sasl }));
    assert.equal(pool.kafkaBroker(target({ sasl: { ...sasl }, queue: 'reports' })), a, 'another queue');
    for (const other of [
      target({ sasl: { ...sasl, password: 'p2' } }),
      target({ sasl: { ...sasl, mechanism: 'plain' } }),
      target({ sasl, prefix: 'shop' }),
      target({ sasl, brokers: ['kafka-0:9092'] }),
      target({ sasl, tls: true }),
      target({ sasl, tls: { ca: 'PEM' } }),
      target(),
    ]) {
      assert.notEqual(pool.kafkaBroker(other), a, JSON.stringify(other));
    }
    assert.equal(pool.size, 8);
    assert.equal(a.prefix, 'tf');
    assert.deepEqual(a.options.sasl, sasl);
    await pool.close();
    assert.equal(pool.size, 0);
  });

  test('a client nobody used for idleMs is closed and replaced on its next use', async () => {
    const pool = new ProbePool({ idleMs: 20 });
    const a = pool.kafkaBroker(target());
    const b = pool.kafkaBroker(target({ prefix: 'other' }));
    assert.equal(pool.kafkaBroker(target()), a, 'still fresh');
    await sleep(40);
    const c = pool.kafkaBroker(target());
    assert.notEqual(c, a);
    assert.equal(pool.size, 1, 'both idle clients were closed');
    assert.notEqual(pool.kafkaBroker(target({ prefix: 'other' })), b);
    await pool.close();
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
