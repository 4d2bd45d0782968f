import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { gate } from '../../support/worker-tools.ts';

/** Priorities 0–2 are urgent, 3–6 normal, 7–9 low; within a lane, calls run in the order sent. */
const lane = (priority: number) => (priority <= 2 ? 0 : priority <= 6 ? 1 : 2);
const mixed = [9, 5, 0, 7, 4, 2, 8, 6, 1, 3, 5, 0];
const expected = [0, 1, 2].flatMap((l) => mixed.filter((p) => lane(p) === l));

for (const prefetch of [0, 2]) {
  test(`urgent calls run before normal ones, and normal before low (concurrency 1, prefetch ${prefetch})`, async () => {
    const app = await testApp();
    const order: number[] = [];
    const t = app.task('prioritised', (_ctx, priority: number) => {
      order.push(priority);
      return priority;
    });
    const results = [];
    for (const priority of mixed) results.push(await t.applyAsync([priority], { priority }));
    // Started after everything is queued, so it chooses among all of them from its first read.
    await startWorker(app, { concurrency: 1, prefetch });
    await Promise.all(results.map((r) => r.get({ timeout: 10_000 })));
    assert.deepEqual(order, expected);
  });
}

test('an urgent call sent behind a backlog of normal ones runs next', async () => {
  const app = await testApp();
  const blocker = gate();
  const order: string[] = [];
  const block = app.task('block', async () => {
    await blocker.opened;
    return null;
  });
  const t = app.task('record', (_ctx, name: string) => {
    order.push(name);
    return name;
  });
  const worker = await startWorker(app, { concurrency: 1, prefetch: 0 });
  await block.delay();
  await eventually('the blocker to run', () => worker.active === 1);
  const normal = [];
  for (const name of ['n1', 'n2', 'n3']) normal.push(await t.delay(name));
  const low = await t.applyAsync(['low'], { priority: 9 });
  const urgent = await t.applyAsync(['urgent'], { priority: 0 });
  blocker.open();
  await Promise.all([...normal, low, urgent].map((r) => r.get({ timeout: 10_000 })));
  assert.deepEqual(order, ['urgent', 'n1', 'n2', 'n3', 'low']);
});
