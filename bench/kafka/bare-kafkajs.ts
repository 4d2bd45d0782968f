import { Kafka, logLevel } from 'kafkajs';
import { noopEnvelope } from '../support/envelope.ts';
import {
  type ChildConfig,
  FETCH_MAX_BYTES,
  FETCH_MAX_BYTES_PER_PARTITION,
  PARTITIONS,
  type Producer,
  type StartConsumer,
} from './protocol.ts';

/**
 * The ceiling: a kafkajs consumer that does only what any consumer of a task topic must — decode each
 * record, then commit the batch's offsets before taking the next (`eachBatch`, `autoCommit: false`,
 * one `commitOffsets` per batch). No results, no retries, no bookkeeping.
 */
export const topicFor = (queue: string): string => queue;
export const groupFor = (queue: string): string => `${queue}-workers`;

const kafkaFor = (brokers: string[], clientId: string) => new Kafka({ clientId, brokers, logLevel: logLevel.ERROR });

export function producer(brokers: string[], queue: string): Producer {
  const kafka = kafkaFor(brokers, 'bench-kafkajs-producer');
  const client = kafka.producer({ allowAutoTopicCreation: false });
  return {
    async bulk(count, chunk) {
      await client.connect();
      const value = Buffer.from(noopEnvelope(queue));
      for (let i = 0; i < count; i += chunk) {
        // The partition is set, so both bare producers spread records alike, whatever their partitioners do.
        const messages = Array.from({ length: Math.min(chunk, count - i) }, (_, j) => ({
          value,
          partition: (i + j) % PARTITIONS,
        }));
        await client.send({ topic: topicFor(queue), acks: -1, messages });
      }
    },
    close: () => client.disconnect(),
  };
}

export const startConsumer: StartConsumer = async (config: ChildConfig, hooks) => {
  const consumer = kafkaFor(config.brokers, 'bench-kafkajs-consumer').consumer({
    groupId: config.groupId,
    maxBytes: FETCH_MAX_BYTES,
    maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION,
  });
  await consumer.connect();
  await consumer.subscribe({ topic: config.topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, resolveOffset }) => {
      const last = batch.messages.at(-1);
      if (!last) return;
      for (const message of batch.messages) {
        JSON.parse(message.value?.toString() ?? 'null');
        resolveOffset(message.offset);
      }
      // A committed offset is the next one to read.
      const offset = (BigInt(last.offset) + 1n).toString();
      await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset }]);
      for (let i = 0; i < batch.messages.length; i++) hooks.completed(true);
    },
  });
  return () => consumer.disconnect();
};
