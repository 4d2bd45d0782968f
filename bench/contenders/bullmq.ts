import { Queue, Worker } from 'bullmq';
import type { ChildConfig, Producer, StartConsumer } from '../support/protocol.ts';

/**
 * BullMQ with its defaults: a completed job is kept (removeOnComplete unset, so the job hash stays
 * and its id joins the completed set), a failed one too; stalled checks every 30 s, lock 30 s.
 */
export function producer(host: string, port: number, queue: string): Producer {
  const q = new Queue(queue, { connection: { host, port } });
  return {
    async bulk(count, chunk) {
      for (let i = 0; i < count; i += chunk) {
        await q.addBulk(
          Array.from({ length: Math.min(chunk, count - i) }, (_, j) => ({ name: 'noop', data: { arg: i + j } })),
        );
      }
    },
    async one(arg) {
      await q.add('noop', { arg });
    },
    close: () => q.close(),
  };
}

export const startConsumer: StartConsumer = async (config: ChildConfig, hooks) => {
  const worker = new Worker<{ arg: number }>(
    config.queue,
    async (job) => {
      hooks.started(job.data.arg);
    },
    { connection: { host: config.host, port: config.port }, concurrency: config.concurrency },
  );
  worker.on('completed', () => hooks.completed(true));
  worker.on('failed', () => hooks.completed(false));
  worker.on('error', (error) => process.stderr.write(`bullmq worker: ${error.message}\n`));
  await worker.waitUntilReady();
  return () => worker.close();
};
