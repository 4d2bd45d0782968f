import { createLogger, Taskfleet, Worker } from 'taskfleet';
import { assertRunsDist } from '../support/compiled.ts';
import { onCompletion } from '../support/completions.ts';
import type { ChildConfig, Producer, StartConsumer } from '../support/protocol.ts';

/**
 * Taskfleet as users get it by default: the compiled package (worker/dist), a result backend on the
 * broker's Redis, results stored (the task history off, as by default, unless the config turns it on).
 */
const PREFIX = 'bench';
assertRunsDist();

function appFor(host: string, port: number, queue: string, history = false): Taskfleet {
  const url = `redis://${host}:${port}`;
  return new Taskfleet({ broker: url, backend: url, prefix: PREFIX, defaultQueue: queue, history });
}

export function producer(host: string, port: number, queue: string): Producer {
  const app = appFor(host, port, queue);
  const noop = app.task('noop', (_ctx, _arg: number) => null);
  return {
    async bulk(count, chunk) {
      for (let i = 0; i < count; i += chunk) {
        await noop.applyBulk(Array.from({ length: Math.min(chunk, count - i) }, (_, j): [number] => [i + j]));
      }
    },
    async one(arg) {
      await noop.delay(arg);
    },
    close: () => app.close(),
  };
}

export const startConsumer: StartConsumer = async (config: ChildConfig, hooks) => {
  const app = appFor(config.host, config.port, config.queue, config.history ?? false);
  app.task('noop', { ignoreResult: config.ignoreResult }, (_ctx, arg: number) => {
    hooks.started(arg);
    return null;
  });
  const worker = new Worker(app, {
    concurrency: config.concurrency,
    logger: createLogger('warn', {}, (line) => process.stderr.write(line)),
  });
  onCompletion(worker, 'noop', (success) => hooks.completed(success));
  await worker.start();
  return async () => {
    await worker.stop({ graceMs: 1000 });
    await app.close();
  };
};
