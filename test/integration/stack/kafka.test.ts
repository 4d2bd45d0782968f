import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { type Admin, Kafka, logLevel } from 'kafkajs';
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
