/**
 * At-least-once inside one process: a worker whose connections vanish mid-task (as when its process
 * dies) loses nothing, and a live worker's long task is not taken from it. The fleet-wide proof, with
 * real processes SIGKILLed at random, is at-least-once.test.ts.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { Taskfleet, Worker } from 'taskfleet';
import { GROUP } from '../../../worker/src/brokers/redis/keys.ts';
import { silentLogger } from '../../../worker/src/observe/logger.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { gate, keysOf, redisOf } from '../../support/worker-tools.ts';

const VISIBILITY_MS = 600;

/** Another member of the app's fleet: same Redis, prefix and queue, its own connections. */
function fleetMember(app: Taskfleet): Taskfleet {
  return new Taskfleet({
    broker: app.brokerUrl,
    backend: app.backendUrl,
    prefix: app.prefix,
    defaultQueue: app.defaultQueue,
  });
}

test('a worker that dies mid-task loses nothing: another takes the call after the visibility timeout', async () => {
  const app = await testApp();
  const runs: string[] = [];
  const register = (member: Taskfleet, name: string) =>
    member.task('long', () => {
      runs.push(name);
      // The first run never ends: its worker dies under it.
      return runs.length === 1 ? new Promise<never>(() => {}) : `done by ${name}`;
    });
  const long = register(app, 'survivor');
  const doomedApp = fleetMember(app);
  register(doomedApp, 'doomed');
  const doomed = new Worker(doomedApp, { logger: silentLogger, visibilityTimeout: VISIBILITY_MS });
  await doomed.start();
  after(() => doomed.stop({ graceMs: 100 }));

  const call = await long.delay();
  await eventually('the doomed worker to run the call', () => doomed.active === 1);
  // Its connections close without a word to the broker: no acknowledgement, no handback, no more
  // claim extensions. The worker object lives on, as a hung process would.
  await doomedApp.close();

  const survivor = await startWorker(app, { visibilityTimeout: VISIBILITY_MS });
  assert.equal(await call.get({ timeout: 20_000 }), 'done by survivor');
  assert.deepEqual(runs, ['doomed', 'survivor']);
  const info = await call.info();
  assert.equal(info?.worker, survivor.id);
  assert.equal(doomed.ready, false, 'a worker that lost its broker is not ready');
});

test('a long task on a live worker is not taken by another: its claim is extended while it runs', async () => {
  const app = await testApp();
  const release = gate();
  const runs: string[] = [];
  const long = app.task('long', async (ctx) => {
    runs.push(ctx.id);
    await release.opened;
    return 'finished';
  });
  const busy = await startWorker(app, { visibilityTimeout: VISIBILITY_MS });
  const call = await long.delay();
  await eventually('the call to run', () => busy.active === 1);
  const since = Date.now();
  // An idle peer that recovers calls whose claim lapsed, scanning every VISIBILITY_MS / 2.
  const peerApp = fleetMember(app);
  after(() => peerApp.close());
  await startWorker(peerApp, { visibilityTimeout: VISIBILITY_MS });
  const lane = keysOf(app).lanes[1];
  // Five visibility timeouts: without extensions, the peer would have claimed it several times over.
  await eventually(
    'five visibility timeouts to pass with the call still held by its worker',
    async () => {
      const [entry] = (await redisOf(app).xpending(lane, GROUP, '-', '+', 10)) as [string, string, number, number][];
      assert.equal(entry?.[1], busy.id, 'still owned by the worker running it');
      assert.equal(entry?.[3], 1, 'delivered once');
      return Date.now() - since > 5 * VISIBILITY_MS;
    },
    10_000,
  );
  release.open();
  assert.equal(await call.get({ timeout: 10_000 }), 'finished');
  assert.equal(runs.length, 1);
});
