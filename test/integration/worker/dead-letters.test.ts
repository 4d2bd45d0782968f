/**
 * The dead-letter store on Redis is bounded: it keeps about maxDeadLetters letters, the newest, and
 * requeueing them all goes a page at a time, each page's FAILURE results cleared before it goes back.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { createEnvelope } from '../../../worker/src/message/envelope.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { capturingLogger, keysOf, redisOf, sample } from '../../support/worker-tools.ts';

test('the dead-letter stream keeps about maxDeadLetters letters, dropping the oldest', async () => {
  const app = await testApp({ maxDeadLetters: 150 });
  app.task('echo', () => null);
  const redis = redisOf(app);
  const keys = keysOf(app);
  const pipeline = redis.pipeline();
  for (let i = 0; i < 600; i++) pipeline.xadd(keys.lanes[1], '*', 'm', `not JSON ${i}`);
  await pipeline.exec();
  await startWorker(app, { concurrency: 1, prefetch: 1 });
  await eventually('every message dead-lettered', async () => {
    const b = await app.broker.backlog(app.defaultQueue);
    return b.ready + b.inFlight === 0;
  });
  // MAXLEN ~ trims whole nodes of the stream (stream-node-max-entries, 100 by default): never below the cap.
  const [, nodeEntries] = (await redis.config('GET', 'stream-node-max-entries')) as [string, string];
  const kept = await redis.xlen(keys.dead);
  assert.ok(kept >= 150 && kept <= 150 + Number(nodeEntries), `${kept} dead letters kept`);
  const [newest] = (await redis.xrevrange(keys.dead, '+', '-', 'COUNT', 1)) as [string, string[]][];
  assert.equal(newest?.[1][1], 'not JSON 599', 'the newest is kept');
  const [oldest] = await app.broker.deadLetters(app.defaultQueue, { limit: 1 });
  assert.notEqual(oldest?.raw, 'not JSON 0', 'the oldest went first');
});

test('requeueing every dead letter clears each page of FAILURE results just before it goes back', async () => {
  const app = await testApp();
  const calls = Array.from({ length: 250 }, (_, i) =>
    createEnvelope({ task: 'added_later', args: [i], queue: app.defaultQueue }),
  );
  const pipeline = redisOf(app).pipeline();
  for (const call of calls) pipeline.xadd(keysOf(app).lanes[1], '*', 'm', JSON.stringify(call));
  await pipeline.exec();
  const worker = await startWorker(app);
  await eventually('250 unknown-task letters', async () => {
    const letters = await app.broker.deadLetters(app.defaultQueue, { limit: 1000 });
    return letters.length === 250;
  });
  assert.equal(await app.result(calls[0]!.id).state(), 'FAILURE');
  await worker.stop();
  // Deployed with the task now: every letter runs again, and waiting on it works again.
  app.task('added_later', (_ctx, i: number) => i * 2);
  await startWorker(app);
  assert.equal(await app.requeueDeadLetters(app.defaultQueue), 250);
  const results = await Promise.all(calls.map((call) => app.result<number>(call.id).get({ timeout: 20_000 })));
  assert.deepEqual(
    results,
    calls.map((_, i) => i * 2),
  );
  assert.deepEqual(await app.broker.deadLetters(app.defaultQueue), []);
});

test('a flood of dead letters is logged 10 per reason, then once with how many more', async () => {
  const app = await testApp();
  const pipeline = redisOf(app).pipeline();
  for (let i = 0; i < 30; i++) {
    const call = createEnvelope({ task: `unknown-${i}`, args: [], queue: app.defaultQueue });
    pipeline.xadd(keysOf(app).lanes[1], '*', 'm', JSON.stringify(call));
  }
  await pipeline.exec();
  const { logger, lines } = capturingLogger();
  const worker = await startWorker(app, { logger });
  await eventually('30 dead letters', async () => (await app.broker.deadLetters(app.defaultQueue)).length === 30);
  const metrics = await worker.metrics.registry.metrics();
  await worker.stop();
  const logged = lines.filter((l) => l.msg === 'message dead-lettered');
  assert.equal(logged.length, 10);
  assert.ok(logged.every((l) => l.reason === 'unknown-task'));
  const summary = lines.filter((l) => l.msg === 'more messages dead-lettered than logged');
  assert.deepEqual(
    summary.map((l) => [l.reason, l.notLogged]),
    [['unknown-task', 20]],
  );
  assert.equal(sample(metrics, 'taskfleet_dead_letters_total', { reason: 'unknown-task' }), 30, 'counted, every one');
});
