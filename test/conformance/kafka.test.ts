import { randomUUID } from 'node:crypto';
import { Kafka, logLevel } from 'kafkajs';
import { KafkaBroker } from '../../worker/src/brokers/kafka/broker.ts';
import { kafka as definition } from '../../worker/src/brokers/kafka/definition.ts';
import { useKafka } from '../support/stack.ts';
import { describeBrokerConformance } from './broker-conformance.ts';

describeBrokerConformance(
  'KafkaBroker',
  async () => {
    const { brokers } = await useKafka();
    // A prefix of its own, so this run's topics and groups are apart from every other test's.
    const prefix = `conformance-${randomUUID().slice(0, 8)}`;
    const broker = new KafkaBroker({ brokers, prefix, partitions: 3 });
    const kafka = new Kafka({ clientId: 'conformance', brokers, logLevel: logLevel.NOTHING });
    const producer = kafka.producer();
    await producer.connect();
    return {
      broker,
      definition,
      url: `kafka://${brokers.join(',')}`,
      queue: () => `q-${randomUUID().slice(0, 8)}`,
      async injectRaw(queue, text) {
        // With the task header, as an old producer or another language would send it.
        await producer.send({
          topic: (await broker.topics(queue)).main,
          messages: [{ value: text, headers: { task: 'conformance.echo' } }],
        });
      },
      async cleanup() {
        await producer.disconnect();
        const admin = await broker.admin();
        const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`));
        await broker.close();
        const cleaner = kafka.admin();
        await cleaner.connect();
        if (topics.length > 0) await cleaner.deleteTopics({ topics });
        await cleaner.disconnect();
      },
    };
  },
  // Kafka has no priorities: the priority test checks that every message still arrives once.
  { priorities: false },
);
