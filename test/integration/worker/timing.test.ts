import assert from 'node:assert/strict';
import { test } from 'node:test';
import { TaskRevokedError } from 'taskfleet';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { gate, keysOf, redisOf } from '../../support/worker-tools.ts';

/** The due time the broker holds for a delayed call: the score of its member in the delayed set. */
async function recordedEta(app: Awaited<ReturnType<typeof testApp>>, id: string): Promise<number | undefined> {
  const members = await redisOf(app).zrange(keysOf(app).delayed, 0, -1, 'WITHSCORES');
  for (let i = 0; i < members.length; i += 2) {
    if ((members[i] as string).includes(`"id":"${id}"`)) return Number(members[i + 1]);
  }
  return undefined;
}

test('a call with a countdown or an eta does not start before its due time', async () => {
  const app = await testApp();
  const starts = new Map<string, number>();
  const stamp = app.task('stamp', (ctx) => {
    starts.set(ctx.id, Date.now());
    return ctx.id;
  });
  // Enqueued before any worker runs, so the due times can be read from the delayed set first.
  const byCountdown = await stamp.applyAsync([], { countdown: 400 });
  const eta = Date.now() + 600;
  const byEta = await stamp.applyAsync([], { eta: new Date(eta) });
  const countdownEta = await recordedEta(app, byCountdown.id);
  assert.ok(countdownEta !== undefined, 'a call with a countdown waits in the delayed set');
  assert.equal(await recordedEta(app, byEta.id), eta, 'a call with an eta waits in the delayed set until then');

  await startWorker(app);
  assert.equal(await byCountdown.get({ timeout: 10_000 }), byCountdown.id);
  assert.equal(await byEta.get({ timeout: 10_000 }), byEta.id);
  // Both clocks are this machine's, in ms: a start at or after the due time is exact, no slack needed.
  assert.ok(
    starts.get(byCountdown.id)! >= countdownEta,
    `started ${countdownEta - starts.get(byCountdown.id)!} ms early`,
  );
  assert.ok(starts.get(byEta.id)! >= eta, `started ${eta - starts.get(byEta.id)!} ms early`);
});

test('a call due in an hour has not run when a call enqueued after it has finished', async () => {
  const app = await testApp();
  const ran: string[] = [];
  const t = app.task('later_or_now', (ctx) => {
    ran.push(ctx.id);
    return null;
  });
  await startWorker(app);
  const later = await t.applyAsync([], { countdown: 3_600_000 });
  const now = await t.delay();
  await now.get({ timeout: 10_000 });
  assert.deepEqual(ran, [now.id]);
  assert.equal(await later.state(), 'PENDING');
  assert.equal((await app.broker.backlog(app.defaultQueue)).delayed, 1);
  await app.broker.purge(app.defaultQueue);
});

test('a call whose expiry passed before a worker took it is recorded REVOKED and never runs', async () => {
  const app = await testApp();
  let calls = 0;
  const t = app.task('too_late', () => {
    calls++;
    return 'ran';
  });
  const expired = await t.applyAsync([], { expires: new Date(Date.now() - 1000) });
  const fresh = await t.applyAsync([], { expires: 60_000 });
  await startWorker(app, { concurrency: 1, prefetch: 0 });
  assert.equal(await fresh.get({ timeout: 10_000 }), 'ran');
  await assert.rejects(expired.get({ timeout: 10_000 }), TaskRevokedError);
  const info = await expired.info();
  assert.equal(info?.state, 'REVOKED');
  assert.match(info?.error?.message ?? '', /expired before it started/);
  assert.equal(calls, 1, 'only the unexpired call ran');
});

test('a call that expires while it waits in the worker (prefetched behind a busy slot) does not run', async () => {
  const app = await testApp();
  const blocker = gate();
  const ran: string[] = [];
  const block = app.task('block', async () => {
    await blocker.opened;
    return 'unblocked';
  });
  const t = app.task('expiring', (ctx) => {
    ran.push(ctx.id);
    return null;
  });
  const worker = await startWorker(app, { concurrency: 1, prefetch: 1, heartbeatInterval: 50 });
  const blocking = await block.delay();
  await eventually('the blocker to run', () => worker.active === 1);
  const expires = Date.now() + 300;
  const expiring = await t.applyAsync([], { expires: new Date(expires) });
  // Taken off the queue and held by the worker, waiting for the slot.
  await eventually('the call to be reserved by the worker', async () => {
    const [beat] = await app.control.workers();
    return beat?.reserved === 1;
  });
  await eventually('its expiry to pass', () => Date.now() > expires);
  blocker.open();
  assert.equal(await blocking.get({ timeout: 10_000 }), 'unblocked');
  await assert.rejects(expiring.get({ timeout: 10_000 }), TaskRevokedError);
  assert.match((await expiring.info())?.error?.message ?? '', /expired before it started/);
  assert.deepEqual(ran, []);
});
