import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { startWorker, testApp } from '../../support/app.ts';
import { resetter } from '../../support/black-hole.ts';
import { spawnWorker } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';
import { privateRedis, probe } from '../../support/worker-tools.ts';

const cliTasks = fileURLToPath(new URL('./fixtures/cli.tasks.ts', import.meta.url));

/** A worker on a private Redis with an `echo` task, shown to run one call. */
async function echoWorker() {
  const redis = await privateRedis();
  const { url } = redis.endpoint;
  const app = await testApp({ broker: url, backend: url });
  const echo = app.task('echo', (_ctx, value: string) => value);
  const worker = await startWorker(app, { metricsPort: 0 });
  assert.equal(await (await echo.delay('before')).get({ timeout: 10_000 }), 'before');
  return { redis, url, echo, worker };
}

test('after Redis restarts (empty, on the same port) the worker consumes again by itself; /readyz follows', async () => {
  const { redis, echo, worker } = await echoWorker();
  assert.equal((await probe(worker, '/readyz')).status, 200);

  await redis.stop();
  await eventually(
    '/readyz to report 503 while Redis is down',
    async () => (await probe(worker, '/readyz')).status === 503,
  );
  assert.equal((await probe(worker, '/healthz')).status, 200, 'alive: a restart of the worker would not help');

  await redis.start();
  // Nothing was persisted: the streams and the consumer group are gone, and must be made again.
  const results = await Promise.all(['after-1', 'after-2', 'after-3'].map((v) => echo.delay(v)));
  assert.deepEqual(await Promise.all(results.map((r) => r.get({ timeout: 20_000 }))), [
    'after-1',
    'after-2',
    'after-3',
  ]);
  await eventually('/readyz to report 200 again', async () => (await probe(worker, '/readyz')).status === 200);
  await worker.stop(); // while its Redis still runs (teardown stops that first)
});

test('after its connections are killed (CLIENT KILL) the worker reconnects and consumes again', async () => {
  const { url, echo, worker } = await echoWorker();

  const admin = new Redis(url);
  try {
    // Every connection but this one: the worker's blocking read, its commands, its subscriptions.
    const killed =
      Number(await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes')) +
      Number(await admin.client('KILL', 'TYPE', 'pubsub', 'SKIPME', 'yes'));
    assert.ok(killed >= 3, `killed ${killed} connections`);
    const results = await Promise.all(['after-1', 'after-2'].map((v) => echo.delay(v)));
    assert.deepEqual(await Promise.all(results.map((r) => r.get({ timeout: 20_000 }))), ['after-1', 'after-2']);
    await eventually('/readyz to report 200', async () => (await probe(worker, '/readyz')).status === 200);
    const reader = String(await admin.client('LIST'))
      .split('\n')
      .find((line) => line.includes(`name=taskfleet-read:${worker.id}`));
    assert.ok(reader, 'the blocking read connection is back');
  } finally {
    admin.disconnect();
  }
  await worker.stop(); // while its Redis still runs (teardown stops that first)
});

test('a `taskfleet worker` run through a Redis outage prints only JSON lines, and consumes again after it', async () => {
  const redis = await privateRedis();
  const { url, port } = redis.endpoint;
  const app = await testApp({ broker: url, backend: url });
  const add = app.task('add', (_ctx, _a: number, _b: number): number => {
    throw new Error('this task runs in the worker process');
  });
  const env = {
    TASKFLEET_BROKER: url,
    TASKFLEET_BACKEND: url,
    TASKFLEET_PREFIX: app.prefix,
    TASKFLEET_QUEUE: app.defaultQueue,
  };
  // Its command connection, its blocking read and its revocations' subscriber all reconnect.
  const worker = spawnWorker(['--app', cliTasks, '--metrics-port', '0'], env);
  await worker.log('worker started');
  assert.equal(await (await add.delay(1, 2)).get({ timeout: 10_000 }), 3);

  await redis.stop();
  // Every reconnect attempt fails, each an 'error' event on the connection that made it.
  const resets = await resetter(port);
  await eventually('the worker to fail 9 reconnect attempts', () => resets.resets >= 9);
  await resets.close();
  await redis.start();

  assert.equal(await (await add.delay(2, 3)).get({ timeout: 20_000 }), 5);
  worker.signal('SIGTERM');
  assert.deepEqual(await worker.exit(), { code: 0, signal: null }, worker.output());
  assert.deepEqual(worker.text, [], 'every line the worker printed is a JSON log line');
});
