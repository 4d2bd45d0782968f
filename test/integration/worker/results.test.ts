import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTick } from 'node:timers/promises';
import { Taskfleet } from 'taskfleet';
import type { RedisBroker } from '../../../worker/src/brokers/redis/broker.ts';
import { appKeys } from '../../../worker/src/brokers/redis/keys.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { useRedis } from '../../support/stack.ts';

test('waiters that start while the result subscription is still connecting all get their result', async () => {
  const app = await testApp();
  const ok = app.task('ok', (_ctx, n: number) => n);
  await startWorker(app);
  const results = await Promise.all(Array.from({ length: 20 }, (_, n) => ok.delay(n)));
  await results.at(-1)!.get({ timeout: 10_000 });
  // A fresh app (a web server just started, say) whose first waiters arrive one event-loop turn apart,
  // so that some subscribe while its subscriber connection is between connected and ready.
  const reader = new Taskfleet({
    broker: app.brokerUrl,
    backend: app.backendUrl,
    prefix: app.prefix,
    defaultQueue: app.defaultQueue,
  });
  try {
    const waits: Promise<unknown>[] = [];
    for (const result of results) {
      waits.push(reader.result(result.id).get({ timeout: 10_000 }));
      await nextTick();
    }
    assert.deepEqual(await Promise.all(waits), [...results.keys()]);
  } finally {
    await reader.close();
  }
});

for (const where of ['the broker’s own Redis', 'another Redis database'] as const) {
  test(`with the backend on ${where}, successes and failures are stored there, read by get(), and acknowledged`, async () => {
    const { url: broker } = await useRedis();
    const backend = where === 'another Redis database' ? new URL('/1', broker).href : broker;
    const app = await testApp({ broker, backend });
    assert.equal(app.backendIsBroker, where === 'the broker’s own Redis');
    const ok = app.task('ok', (_ctx, n: number) => n * 2);
    const bad = app.task('bad', () => {
      throw new Error('no');
    });
    const worker = await startWorker(app);
    const calls = await Promise.all([...Array.from({ length: 200 }, (_, n) => ok.delay(n)), bad.delay()]);
    const values = await Promise.all(calls.slice(0, -1).map((call) => call.get({ timeout: 10_000 })));
    assert.deepEqual(
      values,
      Array.from({ length: 200 }, (_, n) => n * 2),
    );
    await assert.rejects(calls.at(-1)!.get({ timeout: 10_000 }), /no/);
    // Stored where the backend is, not beside the broker's streams unless that is the backend.
    const key = appKeys(app.prefix).result(calls[0]!.id);
    assert.equal(await (app.broker as RedisBroker).redis.exists(key), app.backendIsBroker ? 1 : 0);
    await worker.stop({ graceMs: 1000 });
    const { ready, delayed, inFlight } = await app.broker.backlog(app.defaultQueue);
    assert.deepEqual({ ready, delayed, inFlight }, { ready: 0, delayed: 0, inFlight: 0 }, 'every call acknowledged');
  });
}
