import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TaskRevokedError } from 'taskfleet';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { gate, keysOf, redisOf } from '../../support/worker-tools.ts';

/** Long enough that a handoff by recovery (a dead consumer's calls) cannot explain what a test sees. */
const LONG_VISIBILITY = 60_000;

test('stop: calls not yet started go to another worker at once; a running call finishes and is recorded once', async () => {
  const app = await testApp();
  const release = gate();
  const runs = new Map<string, number>();
  const count = (id: string) => runs.set(id, (runs.get(id) ?? 0) + 1);
  const slow = app.task('slow', async (ctx) => {
    count(ctx.id);
    await release.opened;
    return 'slow done';
  });
  const quick = app.task('quick', (ctx) => {
    count(ctx.id);
    return 'quick done';
  });
  const first = await startWorker(app, {
    concurrency: 1,
    prefetch: 3,
    visibilityTimeout: LONG_VISIBILITY,
    heartbeatInterval: 50,
  });
  const running = await slow.delay();
  await eventually('the slow call to run', () => first.active === 1);
  const prefetched = await Promise.all([quick.delay(), quick.delay(), quick.delay()]);
  await eventually('the quick calls to be prefetched', async () => (await app.control.workers())[0]?.reserved === 3);

  const stopping = first.stop({ graceMs: 30_000 });
  const second = await startWorker(app, { concurrency: 1, prefetch: 0, visibilityTimeout: LONG_VISIBILITY });
  // The slow call still holds the first worker, so these ran only because they were handed back.
  assert.deepEqual(await Promise.all(prefetched.map((r) => r.get({ timeout: 10_000 }))), Array(3).fill('quick done'));
  for (const r of prefetched) assert.equal((await r.info())?.worker, second.id);
  assert.equal(first.active, 1, 'the slow call is still running on the stopping worker');

  release.open();
  await stopping;
  assert.equal(await running.get({ timeout: 10_000 }), 'slow done');
  assert.equal((await running.info())?.worker, first.id);
  // Anything wrongly handed back by the first worker is queued ahead of this call on the second.
  const sentinel = await quick.delay();
  await sentinel.get({ timeout: 10_000 });
  for (const r of [running, ...prefetched]) assert.equal(runs.get(r.id), 1, `call ${r.id} ran ${runs.get(r.id)} times`);
});

test('stop with a short grace: calls still running are aborted and another worker runs them again', async () => {
  const app = await testApp();
  const runs = new Map<string, number>();
  const reasons: unknown[] = [];
  const stubborn = app.task('stubborn', (ctx) => {
    const run = (runs.get(ctx.id) ?? 0) + 1;
    runs.set(ctx.id, run);
    if (run > 1) return `done on run ${run}`;
    return new Promise<never>(() => {
      ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason));
    });
  });
  const first = await startWorker(app, { concurrency: 2, visibilityTimeout: LONG_VISIBILITY });
  const calls = await Promise.all([stubborn.delay(), stubborn.delay()]);
  await eventually('both calls to run', () => first.active === 2);
  await first.stop({ graceMs: 100 });
  assert.equal(reasons.length, 2, 'both handlers were told through their signal');
  for (const reason of reasons) {
    assert.ok(reason instanceof TaskRevokedError);
    assert.match(reason.message, /abandoned at worker shutdown/);
  }
  for (const r of calls) assert.equal(await r.state(), 'PENDING', 'the stopping worker recorded no outcome');
  // They ran, as a call whose worker died did: handed back counted toward maxDeliveries (field d).
  const lane = (await redisOf(app).xrange(keysOf(app).lanes[1], '-', '+')) as [string, string[]][];
  assert.deepEqual(
    lane.map(([, fields]) => fields.slice(2)),
    [
      ['d', '1'],
      ['d', '1'],
    ],
  );

  const second = await startWorker(app, { visibilityTimeout: LONG_VISIBILITY });
  for (const r of calls) {
    assert.equal(await r.get({ timeout: 10_000 }), 'done on run 2');
    assert.equal((await r.info())?.worker, second.id);
  }
});

test('forceStop ends the grace period at once, handing running calls back', async () => {
  const app = await testApp();
  const runs = new Map<string, number>();
  const t = app.task('long', (ctx) => {
    const run = (runs.get(ctx.id) ?? 0) + 1;
    runs.set(ctx.id, run);
    return run > 1 ? 'second run' : new Promise<never>(() => {});
  });
  const first = await startWorker(app, { visibilityTimeout: LONG_VISIBILITY });
  const call = await t.delay();
  await eventually('the call to run', () => first.active === 1);
  const stopping = first.stop({ graceMs: 600_000 });
  // As on a second SIGTERM: stop() must not wait out the ten-minute grace period.
  await eventually('the stopping worker to stop fetching', () => !first.ready);
  first.forceStop();
  await stopping;
  await startWorker(app, { visibilityTimeout: LONG_VISIBILITY });
  assert.equal(await call.get({ timeout: 10_000 }), 'second run');
});

test('stop hands back calls waiting for a rate limit, so another worker can run them', async () => {
  const app = await testApp();
  const ranOn: string[] = [];
  const limited = app.task('once_a_minute', { rateLimit: '1/m' }, (ctx) => {
    ranOn.push(ctx.id);
    return null;
  });
  const first = await startWorker(app, { visibilityTimeout: LONG_VISIBILITY, heartbeatInterval: 50 });
  const [a, b] = [await limited.delay(), await limited.delay()];
  await eventually('one call to run and one to wait for the limit', async () => {
    const [beat] = await app.control.workers();
    return ranOn.length === 1 && beat?.reserved === 1;
  });
  await first.stop({ graceMs: 1000 });
  // A fresh worker has a permit to give at once: the held call is not lost for a minute.
  await startWorker(app, { visibilityTimeout: LONG_VISIBILITY });
  await Promise.all([a.get({ timeout: 10_000 }), b.get({ timeout: 10_000 })]);
  assert.deepEqual(new Set(ranOn), new Set([a.id, b.id]));
});
