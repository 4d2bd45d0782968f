import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Redis } from 'ioredis';
import { ConfigError, Taskfleet, Worker } from 'taskfleet';
import { GROUP } from '../../../worker/src/brokers/redis/keys.ts';
import { createEnvelope, encodeEnvelope, InvalidMessageError } from '../../../worker/src/message/envelope.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { capturingLogger, keysOf, privateRedis, probe, redisOf, sample } from '../../support/worker-tools.ts';

test('malformed, unknown, future-version and oversized messages are dead-lettered with their reason; the worker goes on', async () => {
  const app = await testApp({ maxMessageBytes: 2048 });
  const echo = app.task('echo', (_ctx, value: string) => value);
  const worker = await startWorker(app, { metricsPort: 0 });
  const redis = redisOf(app);
  const normalLane = keysOf(app).lanes[1];
  const envelope = (task: string) => createEnvelope({ task, args: [], queue: app.defaultQueue });

  const unknown = envelope('nobody_runs_this');
  const future = { ...envelope('echo'), v: 99 };
  const oversized = createEnvelope({ task: 'echo', args: ['x'.repeat(5000)], queue: app.defaultQueue });
  // Written straight onto the stream, as a producer with another version or a bug would.
  await redis.xadd(normalLane, '*', 'm', '{"v":1,"id":"cut short');
  await redis.xadd(normalLane, '*', 'm', JSON.stringify(unknown));
  await redis.xadd(normalLane, '*', 'm', JSON.stringify(future));
  await redis.xadd(normalLane, '*', 'm', encodeEnvelope(oversized, 1024 * 1024));
  await redis.xadd(normalLane, '*', 'not-m', 'a stray field');
  const after = await echo.delay('still running');
  assert.equal(await after.get({ timeout: 10_000 }), 'still running');

  const letters = await eventually('five dead letters', async () => {
    const all = await app.broker.deadLetters(app.defaultQueue);
    return all.length === 5 && all;
  });
  // Settled concurrently (an unknown task's failure is recorded first), so not necessarily in order.
  assert.deepEqual(letters.map((l) => l.reason).sort(), [
    'malformed',
    'malformed',
    'too-large',
    'unknown-task',
    'unsupported-version',
  ]);
  const cut = letters.find((l) => l.raw.startsWith('{"v":1,"id":"cut'));
  const unknownLetter = letters.find((l) => l.reason === 'unknown-task');
  const futureLetter = letters.find((l) => l.reason === 'unsupported-version');
  const large = letters.find((l) => l.reason === 'too-large');
  const stray = letters.find((l) => l.reason === 'malformed' && l !== cut);
  assert.equal(cut?.raw, '{"v":1,"id":"cut short', 'the message is kept as it was received');
  assert.match(cut?.detail ?? '', /not JSON/);
  assert.equal(unknownLetter?.taskId, unknown.id);
  // Whoever waits on it is told, instead of waiting forever (Celery's get() hangs on an unknown task).
  await assert.rejects(
    app.result(unknown.id).get({ timeout: 10_000 }),
    /DeadLettered: dead-lettered \(unknown-task\): no task named/,
  );
  assert.match(
    unknownLetter?.detail ?? '',
    /no task named "nobody_runs_this" is registered on this worker \(it runs: echo\)/,
  );
  assert.match(futureLetter?.detail ?? '', /envelope version 99 is not supported/);
  assert.match(large?.detail ?? '', /over 2048/);
  assert.equal(stray?.raw, '', 'an entry without the message field has no message, not the name of a field');
  assert.equal(worker.ready, true);

  const metrics = (await probe(worker, '/metrics')).body;
  for (const [reason, count] of [
    ['malformed', 2],
    ['unknown-task', 1],
    ['unsupported-version', 1],
    ['too-large', 1],
  ] as const) {
    assert.equal(sample(metrics, 'taskfleet_dead_letters_total', { queue: app.defaultQueue, reason }), count, reason);
  }
  // A dead letter can be put back once its cause is fixed: here, once the worker's app knows the task.
  app.task('nobody_runs_this', () => 'ran after all');
  assert.equal(await app.requeueDeadLetters(app.defaultQueue, [unknownLetter!.id]), 1);
  assert.equal(await app.result(unknown.id).get({ timeout: 10_000 }), 'ran after all');
  assert.equal((await app.broker.deadLetters(app.defaultQueue)).length, 4);
});

test('a message over the size limit is refused at enqueue, before it reaches the broker', async () => {
  const app = await testApp({ maxMessageBytes: 2048 });
  const echo = app.task('echo', (_ctx, value: string) => value);
  await assert.rejects(echo.delay('x'.repeat(5000)), (error: InvalidMessageError) => {
    assert.ok(error instanceof InvalidMessageError);
    assert.equal(error.reason, 'too-large');
    assert.match(error.message, /over the 2048-byte limit: pass a reference/);
    return true;
  });
  assert.equal((await app.broker.backlog(app.defaultQueue)).ready, 0);
});

test('a message delivered more than maxDeliveries times is dead-lettered as poison, not run', async () => {
  const app = await testApp();
  let runs = 0;
  const crashy = app.task('crashes_its_workers', () => {
    runs++;
    return null;
  });
  const redis = redisOf(app);
  const lane = keysOf(app).lanes[1];
  const call = await crashy.delay();
  // Workers that took it and died, one after another: a fake consumer reads it, then claims it again
  // and again (each claim is a delivery), and last leaves it idle as a dead consumer would.
  await redis.xgroup('CREATE', lane, GROUP, '0', 'MKSTREAM');
  const read = (await redis.xreadgroup('GROUP', GROUP, 'dead-1', 'COUNT', 1, 'STREAMS', lane, '>')) as [
    string,
    [string, string[]][],
  ][];
  const entryId = read[0]![1][0]![0];
  for (let i = 2; i <= 5; i++) await redis.xclaim(lane, GROUP, `dead-${i}`, 0, entryId);
  await redis.xclaim(lane, GROUP, 'dead-6', 0, entryId, 'IDLE', 3_600_000);

  const worker = await startWorker(app, { maxDeliveries: 5, metricsPort: 0 });
  const [letter] = await eventually('the poison message to be dead-lettered', async () => {
    const letters = await app.broker.deadLetters(app.defaultQueue);
    return letters.length > 0 && letters;
  });
  assert.equal(letter?.reason, 'poison');
  assert.equal(letter?.taskId, call.id);
  assert.equal(letter?.deliveries, 7, 'six dead consumers, and this worker');
  assert.match(letter?.detail ?? '', /delivered 7 times \(the limit is 5\)/);
  assert.equal(runs, 0);
  assert.equal(sample((await probe(worker, '/metrics')).body, 'taskfleet_dead_letters_total', { reason: 'poison' }), 1);
  const backlog = await app.broker.backlog(app.defaultQueue);
  assert.equal(backlog.ready + backlog.inFlight, 0, 'nothing of it is left in the queue');
});

test('a Redis that may evict keys (maxmemory-policy allkeys-lru) is reported, by the broker and at worker start', async () => {
  const redis = await privateRedis();
  const { url } = redis.endpoint;
  const admin = new Redis(url);
  await admin.config('SET', 'maxmemory-policy', 'allkeys-lru');
  admin.disconnect();
  const app = await testApp({ broker: url, backend: url });
  const [warning] = await app.broker.warnings();
  assert.match(
    warning ?? '',
    /maxmemory-policy allkeys-lru: under memory pressure it will evict keys, and tasks with them/,
  );
  assert.match(warning ?? '', /Set maxmemory-policy noeviction/);
  const { logger, lines } = capturingLogger();
  const worker = new Worker(app, { logger });
  await worker.start();
  await worker.stop();
  assert.ok(
    lines.some((l) => l.level === 'warn' && /maxmemory-policy allkeys-lru/.test(String(l.msg))),
    'the worker logs it when it starts',
  );
});

test('a broker URL that is neither Redis nor Kafka is refused at once, naming it', () => {
  assert.throws(
    () => new Taskfleet({ broker: 'http://x' }),
    (error: ConfigError) => {
      assert.ok(error instanceof ConfigError);
      assert.equal(
        error.message,
        `broker "http://x" (from the app's broker option) is not supported: use a redis:// or rediss:// URL, or kafka:// (kafkas://) for Kafka`,
      );
      return true;
    },
  );
  assert.throws(() => new Taskfleet({ broker: 'redis://127.0.0.1:6379', backend: 'not a url' }), /is not a URL/);
});

test('a broker that cannot be reached: the worker is alive, not ready, and says what it is waiting for', async () => {
  const url = 'redis://:secret@127.0.0.1:1'; // nothing listens on port 1
  const app = new Taskfleet({ broker: url, backend: url });
  app.task('never_runs', () => null);
  const { logger, lines } = capturingLogger();
  const worker = new Worker(app, { logger, metricsPort: 0 });
  let started = false;
  // It keeps trying (a pod may start before its Redis), so start() does not settle while Redis is away.
  worker.start().then(
    () => {
      started = true;
    },
    () => {},
  );
  await eventually('the probes to be served', () => worker.metricsAddress !== undefined);
  assert.equal((await probe(worker, '/healthz')).status, 200);
  assert.equal((await probe(worker, '/readyz')).status, 503);
  const warning = await eventually('a warning naming the broker', () =>
    lines.find((l) => l.level === 'warn' && /cannot reach the broker yet/.test(String(l.msg))),
  );
  assert.equal(warning.broker, 'redis://:***@127.0.0.1:1', 'named, without its password');
  assert.equal(started, false);
  await worker.stop({ graceMs: 100 });
  await app.close();
});
