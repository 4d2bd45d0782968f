import { Consumer, Producer as KafkaProducer, type Message, type MessagesStream } from '@platformatic/kafka';
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
 * The same loop on @platformatic/kafka: the consumer's stream, read in batches of what has been fetched
 * (`stream.read()` until it has nothing buffered), each record decoded, then the batch's offsets
 * committed with one `consumer.commit` (autocommit off) before the next batch is read. Fetches are
 * capped as kafkajs's are by default (see FETCH_MAX_BYTES).
 */
export const topicFor = (queue: string): string => queue;
export const groupFor = (queue: string): string => `${queue}-workers`;

export function producer(brokers: string[], queue: string): Producer {
  const client = new KafkaProducer({
    clientId: 'bench-platformatic-producer',
    bootstrapBrokers: brokers,
    autocreateTopics: false,
    acks: -1,
  });
  return {
    async bulk(count, chunk) {
      const value = Buffer.from(noopEnvelope(queue));
      const topic = topicFor(queue);
      for (let i = 0; i < count; i += chunk) {
        const messages = Array.from({ length: Math.min(chunk, count - i) }, (_, j) => ({
          topic,
          value,
          partition: (i + j) % PARTITIONS,
        }));
        await client.send({ messages });
      }
    },
    close: () => client.close(),
  };
}

/** Everything the stream holds now, without waiting. */
function buffered(stream: MessagesStream<Buffer, Buffer, Buffer, Buffer>): Message[] {
  const batch: Message[] = [];
  for (let message = stream.read() as Message | null; message !== null; message = stream.read() as Message | null) {
    batch.push(message);
  }
  return batch;
}

export const startConsumer: StartConsumer = async (config: ChildConfig, hooks) => {
  const consumer = new Consumer({
    clientId: 'bench-platformatic-consumer',
    bootstrapBrokers: config.brokers,
    groupId: config.groupId,
    autocommit: false,
    maxBytes: FETCH_MAX_BYTES,
    maxBytesPerPartition: FETCH_MAX_BYTES_PER_PARTITION,
  });
  // A new group has no committed offsets: start from the earliest, as kafkajs's fromBeginning does.
  const stream = await consumer.consume({
    topics: [config.topic],
    mode: 'committed',
    fallbackMode: 'earliest',
    autocommit: false,
  });
  let stopped = false;
  let wake: (() => void) | undefined;
  // The listener stays attached for the stream's life: the stream fetches only while something listens
  // (`readableFlowing` not null), and a listener added per wait and removed after would stall it.
  stream.on('readable', () => wake?.());
  const loop = (async () => {
    while (!stopped) {
      const batch = buffered(stream);
      if (batch.length === 0) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        continue;
      }
      const next = new Map<string, { topic: string; partition: number; offset: bigint; leaderEpoch: number }>();
      for (const message of batch) {
        JSON.parse(message.value.toString());
        // A committed offset is the next one to read.
        next.set(`${message.topic}:${message.partition}`, {
          topic: message.topic,
          partition: message.partition,
          offset: message.offset + 1n,
          leaderEpoch: message.leaderEpoch,
        });
      }
      await consumer.commit({ offsets: [...next.values()] });
      for (let i = 0; i < batch.length; i++) hooks.completed(true);
    }
  })();
  return async () => {
    stopped = true;
    wake?.();
    await loop;
    await stream.close();
    await consumer.close();
  };
};
