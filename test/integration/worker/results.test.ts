import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setImmediate as nextTick } from 'node:timers/promises';
import { Taskfleet } from 'taskfleet';
import { startWorker, testApp } from '../../support/app.ts';

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
