import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Taskfleet } from 'taskfleet';
import { startWorker, testApp } from '../../support/app.ts';

/** The gaps between consecutive start times, in the order they started. */
function gaps(starts: readonly number[]): number[] {
  const sorted = [...starts].sort((a, b) => a - b);
  return sorted.slice(1).map((t, i) => t - (sorted[i] as number));
}

test("a per-worker rate limit of '10/s' starts calls at least 100 ms apart", async () => {
  const app = await testApp();
  const starts: number[] = [];
  const limited = app.task('limited', { rateLimit: '10/s' }, () => {
    starts.push(Date.now());
    return null;
  });
  const results = await Promise.all(Array.from({ length: 6 }, () => limited.delay()));
  // Plenty of slots: only the limit can space the calls out.
  await startWorker(app, { concurrency: 8 });
  await Promise.all(results.map((r) => r.get({ timeout: 20_000 })));
  assert.equal(starts.length, 6);
  // A permit and the start it allows are read from Date.now() a few microseconds apart, so a start can
  // land on the next millisecond: the limit itself guarantees 100 ms between permits, which is at
  // least 99 ms between starts as Date.now() reports them. Being late (a larger gap) is allowed.
  for (const gap of gaps(starts)) assert.ok(gap >= 99, `calls started ${gap} ms apart: ${gaps(starts).join(', ')}`);
});

test('a rate-limited task never holds up other tasks', async () => {
  const app = await testApp();
  let slowStarted = 0;
  const slow = app.task('slow_api', { rateLimit: '2/s' }, () => {
    slowStarted++;
    return null;
  });
  const fast = app.task('fast', () => 'fast');
  const backlog = await Promise.all(Array.from({ length: 20 }, () => slow.delay()));
  const unlimited = await fast.delay();
  await startWorker(app, { concurrency: 2, prefetch: 2 });
  assert.equal(await unlimited.get({ timeout: 10_000 }), 'fast');
  // Draining the backlog at 2/s takes ~10 s; the unlimited call, sent last, did not wait for it.
  assert.ok(slowStarted < 10, `${slowStarted} of 20 rate-limited calls started before the unlimited one finished`);
  const [first] = backlog;
  await first!.get({ timeout: 10_000 }); // the backlog is still served
  await app.broker.purge(app.defaultQueue);
});

test("a global rate limit is shared: two workers together start calls at most '5/s'", async () => {
  const app = await testApp();
  // A second app on the same prefix and queue: another worker process of the same fleet.
  const other = new Taskfleet({
    broker: app.brokerUrl,
    backend: app.backendUrl,
    prefix: app.prefix,
    defaultQueue: app.defaultQueue,
  });
  const starts: { at: number; worker: string }[] = [];
  for (const [name, fleetApp] of [
    ['a', app],
    ['b', other],
  ] as const) {
    fleetApp.task('shared_limit', { rateLimit: '5/s', rateLimitScope: 'global' }, () => {
      starts.push({ at: Date.now(), worker: name });
      return name;
    });
  }
  const task = app.definition('shared_limit');
  const results = await Promise.all(Array.from({ length: 8 }, () => app.send(task, [], {})));
  const workers = [
    await startWorker(app, { concurrency: 4, prefetch: 1 }),
    await startWorker(other, { concurrency: 4, prefetch: 1 }),
  ];
  const ranOn = await Promise.all(results.map((r) => r.get({ timeout: 30_000 })));
  await Promise.all(workers.map((w) => w.stop()));
  await other.close();
  assert.deepEqual(new Set(ranOn), new Set(['a', 'b']), 'both workers took part');
  // Permits are granted 200 ms apart on Redis's clock; a start follows its permit by one round trip,
  // whose length varies, more so on a busy machine. Two workers each limited on its own would start
  // calls at most 100 ms apart at least once (two interleaved 200 ms rhythms), so 150 ms still tells
  // the two apart while allowing 50 ms of that variation.
  const g = gaps(starts.map((s) => s.at));
  for (const gap of g) assert.ok(gap >= 150, `calls started ${gap} ms apart: ${g.join(', ')}`);
});
