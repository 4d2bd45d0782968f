import { createLogger, Taskfleet, Worker } from 'taskfleet';
import { assertRunsDist } from '../support/compiled.ts';
import { onCompletion } from '../support/completions.ts';
import { type ChildConfig, PARTITIONS, type Producer, type StartConsumer } from './protocol.ts';

/**
 * Taskfleet on Kafka, as users get it (the compiled package, worker/dist): `task.applyBulk` to send,
 * one `Worker` to drain — the Redis bench's contender (bench/contenders/ours.ts) with only the broker
 * URL changed, so the app runs on `KafkaBroker`. There is no result backend (Kafka keeps none), so no result is stored: the worker's
 * work per task is receiving it, running the handler and settling it (the adapter's commits).
 */
const PREFIX = 'bench';
assertRunsDist();

/**
 * The adapter's names (`<prefix>.<queue>` for the topic and the group alike; brokers/kafka/config.ts,
 * which the package does not export): the bench creates the topic first, and reads the group's offsets
 * after, so a name that drifted from the adapter's fails the run's offset check.
 */
export const topicFor = (queue: string): string => `${PREFIX}.${queue}`;
export const groupFor = (queue: string): string => `${PREFIX}.${queue}`;

function appFor(brokers: string[], queue: string): Taskfleet {
  return new Taskfleet({
    broker: `kafka://${brokers.join(',')}?partitions=${PARTITIONS}`,
    prefix: PREFIX,
    defaultQueue: queue,
  });
}

export function producer(brokers: string[], queue: string): Producer {
  const app = appFor(brokers, queue);
  const noop = app.task('noop', (_ctx, _arg: number) => null);
  return {
    async bulk(count, chunk) {
      for (let i = 0; i < count; i += chunk) {
        await noop.applyBulk(Array.from({ length: Math.min(chunk, count - i) }, (_, j): [number] => [i + j]));
      }
    },
    close: () => app.close(),
  };
}

export const startConsumer: StartConsumer = async (config: ChildConfig, hooks) => {
  const app = appFor(config.brokers, config.queue);
  app.task('noop', (_ctx, _arg: number) => null);
  const worker = new Worker(app, {
    concurrency: config.concurrency,
    // 'error': the one warning it would give here is that there is no result backend, which is the setup.
    logger: createLogger('error', {}, (line) => process.stderr.write(line)),
  });
  onCompletion(worker, 'noop', (success) => hooks.completed(success));
  await worker.start();
  return async () => {
    await worker.stop({ graceMs: 1000 });
    await app.close();
  };
};
