/**
 * What the operator's probe reads from Kafka, checked against Kafka's own numbers: the lag that
 * `KafkaBroker.backlog()` reports (and the ProbePool hands the scaling policy) must equal what kafkajs'
 * admin says — high watermarks, log start offsets, and the group's committed offsets with their commit
 * metadata — for a group that never committed (it reads from the earliest retained record), one whose
 * consumers committed part of the way, and through the SASL and TLS listeners.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { KafkaBroker } from 'taskfleet/operator';
import { ProbePool } from '../../../operator/src/probes/probe.ts';
import { createEnvelope } from '../../../worker/src/message/envelope.ts';
import { kafkaLag, takePartway } from '../../support/kafka-lag.ts';
import { useKafka } from '../../support/stack.ts';

const endpoint = await useKafka();
const { brokers } = endpoint;
const prefix = `probe-${randomUUID().slice(0, 8)}`;
const publisher = new KafkaBroker({ brokers, prefix, partitions: 4 });
const pool = new ProbePool();
const admin = new Kafka({ clientId: 'probe-test', brokers, logLevel: logLevel.NOTHING }).admin();
await admin.connect();
after(async () => {
  await pool.close();
  await publisher.close();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

const newQueue = () => `q-${randomUUID().slice(0, 8)}`;
const target = (queue: string) => ({ kind: 'kafka' as const, brokers, prefix, queue });

/**
 * Sends `count` calls. Counts are read back from Kafka rather than assumed: on a topic just created, the
 * adapter's producer (not idempotent) may write part of a batch twice, when a produce answered
 * NOT_LEADER_OR_FOLLOWER for one partition is retried whole.
 */
async function publish(queue: string, count: number, extra: { eta?: number } = {}): Promise<void> {
  await publisher.publish(
    Array.from({ length: count }, (_, i) => createEnvelope({ task: 'noop', args: [i], queue, ...extra })),
  );
}

test('a topic not created yet: nothing to do, and no partition count', async () => {
  const { backlog } = await pool.read(target(newQueue()));
  assert.deepEqual(backlog, { ready: 0, delayed: 0, due: 0, inFlight: 0, added: 0, delivered: 0 });
});

test('a group that never committed: the lag is high − low, from the earliest retained record', async () => {
  const queue = newQueue();
  await publish(queue, 40);
  await publish(queue, 6, { eta: Date.now() + 3_600_000 });

  const lag = await kafkaLag(admin, prefix, queue);
  assert.equal(lag.committedPartitions, 0, 'no offset committed');
  assert.equal(lag.partitions, 4);
  assert.ok(lag.waiting.main >= 40 && lag.waiting.delay >= 6, JSON.stringify(lag));
  const { backlog } = await pool.read(target(queue));
  assert.deepEqual(backlog, {
    ready: lag.waiting.main,
    delayed: lag.waiting.delay,
    due: 0,
    inFlight: 0,
    added: lag.added,
    delivered: lag.taken,
    partitions: 4,
  });

  // Retention (here delete-records) raises the log start: what is gone is no longer lag.
  const main = `${prefix}.${queue}`;
  const before = await admin.fetchTopicOffsets(main);
  const cut = before
    .filter((p) => Number(p.high) >= 2)
    .map((p) => ({ partition: p.partition, offset: String(Number(p.low) + 2) }));
  assert.ok(cut.length >= 2, 'records on at least two partitions');
  await admin.deleteTopicRecords({ topic: main, partitions: cut });
  const raised = await admin.fetchTopicOffsets(main);
  assert.equal(
    raised.reduce((sum, p) => sum + Number(p.low), 0),
    cut.length * 2,
    'the log start moved',
  );

  const trimmed = await kafkaLag(admin, prefix, queue);
  assert.equal(trimmed.waiting.main, lag.waiting.main - cut.length * 2);
  const read = (await pool.read(target(queue))).backlog;
  assert.deepEqual([read.ready, read.delayed, read.inFlight], [trimmed.waiting.main, lag.waiting.delay, 0]);
  assert.equal(read.added, trimmed.added, 'high watermarks do not move');
});

test('a group that committed part of the way: Σ(high − committed) less what its metadata lists finished or handed out', async () => {
  const queue = newQueue();
  await publish(queue, 40);
  const written = (await kafkaLag(admin, prefix, queue)).waiting.main;
  // 12 taken, 5 finished: the other 7 are left handed out and unsettled.
  await takePartway(brokers, prefix, queue, { take: 12, finish: 5 });

  const lag = await kafkaLag(admin, prefix, queue);
  assert.ok(lag.committedPartitions > 0, 'the consumer committed');
  assert.deepEqual(
    { waiting: lag.waiting.main, handed: lag.handed },
    { waiting: written - 12, handed: 12 - 5 },
    'what the test did, read back from the committed offsets and metadata',
  );
  const { backlog } = await pool.read(target(queue));
  assert.deepEqual(backlog, {
    ready: lag.waiting.main,
    delayed: 0,
    due: 0,
    inFlight: lag.handed,
    added: lag.added,
    delivered: lag.taken,
    partitions: 4,
  });
});

test('the same lag through the SASL and TLS listeners, each with a client of its own; wrong credentials are refused', async () => {
  const queue = newQueue();
  await publish(queue, 9);
  const plain = (await pool.read(target(queue))).backlog;
  const size = pool.size;
  const { sasl, tls } = endpoint;
  const mechanism = sasl.mechanisms.includes('scram-sha-512') ? 'scram-sha-512' : (sasl.mechanisms[0] ?? 'plain');
  const viaSasl = await pool.read({
    ...target(queue),
    brokers: sasl.brokers,
    sasl: { mechanism, username: sasl.username, password: sasl.password },
  });
  const viaTls = await pool.read({
    ...target(queue),
    brokers: tls.brokers,
    tls: { ca: await readFile(tls.caFile, 'utf8') },
  });
  assert.deepEqual(viaSasl.backlog, plain);
  assert.deepEqual(viaTls.backlog, plain);
  assert.equal(pool.size, size + 2);
  await assert.rejects(
    pool.read({
      ...target(queue),
      brokers: sasl.brokers,
      sasl: { mechanism, username: sasl.username, password: 'wrong' },
    }),
    /credentials|SASL|authentication/i,
  );
});
