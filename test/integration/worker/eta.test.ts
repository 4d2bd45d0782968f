/**
 * The ETA horizon and the worker's own check of `eta`: a countdown or ETA too far ahead is refused at
 * enqueue, saying what to do, and a call that reaches a worker before its time waits until then.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { chain, EtaBeyondHorizonError, Taskfleet } from 'taskfleet';
import { createEnvelope } from '../../../worker/src/message/envelope.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { keysOf, redisOf } from '../../support/worker-tools.ts';

const YEAR = 365 * 24 * 3600 * 1000;

function isHorizonError(pattern: RegExp) {
  return (error: unknown) => {
    assert.ok(error instanceof EtaBeyondHorizonError, String(error));
    assert.equal(error.code, 'ETA_BEYOND_HORIZON');
    assert.match(error.message, pattern);
    assert.match(error.message, /schedule it nearer .*, or raise the app's etaHorizon \(TASKFLEET_ETA_HORIZON, ms\)$/);
    return true;
  };
}

test('an ETA or countdown beyond the horizon (a year by default) is refused at enqueue, and nothing is sent', async () => {
  const app = await testApp();
  const report = app.task('report', () => 'ok');
  const publish = app.task('publish', (_ctx, report: string) => report);
  await assert.rejects(
    report.applyAsync([], { eta: new Date('9999-12-31T00:00:00Z') }),
    isHorizonError(
      /^task report: its eta \(9999-12-31T00:00:00\.000Z\) is [\d,]+ days away, beyond the 365 days horizon/,
    ),
  );
  await assert.rejects(report.applyAsync([], { countdown: 2 * YEAR }), isHorizonError(/is 730 days away/));
  // In a workflow, refused when it is sent, not when a worker reaches the step.
  await assert.rejects(
    chain(report.s(), publish.s().set({ countdown: 2 * YEAR })).delay(),
    isHorizonError(/^task publish: /),
  );
  const backlog = await app.broker.backlog(app.defaultQueue);
  assert.equal(backlog.ready + backlog.delayed, 0);
  // Within it, as before.
  const soon = await report.applyAsync([], { countdown: YEAR - 60_000 });
  assert.equal((await app.broker.backlog(app.defaultQueue)).delayed, 1);
  await soon.revoke();
});

test('the horizon is configurable: etaHorizon, or TASKFLEET_ETA_HORIZON', async () => {
  const app = await testApp({ etaHorizon: 60_000 });
  const ping = app.task('ping', () => 'pong');
  await assert.rejects(
    ping.applyAsync([], { countdown: 120_000 }),
    isHorizonError(/is 2 minutes away, beyond the 60 s horizon/),
  );
  await ping.applyAsync([], { countdown: 30_000 });

  process.env.TASKFLEET_ETA_HORIZON = String(10 * YEAR);
  try {
    const far = new Taskfleet({ broker: app.brokerUrl, prefix: app.prefix, defaultQueue: app.defaultQueue });
    const farPing = far.task('ping', () => 'pong');
    assert.equal(far.etaHorizon, 10 * YEAR);
    assert.ok(far.envelopeFor(farPing, [], { countdown: 5 * YEAR }).eta);
    process.env.TASKFLEET_ETA_HORIZON = 'soon';
    assert.throws(
      () => new Taskfleet({ broker: app.brokerUrl }),
      /etaHorizon must be a whole number ≥ 1, not NaN \(from TASKFLEET_ETA_HORIZON\)/,
    );
  } finally {
    delete process.env.TASKFLEET_ETA_HORIZON;
  }
});

test('a call that reaches a worker before its eta is put back until then, not run early', async () => {
  const app = await testApp();
  let startedAt = 0;
  app.task('timed', () => {
    startedAt = Date.now();
    return 'on time';
  });
  await startWorker(app);
  // On the lane already, as a producer writing there directly (or with its clock behind) would put it.
  const eta = Date.now() + 1500;
  const early = createEnvelope({ task: 'timed', args: [], queue: app.defaultQueue, eta });
  await redisOf(app).xadd(keysOf(app).lanes[1], '*', 'm', JSON.stringify(early));
  await eventually('the worker to put it back with the delayed calls', async () => {
    const b = await app.broker.backlog(app.defaultQueue);
    return b.delayed === 1 && b.ready + b.inFlight === 0;
  });
  assert.equal(await app.result(early.id).get({ timeout: 10_000 }), 'on time');
  assert.ok(startedAt >= eta, `started ${eta - startedAt} ms before its eta`);
});
