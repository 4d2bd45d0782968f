/**
 * A queue's lag as Kafka's own admin API reports it, computed here without the adapter's code: per
 * partition, from the group's committed offset — or, when the group never committed, from the log start
 * (the workers' reset policy is earliest) — to the high watermark, less the records the commit metadata
 * lists as finished (`d:`) or handed out (`k:`) above it. Tests compare the operator's numbers with it.
 */
import type { Admin } from 'kafkajs';
import type { Delivery } from 'taskfleet';
import { KafkaBroker } from '../../worker/src/brokers/kafka/broker.ts';

export interface KafkaLag {
  /** Records no consumer holds: in the main topic (ready) and the delay topic (delayed). */
  waiting: { main: number; delay: number };
  /** Handed out to a worker and not finished (in flight). */
  handed: number;
  /** Partitions of the main topic. */
  partitions: number;
  /** Partitions of the main topic with an offset committed by the group. */
  committedPartitions: number;
  /** Σ high watermarks: records ever written. */
  added: number;
  /** Σ the start of the lag plus what the metadata lists above it: records ever taken. */
  taken: number;
}

/** An admin call again while Kafka answers with a retriable error (a group coordinator still loading). */
export async function retrying<T>(call: () => Promise<T>, ms = 10_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      return await call();
    } catch (error) {
      if (!(error as { retriable?: boolean }).retriable || Date.now() > deadline) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

/** The offsets listed under `k:` or `d:` in commit metadata such as `k:3-5*2,9;d:7`. */
export function offsetsIn(metadata: string | null | undefined, kind: 'k' | 'd'): number[] {
  const list = (metadata ?? '').split(';').find((part) => part.startsWith(`${kind}:`));
  return (list?.slice(2) ?? '')
    .split(',')
    .filter(Boolean)
    .flatMap((range) => {
      const [from = 0, to = from] = (range.split('*')[0] ?? '').split('-').map(Number);
      return Array.from({ length: to - from + 1 }, (_, i) => from + i);
    });
}

/** The lag of `<prefix>.<queue>` and its delay topic for the group `<prefix>.<queue>`. */
export async function kafkaLag(admin: Admin, prefix: string, queue: string): Promise<KafkaLag> {
  const main = `${prefix}.${queue}`;
  const lag: KafkaLag = {
    waiting: { main: 0, delay: 0 },
    handed: 0,
    partitions: 0,
    committedPartitions: 0,
    added: 0,
    taken: 0,
  };
  for (const [name, topic] of [
    ['main', main],
    ['delay', `${main}.delay`],
  ] as const) {
    const offsets = await admin.fetchTopicOffsets(topic);
    const [committed] = await retrying(() => admin.fetchOffsets({ groupId: main, topics: [topic] }));
    if (name === 'main') lag.partitions = offsets.length;
    for (const { partition, high, low } of offsets) {
      const c = committed?.partitions.find((p) => p.partition === partition);
      const offset = Number(c?.offset ?? -1);
      if (offset >= 0 && name === 'main') lag.committedPartitions++;
      const start = Math.max(offset >= 0 ? offset : Number(low), Number(low));
      const above = (o: number) => o >= start && o < Number(high);
      const finished = offsetsIn(c?.metadata, 'd').filter(above).length;
      const handed = offsetsIn(c?.metadata, 'k').filter(above).length;
      lag.waiting[name] += Number(high) - start - finished - handed;
      lag.handed += handed;
      lag.added += Number(high);
      lag.taken += start + finished + handed;
    }
  }
  return lag;
}

/**
 * A consumer that takes `take` records of the queue, finishes (acks) the first `finish` of them and
 * closes, leaving the others handed out and unsettled: in flight until the partition's next owner.
 */
export async function takePartway(
  brokers: string[],
  prefix: string,
  queue: string,
  { take, finish }: { take: number; finish: number },
): Promise<void> {
  const broker = new KafkaBroker({ brokers, prefix });
  try {
    const consumer = await broker.consume(queue, { consumer: 'x' });
    const received: Delivery[] = [];
    const signal = AbortSignal.timeout(30_000);
    while (received.length < take) received.push(...(await consumer.receive(take - received.length, signal)));
    for (const delivery of received.slice(0, finish)) await consumer.settle(delivery, { kind: 'ack' });
    await consumer.close();
  } finally {
    await broker.close();
  }
}
