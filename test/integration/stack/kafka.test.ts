import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { type Admin, Kafka, type KafkaConfig, logLevel, type SASLOptions } from 'kafkajs';
import { useKafka } from '../../support/stack.ts';

let kafka: Kafka;
let admin: Admin;
before(async () => {
  kafka = new Kafka({ clientId: 'smoke', brokers: (await useKafka()).brokers, logLevel: logLevel.NOTHING });
  admin = kafka.admin();
  await admin.connect();
});
after(() => admin.disconnect());

test('the stack runs a real Kafka 4 broker in KRaft mode', async () => {
  const cluster = await admin.describeCluster();
  assert.equal(cluster.brokers.length, 1);
  assert.ok(cluster.controller !== null);
  assert.match((await useKafka()).version, /^4\./);
});

test('a 6-partition topic: produce, consume in a group, and read the committed offsets', async () => {
  const topic = `smoke-${randomUUID()}`;
  const groupId = `smoke-${randomUUID()}`;
  assert.equal(await admin.createTopics({ topics: [{ topic, numPartitions: 6 }], waitForLeaders: true }), true);
  const [metadata] = (await admin.fetchTopicMetadata({ topics: [topic] })).topics;
  assert.equal(metadata?.partitions.length, 6);

  const producer = kafka.producer();
  await producer.connect();
  const total = 60;
  await producer.send({
    topic,
    messages: Array.from({ length: total }, (_, i) => ({ key: `k${i}`, value: String(i), partition: i % 6 })),
  });
  await producer.disconnect();

  const consumer = kafka.consumer({ groupId });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  const seen = new Set<string>();
  const all = Promise.withResolvers<void>();
  await consumer.run({
    eachMessage: async ({ message }) => {
      seen.add(String(message.value));
      if (seen.size === total) all.resolve();
    },
  });
  await all.promise;
  await consumer.disconnect(); // commits what was consumed

  assert.equal(seen.size, total);
  const [offsets] = await admin.fetchOffsets({ groupId, topics: [topic] });
  assert.equal(offsets?.partitions.length, 6);
  for (const partition of offsets?.partitions ?? [])
    assert.equal(partition.offset, '10', `partition ${partition.partition}`);
  await admin.deleteTopics({ topics: [topic] });
});

test('a consumer may use a session timeout of 1 s (the broker allows down to 500 ms)', async () => {
  const topic = `smoke-${randomUUID()}`;
  await admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
  // A short fetch wait: disconnecting waits out the fetch in flight, which the empty topic would hold for 5 s.
  const consumer = kafka.consumer({
    groupId: `smoke-${randomUUID()}`,
    sessionTimeout: 1000,
    heartbeatInterval: 200,
    maxWaitTimeInMs: 100,
  });
  // `run` resolves before the group is joined; a refused join (INVALID_SESSION_TIMEOUT) crashes the consumer.
  const joined = new Promise<void>((resolve, reject) => {
    consumer.on(consumer.events.GROUP_JOIN, () => resolve());
    consumer.on(consumer.events.CRASH, ({ payload }) => reject(payload.error));
  });
  await consumer.connect();
  try {
    await consumer.subscribe({ topic });
    await consumer.run({ eachMessage: async () => {} });
    await joined;
  } finally {
    await consumer.disconnect();
    await admin.deleteTopics({ topics: [topic] });
  }
});

for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
  test(`SASL ${mechanism}: the stack's user produces and consumes; a wrong password is refused`, async () => {
    const { sasl } = await useKafka();
    assert.ok(sasl.mechanisms.includes(mechanism));
    // kafkajs types each mechanism apart; a union of mechanisms does not narrow to one of them.
    const login = (password: string) => ({ mechanism, username: sasl.username, password }) as SASLOptions;
    assert.equal(await roundTrip({ brokers: sasl.brokers, sasl: login(sasl.password) }), 'hello');

    await assert.rejects(refused({ brokers: sasl.brokers, sasl: login(`${sasl.password}x`) }), {
      name: 'KafkaJSSASLAuthenticationError',
    });
  });
}

test('TLS: a client trusting only the stack CA produces and consumes; one trusting the public CAs is refused', async () => {
  const { tls } = await useKafka();
  const ca = await readFile(tls.caFile, 'utf8');
  assert.equal(await roundTrip({ brokers: tls.brokers, ssl: { ca: [ca] } }), 'hello');

  await assert.rejects(refused({ brokers: tls.brokers, ssl: true }), /unable to verify the first certificate/);
});

/** How to reach one listener of the broker. */
type ListenerConfig = Pick<KafkaConfig, 'brokers' | 'sasl' | 'ssl'>;

/** Connects an admin client that gives up at the first failure: the refusal is what the tests look for. */
function refused(config: ListenerConfig): Promise<void> {
  return new Kafka({ ...config, clientId: 'smoke', logLevel: logLevel.NOTHING, retry: { retries: 0 } })
    .admin()
    .connect();
}

/** Through one listener only: create a topic, produce a message and consume it in a group. */
async function roundTrip(config: ListenerConfig): Promise<string> {
  const through = new Kafka({ ...config, clientId: 'smoke', logLevel: logLevel.NOTHING });
  const topic = `smoke-${randomUUID()}`;
  const admin = through.admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [{ topic }], waitForLeaders: true });
    const producer = through.producer();
    await producer.connect();
    await producer.send({ topic, messages: [{ value: 'hello' }] });
    await producer.disconnect();
    const consumer = through.consumer({ groupId: `smoke-${randomUUID()}` });
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    const received = Promise.withResolvers<string>();
    await consumer.run({ eachMessage: async ({ message }) => received.resolve(String(message.value)) });
    const value = await received.promise;
    await consumer.disconnect();
    await admin.deleteTopics({ topics: [topic] });
    return value;
  } finally {
    await admin.disconnect();
  }
}
