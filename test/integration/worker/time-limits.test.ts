import assert from 'node:assert/strict';
import { test } from 'node:test';
import { SoftTimeLimitExceededError, TaskFailedError, TimeLimitExceededError } from 'taskfleet';
import { startWorker, testApp } from '../../support/app.ts';

test('at the soft time limit the signal aborts; a handler that cleans up and returns succeeds', async () => {
  const app = await testApp();
  let reason: unknown;
  const t = app.task('cleans_up', { softTimeLimit: 100 }, async (ctx) => {
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    reason = ctx.signal.reason;
    return 'partial result, cleaned up';
  });
  await startWorker(app);
  const result = await t.delay();
  assert.equal(await result.get({ timeout: 10_000 }), 'partial result, cleaned up');
  assert.ok(reason instanceof SoftTimeLimitExceededError, `the signal's reason was ${String(reason)}`);
  assert.equal(reason.code, 'SOFT_TIME_LIMIT');
});

test('a handler that rethrows the soft time limit fails with SOFT_TIME_LIMIT', async () => {
  const app = await testApp();
  const t = app.task('gives_up', { softTimeLimit: 100 }, async (ctx) => {
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve(), { once: true }));
    throw ctx.signal.reason;
  });
  await startWorker(app);
  const result = await t.delay();
  await assert.rejects(result.get({ timeout: 10_000 }), (error: TaskFailedError) => {
    assert.ok(error instanceof TaskFailedError);
    assert.equal(error.code, 'SOFT_TIME_LIMIT');
    assert.equal(error.remote.name, 'SoftTimeLimitExceededError');
    return true;
  });
  assert.equal(await result.state(), 'FAILURE');
});

test('a handler that never settles fails at the hard time limit and its slot is freed', async () => {
  const app = await testApp();
  let signalReason: unknown;
  const hangs = app.task('hangs', { timeLimit: 200 }, (ctx) => {
    ctx.signal.addEventListener('abort', () => {
      signalReason = ctx.signal.reason;
    });
    return new Promise<never>(() => {});
  });
  const next = app.task('next', () => 'ran after');
  await startWorker(app, { concurrency: 1, prefetch: 0 });
  const hung = await hangs.delay();
  const after = await next.delay();
  await assert.rejects(hung.get({ timeout: 10_000 }), (error: TaskFailedError) => {
    assert.ok(error instanceof TaskFailedError);
    assert.equal(error.code, 'TIME_LIMIT');
    assert.equal(error.remote.name, 'TimeLimitExceededError');
    return true;
  });
  const info = await hung.info();
  assert.equal(info?.state, 'FAILURE');
  assert.equal(info?.error?.code, 'TIME_LIMIT');
  assert.ok(signalReason instanceof TimeLimitExceededError, 'the handler is told through its signal');
  // The only slot was held by the hung handler; the second call runs because the limit freed it.
  assert.equal(await after.get({ timeout: 10_000 }), 'ran after');
});

test('with both limits, the soft one warns first and the hard one still ends a handler that ignores it', async () => {
  const app = await testApp();
  const reasons: unknown[] = [];
  const t = app.task('ignores_soft', { softTimeLimit: 50, timeLimit: 250 }, (ctx) => {
    ctx.signal.addEventListener('abort', () => reasons.push(ctx.signal.reason));
    return new Promise<never>(() => {});
  });
  await startWorker(app);
  const result = await t.delay();
  await assert.rejects(result.get({ timeout: 10_000 }), { code: 'TIME_LIMIT' });
  assert.equal(reasons.length, 1, 'the signal aborts once');
  assert.ok(reasons[0] instanceof SoftTimeLimitExceededError);
});
