import { randomUUID } from 'node:crypto';
import { after } from 'node:test';
import { Taskfleet, type TaskfleetOptions, Worker, type WorkerOptions } from 'taskfleet';
import { silentLogger } from '../../worker/src/observe/logger.ts';
import { useRedis } from './stack.ts';

/**
 * An app on the stack's Redis with its own key prefix and queue, so tests never see each other's
 * tasks; closed (with every worker started through it) when the test file ends.
 */
export async function testApp(options: TaskfleetOptions = {}): Promise<Taskfleet> {
  const { url } = await useRedis();
  const app = new Taskfleet({
    broker: url,
    backend: url,
    prefix: `test-${randomUUID().slice(0, 8)}`,
    defaultQueue: `q-${randomUUID().slice(0, 8)}`,
    ...options,
  });
  after(() => app.close());
  return app;
}

/** A started worker, stopped when the test file ends. */
export async function startWorker(app: Taskfleet, options: WorkerOptions = {}): Promise<Worker> {
  const worker = new Worker(app, { logger: silentLogger, visibilityTimeout: 2000, ...options });
  await worker.start();
  after(() => worker.stop({ graceMs: 1000 }));
  return worker;
}
