import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TaskRevokedError } from 'taskfleet';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { gate } from '../../support/worker-tools.ts';

test('a call revoked while still queued never runs and ends REVOKED', async () => {
  const app = await testApp();
  const ran: string[] = [];
  const t = app.task('revocable', (ctx) => {
    ran.push(ctx.id);
    return 'ran';
  });
  const revoked = await t.delay();
  const kept = await t.delay();
  await revoked.revoke();
  // The worker starts after the revocation: it learns of it from the revoked set, not the broadcast.
  await startWorker(app, { concurrency: 1, prefetch: 0 });
  assert.equal(await kept.get({ timeout: 10_000 }), 'ran');
  await assert.rejects(revoked.get({ timeout: 10_000 }), TaskRevokedError);
  assert.equal(await revoked.state(), 'REVOKED');
  assert.deepEqual(ran, [kept.id]);
});

test('a call revoked while a running worker holds it, waiting for a slot, never runs', async () => {
  const app = await testApp();
  const ran: string[] = [];
  const block = app.task('block', () => new Promise<never>(() => {}));
  const t = app.task('revocable', (ctx) => {
    ran.push(ctx.id);
    return 'ran';
  });
  const worker = await startWorker(app, { concurrency: 1, prefetch: 1, heartbeatInterval: 50 });
  const blocking = await block.delay();
  await eventually('the blocker to run', () => worker.active === 1);
  const revoked = await t.delay();
  await eventually(
    'the call to be reserved by the worker',
    async () => (await app.control.workers())[0]?.reserved === 1,
  );
  await revoked.revoke();
  // Revocations reach the worker in the order they were sent: once the blocker is terminated (which
  // frees the slot), the worker has seen the first revocation too.
  await blocking.revoke({ terminate: true });
  await assert.rejects(blocking.get({ timeout: 10_000 }), TaskRevokedError);
  await assert.rejects(revoked.get({ timeout: 10_000 }), TaskRevokedError);
  assert.match((await revoked.info())?.error?.message ?? '', /was revoked/);
  const later = await t.delay();
  assert.equal(await later.get({ timeout: 10_000 }), 'ran');
  assert.deepEqual(ran, [later.id]);
});

test('revoke with terminate aborts a running call, records REVOKED, and the worker keeps going', async () => {
  const app = await testApp();
  let reason: unknown;
  const started = gate();
  const forever = app.task('forever', (ctx) => {
    started.open();
    return new Promise<never>(() => {
      ctx.signal.addEventListener('abort', () => {
        reason = ctx.signal.reason;
      });
    });
  });
  const next = app.task('next', () => 'still working');
  const worker = await startWorker(app, { concurrency: 1, prefetch: 0 });
  const running = await forever.delay();
  await started.opened;
  await running.revoke({ terminate: true });
  await assert.rejects(running.get({ timeout: 10_000 }), TaskRevokedError);
  const info = await running.info();
  assert.equal(info?.state, 'REVOKED');
  assert.match(info?.error?.message ?? '', /terminated/);
  assert.ok(reason instanceof TaskRevokedError, `the handler's signal fired with ${String(reason)}`);
  // The only slot is free again.
  assert.equal(await (await next.delay()).get({ timeout: 10_000 }), 'still working');
  await eventually('no call to be running', () => worker.active === 0);
});

test('revoke without terminate lets a running call finish', async () => {
  const app = await testApp();
  const started = gate();
  const release = gate();
  let aborted = false;
  const t = app.task('finishes', async (ctx) => {
    ctx.signal.addEventListener('abort', () => {
      aborted = true;
    });
    started.open();
    await release.opened;
    return 'finished';
  });
  const other = app.task('forever', () => new Promise<never>(() => {}));
  const worker = await startWorker(app);
  const running = await t.delay();
  await started.opened;
  const witness = await other.delay();
  await eventually('both calls to run', () => worker.active === 2);
  await running.revoke();
  // Sent after the first, so once it has terminated the witness the worker has seen both.
  await witness.revoke({ terminate: true });
  await assert.rejects(witness.get({ timeout: 10_000 }), TaskRevokedError);
  release.open();
  assert.equal(await running.get({ timeout: 10_000 }), 'finished');
  assert.equal(aborted, false);
});
