/**
 * The SDK and worker on a Kafka broker: the same app code as on Redis with only the broker URL changed,
 * results in the Redis backend; what Kafka adds (partition keys, ordered consumption) and what it
 * refuses (bad records, unreachable brokers, topics it may not create), each with its reason.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { Kafka, logLevel } from 'kafkajs';
import { chain, group, NoResultBackendError, Taskfleet, UnrecoverableError } from 'taskfleet';
import { KafkaBroker } from '../../../worker/src/brokers/kafka/broker.ts';
import { createEnvelope, encodeEnvelope } from '../../../worker/src/message/envelope.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { taskfleet } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';
import { useKafka, useRedis } from '../../support/stack.ts';

const kafkaUrl = async (query = '?partitions=4') => `kafka://${(await useKafka()).brokers.join(',')}${query}`;

test('the same app on Kafka: delay, results, countdown, retries with backoff, chains and groups', async () => {
  const app = await testApp({ broker: await kafkaUrl() });
  let flaky = 0;
  const add = app.task('add', (_ctx, a: number, b: number) => a + b);
  const sometimes = app.task('sometimes', { maxRetries: 3, retryDelay: 300 }, (ctx) => {
    flaky++;
    if (ctx.attempt < 3) throw new Error(`attempt ${ctx.attempt} fails`);
    return ctx.attempt;
  });
  const never = app.task('never', () => {
    throw new UnrecoverableError('no');
  });
  await startWorker(app, { concurrency: 8 });

  assert.equal(await (await add.delay(2, 3)).get({ timeout: 20_000 }), 5);
  const sent = Date.now();
  assert.equal(await (await add.applyAsync([1, 1], { countdown: 1000 })).get({ timeout: 20_000 }), 2);
  assert.ok(Date.now() - sent >= 1000, 'a countdown is honoured');
  // Two retries through the delay topic, 300 ms and then ~600 ms later.
  assert.equal(await (await sometimes.delay()).get({ timeout: 20_000 }), 3);
  assert.equal(flaky, 3);
  await assert.rejects((await never.delay()).get({ timeout: 20_000 }), /no/);
  const { chain, group } = await import('taskfleet');
  assert.equal(await (await chain(add.s(1, 2), add.s(10)).applyAsync()).get({ timeout: 20_000 }), 13);
  assert.deepEqual(await (await group([add.s(1, 1), add.s(2, 2)]).applyAsync()).get({ timeout: 20_000 }), [2, 4]);
  const backlog = await eventually('an empty backlog', async () => {
    const b = await app.broker.backlog(app.defaultQueue);
    return b.ready + b.delayed + b.inFlight === 0 && b;
  });
  assert.equal(backlog.partitions, 4);
});

test('ordered: calls sharing a key run one at a time, in the order sent; other keys run beside them', async () => {
  const app = await testApp({ broker: await kafkaUrl() });
  const running = new Map<string, number>();
  const order: string[] = [];
  let overlap = 0;
  let concurrentKeys = 0;
  const step = app.task('step', async (_ctx, key: string, n: number) => {
    const now = (running.get(key) ?? 0) + 1;
    running.set(key, now);
    if (now > 1) overlap++;
    concurrentKeys = Math.max(concurrentKeys, [...running.values()].filter((v) => v > 0).length);
    await new Promise((resolve) => setTimeout(resolve, 20));
    order.push(`${key}${n}`);
    running.set(key, now - 1);
  });
  const keys = ['a', 'b', 'c'];
  const results = [];
  for (let n = 0; n < 10; n++) {
    for (const key of keys) results.push(await step.applyAsync([key, n], { key }));
  }
  await startWorker(app, { concurrency: 8, ordered: true });
  await Promise.all(results.map((r) => r.get({ timeout: 30_000 })));
  assert.equal(overlap, 0, 'two calls with the same key ran at once');
  for (const key of keys) {
    assert.deepEqual(
      order.filter((o) => o.startsWith(key)),
      Array.from({ length: 10 }, (_, n) => `${key}${n}`),
    );
  }
  assert.ok(concurrentKeys > 1, 'different keys ran side by side');
});

test('bad records go to the dead-letter topic with their reason, the worker goes on, and dlq list/requeue work', async () => {
  const url = await kafkaUrl('?partitions=2');
  const app = await testApp({ broker: url, maxMessageBytes: 2048 });
  const echo = app.task('echo', (_ctx, value: string) => value);
  await startWorker(app);
  const broker = app.broker as KafkaBroker;
  const topic = (await broker.topics(app.defaultQueue)).main;
  const kafka = new Kafka({ brokers: (await useKafka()).brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  const unknown = createEnvelope({ task: 'nobody_runs_this', args: [], queue: app.defaultQueue });
  const large = createEnvelope({ task: 'echo', args: ['x'.repeat(5000)], queue: app.defaultQueue });
  await producer.send({
    topic,
    messages: [
      { value: 'not JSON {', headers: { task: 'echo' } },
      { value: JSON.stringify(createEnvelope({ task: 'echo', args: ['no header'], queue: app.defaultQueue })) },
      { value: JSON.stringify(unknown), headers: { task: unknown.task, id: unknown.id } },
      { value: encodeEnvelope(large, 1024 * 1024), headers: { task: 'echo', id: large.id } },
    ],
  });
  await producer.disconnect();
  assert.equal(await (await echo.delay('still running')).get({ timeout: 20_000 }), 'still running');

  const letters = await eventually('four dead letters', async () => {
    const all = await broker.deadLetters(app.defaultQueue);
    return all.length === 4 && all;
  });
  assert.deepEqual(letters.map((l) => l.reason).sort(), ['malformed', 'malformed', 'too-large', 'unknown-task']);
  assert.match(letters.find((l) => l.raw === 'not JSON {')?.detail ?? '', /not JSON/);
  assert.ok(
    letters.some((l) => /no 'task' header/.test(l.detail)),
    'the missing header is the reason given',
  );
  assert.equal(letters.find((l) => l.reason === 'unknown-task')?.taskId, unknown.id);

  const env = { TASKFLEET_BROKER: url, TASKFLEET_PREFIX: app.prefix };
  const list = await taskfleet(['dlq', 'list', app.defaultQueue, '--json'], env);
  assert.equal(list.code, 0, list.stderr);
  assert.equal((JSON.parse(list.stdout) as unknown[]).length, 4);

  // Registered now, the unknown task runs when its letter is requeued; the others stay.
  app.task('nobody_runs_this', () => 'ran at last');
  await startWorker(app);
  const unknownLetter = letters.find((l) => l.reason === 'unknown-task')!;
  const requeue = await taskfleet(['dlq', 'requeue', app.defaultQueue, unknownLetter.id], {
    ...env,
    TASKFLEET_BACKEND: (await useRedis()).url,
  });
  assert.equal(requeue.code, 0, requeue.stderr);
  assert.equal(await app.result(unknown.id).get({ timeout: 20_000 }), 'ran at last');
  assert.equal((await broker.deadLetters(app.defaultQueue)).length, 3);
});

test('a wrong bootstrap address and a topic Kafka will not create: errors that say which', async () => {
  const wrong = await taskfleet(['purge', 'anything'], { TASKFLEET_BROKER: 'kafka://127.0.0.1:1' });
  assert.equal(wrong.code, 1);
  assert.match(wrong.stderr, /cannot reach the Kafka brokers at kafka:\/\/127\.0\.0\.1:1 .*--broker/);

  // One broker cannot hold three replicas: the cluster refuses to create the topic.
  const app = new Taskfleet({
    broker: await kafkaUrl('?replicationFactor=3'),
    prefix: `test-${randomUUID().slice(0, 8)}`,
  });
  const noop = app.task('noop', () => {});
  await assert.rejects(
    noop.delay(),
    new RegExp(
      `Kafka topics ${app.prefix}\\.default \\(12 partitions\\).* do not exist and could not be created \\(.*[Rr]eplication.*\\): create`,
    ),
  );
  await app.close();

  const url = 'kafka://127.0.0.1:9092?sasl=scram-sha-512';
  assert.throws(() => new Taskfleet({ broker: url }), /needs a username and password: set TASKFLEET_KAFKA_USERNAME/);
  assert.throws(() => new Taskfleet({ broker: 'kafka://user:pw@127.0.0.1:9092' }), /must not carry credentials/);
});

test('without a result backend, the features that need one say so', async () => {
  const app = new Taskfleet({ broker: await kafkaUrl(), prefix: `test-${randomUUID().slice(0, 8)}` });
  const noop = app.task('noop', () => {});
  const result = await noop.delay();
  await assert.rejects(result.get({ timeout: 1000 }), NoResultBackendError);
  const inspect = await taskfleet(['inspect', 'workers'], { TASKFLEET_BROKER: await kafkaUrl() });
  assert.notEqual(inspect.code, 0);
  assert.match(inspect.stderr, /result backend/);
  await app.close();
});

test('a visibility timeout the brokers refuse as a session timeout fails the start with what to change', async () => {
  const broker = new KafkaBroker({
    brokers: (await useKafka()).brokers,
    prefix: `test-${randomUUID().slice(0, 8)}`,
    partitions: 1,
  });
  try {
    // The stack's brokers allow sessions from 500 ms (group.min.session.timeout.ms).
    await assert.rejects(
      broker.consume('q', { consumer: 'c', visibilityTimeoutMs: 300 }),
      /Kafka refused the session timeout of 300 ms: the visibility timeout \(--visibility-timeout, TASKFLEET_VISIBILITY_TIMEOUT\) must lie within/,
    );
  } finally {
    await broker.close();
  }
});

test('on Kafka too, an outcome no retry can record ends the call once: FAILURE saying why, nothing handed round', async () => {
  const app = await testApp({ broker: await kafkaUrl('?partitions=2'), maxResultBytes: 4 * 1024 * 1024 });
  const runs = new Map<string, number>();
  const ran = (id: string) => runs.set(id, (runs.get(id) ?? 0) + 1);
  const big = app.task('big', (ctx, bytes: number) => {
    ran(ctx.id);
    return 'x'.repeat(bytes);
  });
  const echo = app.task('echo', (ctx, value: unknown) => {
    ran(ctx.id);
    return value;
  });
  app.task('flaky', { maxRetries: 3, retryDelay: 10 }, (ctx) => {
    ran(ctx.id);
    throw new Error('try again');
  });
  await startWorker(app, { maxDeliveries: 3 });

  // Its successor's message, with the 2 MiB result as its argument, is over the 1 MiB message limit.
  const first = randomUUID();
  const chained = await chain(big.s(2 * 1024 * 1024).set({ taskId: first }), echo.s()).delay();
  await assert.rejects(chained.get({ timeout: 20_000 }), /an earlier step \(big .*\) failed/);
  assert.equal((await app.result(first).info())?.error?.code, 'INVALID_MESSAGE_TOO_LARGE');
  // A chord cannot run on Kafka: the step before it fails with that configuration error, once.
  const before = randomUUID();
  const withChord = await chain(echo.s(1).set({ taskId: before }), group(echo.s(), echo.s()), echo.s()).delay();
  await assert.rejects(withChord.get({ timeout: 20_000 }), /an earlier step \(echo .*\) failed/);
  assert.equal((await app.result(before).info())?.error?.code, 'CONFIG');
  assert.match((await app.result(before).info())?.error?.message ?? '', /chords need a broker that can record/);
  // A retry that cannot be sent (its queue is no Kafka topic name): the settlement fails, the call fails.
  const broker = app.broker as KafkaBroker;
  const stray = createEnvelope({ task: 'flaky', args: [], queue: 'no:topic' });
  const kafka = new Kafka({ brokers: (await useKafka()).brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic: (await broker.topics(app.defaultQueue)).main,
    messages: [{ value: JSON.stringify(stray), headers: { task: 'flaky', id: stray.id } }],
  });
  await producer.disconnect();
  const failure = await eventually('the stray retry to fail', async () => {
    const info = await app.result(stray.id).info();
    return info?.state === 'FAILURE' && info;
  });
  assert.equal(failure.error?.code, 'CONFIG');
  assert.match(failure.error?.message ?? '', /queue "no:topic" cannot be a Kafka topic/);

  await eventually('an empty backlog, nothing in flight', async () => {
    const b = await app.broker.backlog(app.defaultQueue);
    return b.ready + b.delayed + b.inFlight === 0 && b;
  });
  assert.deepEqual(
    [first, before, stray.id].map((id) => runs.get(id)),
    [1, 1, 1],
  );
});

test('on Kafka, flow parts no worker could enqueue are dead-lettered as malformed, and the dead-letter topic is bounded', async () => {
  const app = await testApp({ broker: await kafkaUrl('?partitions=1') });
  let runs = 0;
  app.task('echo', () => {
    runs++;
    return null;
  });
  await startWorker(app);
  const broker = app.broker as KafkaBroker;
  const topics = await broker.topics(app.defaultQueue);
  const hostile = {
    ...createEnvelope({ task: 'echo', args: [], queue: app.defaultQueue }),
    chain: [{ task: 'echo', args: [], options: { priority: 12 } }],
  };
  const kafka = new Kafka({ brokers: (await useKafka()).brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer();
  await producer.connect();
  await producer.send({
    topic: topics.main,
    messages: [{ value: JSON.stringify(hostile), headers: { task: 'echo', id: hostile.id } }],
  });
  await producer.disconnect();
  const [letter] = await eventually('the dead letter', async () => {
    const letters = await broker.deadLetters(app.defaultQueue);
    return letters.length > 0 && letters;
  });
  assert.equal(letter?.reason, 'malformed');
  assert.match(letter?.detail ?? '', /chain\[0\]\.options\.priority must be an integer from 0 to 9/);
  assert.equal(runs, 0);

  // Created with a retention that bounds it, whatever floods it.
  const admin = await broker.admin();
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [
      {
        type: 2,
        name: topics.dead,
        configNames: [
          'retention.ms',
          'retention.bytes',
          'segment.bytes',
          'segment.ms',
          'cleanup.policy',
          'max.message.bytes',
        ],
      },
    ],
  });
  const config = Object.fromEntries((resources[0]?.configEntries ?? []).map((e) => [e.configName, e.configValue]));
  assert.deepEqual(config, {
    'cleanup.policy': 'delete',
    'retention.ms': String(14 * 24 * 3600 * 1000),
    'retention.bytes': String(256 * 1024 * 1024),
    'segment.bytes': String(16 * 1024 * 1024),
    'segment.ms': String(24 * 3600 * 1000),
    'max.message.bytes': String(1024 * 1024 + 64 * 1024),
  });
});
