import assert from 'node:assert/strict';
import { test } from 'node:test';
import { version } from 'taskfleet';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { gate, keysOf, probe, redisOf, sample } from '../../support/worker-tools.ts';

test('/metrics counts outcomes, durations, queue waits, retries, dead letters and in-flight calls', async () => {
  const app = await testApp();
  const queue = app.defaultQueue;
  const release = gate();
  const ok = app.task('ok', () => 'ok');
  const flaky = app.task('flaky', { maxRetries: 1, retryDelay: 10 }, () => {
    throw new Error('always');
  });
  const slow = app.task('slow', async () => {
    await release.opened;
    return 'slow';
  });
  const worker = await startWorker(app, { metricsPort: 0, concurrency: 4 });
  const metrics = async () => (await probe(worker, '/metrics')).body;

  const info = sample(await metrics(), 'taskfleet_worker_info', { queue, version, concurrency: '4' });
  assert.equal(info, 1);
  assert.equal((await probe(worker, '/healthz')).status, 200);
  assert.equal((await probe(worker, '/readyz')).status, 200);
  assert.equal((await probe(worker, '/nothing-here')).status, 404);

  await Promise.all([(await ok.delay()).get({ timeout: 10_000 }), (await ok.delay()).get({ timeout: 10_000 })]);
  await assert.rejects((await flaky.delay()).get({ timeout: 10_000 }), /always/);
  await redisOf(app).xadd(keysOf(app).lanes[1], '*', 'm', 'not json');
  const running = await slow.delay();
  await eventually('the slow call to be in flight', async () => {
    return sample(await metrics(), 'taskfleet_tasks_in_flight', { queue }) === 1;
  });

  const text = await eventually('every count to be in', async () => {
    const text = await metrics();
    return sample(text, 'taskfleet_dead_letters_total', { queue, reason: 'malformed' }) === 1 &&
      sample(text, 'taskfleet_tasks_total', { queue, task: 'flaky', outcome: 'failure' }) === 1 &&
      sample(text, 'taskfleet_tasks_total', { queue, task: 'ok', outcome: 'success' }) === 2
      ? text
      : undefined;
  });
  assert.equal(sample(text, 'taskfleet_tasks_total', { queue, task: 'flaky', outcome: 'retry' }), 1);
  assert.equal(sample(text, 'taskfleet_task_retries_total', { queue, task: 'flaky' }), 1);
  assert.equal(sample(text, 'taskfleet_task_duration_seconds_count', { queue, task: 'ok' }), 2);
  assert.equal(sample(text, 'taskfleet_task_duration_seconds_count', { queue, task: 'flaky' }), 2, 'both attempts');
  assert.equal(sample(text, 'taskfleet_task_queue_wait_seconds_count', { queue, task: 'ok' }), 2);
  assert.equal(sample(text, 'taskfleet_task_queue_wait_seconds_count', { queue, task: 'slow' }), 1);
  assert.ok((sample(text, 'taskfleet_task_queue_wait_seconds_sum', { queue, task: 'ok' }) ?? -1) >= 0);
  assert.ok(!/task_?id|[0-9a-f]{8}-[0-9a-f]{4}-/.test(text), 'no label carries a task id');

  release.open();
  assert.equal(await running.get({ timeout: 10_000 }), 'slow');
  await eventually('nothing to be in flight', async () => {
    return sample(await metrics(), 'taskfleet_tasks_in_flight', { queue }) === 0;
  });
});

test('control.workers() lists a live worker with the calls it is running, and forgets it when it stops', async () => {
  const app = await testApp();
  const release = gate();
  const slow = app.task('slow', async () => {
    await release.opened;
    return 'slow';
  });
  const worker = await startWorker(app, { concurrency: 3, heartbeatInterval: 50 });
  const running = await slow.delay();
  const beat = await eventually('a heartbeat showing the running call', async () => {
    const beat = (await app.control.workers()).find((w) => w.id === worker.id);
    return beat?.active.length === 1 ? beat : undefined;
  });
  assert.equal(beat.queue, app.defaultQueue);
  assert.equal(beat.concurrency, 3);
  assert.equal(beat.pid, process.pid);
  assert.equal(beat.version, version);
  assert.deepEqual(
    beat.active.map((a) => ({ id: a.id, task: a.task, attempt: a.attempt })),
    [{ id: running.id, task: 'slow', attempt: 1 }],
  );
  release.open();
  await running.get({ timeout: 10_000 });
  const idle = await eventually('a heartbeat after the call', async () => {
    const beat = (await app.control.workers()).find((w) => w.id === worker.id);
    return beat?.active.length === 0 && beat.processed.success === 1 ? beat : undefined;
  });
  assert.equal(idle.reserved, 0);
  await worker.stop();
  assert.deepEqual(await app.control.workers(), [], 'a stopped worker leaves the list at once');
});
