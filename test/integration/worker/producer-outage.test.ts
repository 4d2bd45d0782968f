/**
 * A producer while its broker or result backend is unreachable: every call (delay, apply, a workflow's
 * delay, an AsyncResult's reads, forget, revoke) gives up after the app's brokerTimeout with a
 * BrokerUnavailableError that names the broker and says whether anything was sent; a call given up
 * before it was sent is never sent later; and a producer prints nothing of its own (no ioredis
 * "Unhandled error event" lines) through an outage.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { BrokerUnavailableError, chain, chord, group, Taskfleet, type TaskfleetOptions } from 'taskfleet';
import { appKeys, queueKeys } from '../../../worker/src/brokers/redis/keys.ts';
import { freePort } from '../../stack/process.ts';
import { blackHole, resetter } from '../../support/black-hole.ts';
import { notJsonLines, runScript } from '../../support/cli.ts';
import { eventually } from '../../support/eventually.ts';
import { privateRedis } from '../../support/worker-tools.ts';

const elsewhere = (): never => {
  throw new Error('no worker runs in this test');
};

/**
 * A producer app of this test's own (its prefix and queue), closed when the file ends, and its task
 * `echo` (which no worker runs here).
 */
function producer(options: TaskfleetOptions) {
  const app = new Taskfleet({
    prefix: `test-${randomUUID().slice(0, 8)}`,
    defaultQueue: `q-${randomUUID().slice(0, 8)}`,
    ...options,
  });
  after(() => app.close());
  const echo = app.task('echo', (_ctx, _value: string): string => elsewhere());
  return { app, echo };
}

/** A listener that accepts connections and never answers, closed when the test ends. */
async function silentListener() {
  const hole = await blackHole();
  after(() => hole.close());
  return hole;
}

/** How long `call` took to reject, and with what. */
async function rejection(call: () => Promise<unknown>): Promise<{ error: unknown; ms: number }> {
  const started = performance.now();
  try {
    await call();
  } catch (error) {
    return { error, ms: performance.now() - started };
  }
  throw new Error('the call did not reject');
}

function assertUnavailable(error: unknown, expected: Partial<BrokerUnavailableError>): BrokerUnavailableError {
  assert.ok(error instanceof BrokerUnavailableError, `a BrokerUnavailableError, not ${String(error)}`);
  assert.equal(error.code, 'BROKER_UNAVAILABLE');
  for (const [key, value] of Object.entries(expected)) {
    assert.equal(error[key as keyof BrokerUnavailableError], value, `${key} (${error.message})`);
  }
  return error;
}

/**
 * A producer on a Redis of this test's own (which it may stop, pause, or kill connections of), its
 * connection up: it has enqueued echo('before'). `admin` reaches the same Redis directly.
 */
async function connected(brokerTimeout: number) {
  const redis = await privateRedis();
  const { app, echo } = producer({ broker: redis.endpoint.url, brokerTimeout });
  await echo.delay('before');
  const admin = new Redis(redis.endpoint.url).on('error', () => {}); // through the outages the tests make
  after(() => admin.disconnect());
  return { redis, app, echo, admin };
}

/** The calls enqueued on a queue's normal lane now, by their arguments. */
async function enqueued(admin: Redis, app: Taskfleet): Promise<unknown[]> {
  const entries = (await admin.xrange(queueKeys(app.prefix, app.defaultQueue).lanes[1] as string, '-', '+')) as [
    string,
    string[],
  ][];
  return entries.map(([, fields]) => (JSON.parse(fields[1] as string) as { args: unknown[] }).args[0]);
}

test('delay() while Redis refuses connections rejects after brokerTimeout with BROKER_UNAVAILABLE, naming the broker without its password', {
  timeout: 30_000,
}, async () => {
  const port = await freePort(); // nothing listens there
  const { echo } = producer({ broker: `redis://:s3cret@127.0.0.1:${port}/0`, brokerTimeout: 1000 });
  const { error, ms } = await rejection(() => echo.delay('x'));
  const unavailable = assertUnavailable(error, {
    what: 'broker',
    url: `redis://:***@127.0.0.1:${port}/0`,
    maybeSent: false,
  });
  assert.match(
    unavailable.message,
    new RegExp(
      `^cannot reach the broker at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${port}/0 within 1000 ms \\(connect ECONNREFUSED 127\\.0\\.0\\.1:${port}\\): nothing was sent, and nothing will be\\. Check that it runs at that address \\(TASKFLEET_BROKER, or the app's broker option\\), then call again; brokerTimeout \\(TASKFLEET_BROKER_TIMEOUT, ms\\) sets how long a call waits\\.$`,
    ),
  );
  assert.doesNotMatch(unavailable.message, /s3cret/);
  assert.ok(ms >= 990 && ms < 3000, `rejected after ${Math.round(ms)} ms, for a bound of 1000 ms`);
});

test('the bound is 10 s unless configured: delay() to an address that never answers rejects then', {
  timeout: 30_000,
}, async () => {
  const hole = await silentListener();
  const { echo } = producer({ broker: hole.url });
  const { error, ms } = await rejection(() => echo.delay('x'));
  const unavailable = assertUnavailable(error, { what: 'broker', url: hole.url, maybeSent: false });
  assert.match(unavailable.message, /within 10000 ms \(connected, but it does not answer\): nothing was sent/);
  assert.ok(ms >= 9990 && ms < 12_500, `rejected after ${Math.round(ms)} ms, for the default of 10000 ms`);
});

test('every producer call is bounded: apply, applyBulk, workflows, get(), state(), info(), forget(), revoke()', {
  timeout: 60_000,
}, async () => {
  const hole = await silentListener();
  const { app, echo } = producer({ broker: hole.url, backend: hole.url, brokerTimeout: 300 });
  const sum = app.task('sum', (_ctx, _values: string[]): string => elsewhere());
  const result = app.result('some-task');
  const calls: [string, 'broker' | 'result backend', () => Promise<unknown>][] = [
    ['delay', 'broker', () => echo.delay('x')],
    ['applyAsync', 'broker', () => echo.applyAsync(['x'], { countdown: 60_000 })],
    ['applyBulk', 'broker', () => echo.applyBulk([['x'], ['y']])],
    ['a chain', 'broker', () => chain(echo.s('x'), echo.s()).delay()],
    ['a group', 'broker', () => group([echo.s('x'), echo.s('y')]).delay()],
    ['a chord', 'broker', () => chord([echo.s('x'), echo.s('y')], sum.s()).delay()],
    ['a signature with a link', 'broker', () => echo.applyAsync(['x'], { link: echo.s() })],
    ['get()', 'result backend', () => result.get({ timeout: 60_000 })],
    ['state()', 'result backend', () => result.state()],
    ['info()', 'result backend', () => result.info()],
    ['forget()', 'result backend', () => result.forget()],
    ['revoke()', 'result backend', () => result.revoke()],
  ];
  for (const [name, what, call] of calls) {
    const { error, ms } = await rejection(call);
    assertUnavailable(error, { what, maybeSent: false });
    assert.ok(ms < 2000, `${name} rejected after ${Math.round(ms)} ms, for a bound of 300 ms`);
  }
});

test('a delay() that gave up while Redis was down is never sent, not even once Redis is back', {
  timeout: 60_000,
}, async () => {
  const { redis, app, echo, admin } = await connected(1000);

  await redis.stop();
  const { error } = await rejection(() => echo.delay('given up'));
  assertUnavailable(error, { maybeSent: false });
  await redis.start(); // empty: it persisted nothing

  // Sent on the same connection once it is back: a command it had kept would have gone first.
  await echo.delay('after');
  assert.deepEqual(await enqueued(admin, app), ['after']);
});

test('a delay() whose connection drops after it was sent rejects at once saying it may have been enqueued, and is not sent again on reconnect', {
  timeout: 60_000,
}, async () => {
  const { app, echo, admin } = await connected(20_000);

  // Redis holds writes (the delay's XADD reaches it and waits) until UNPAUSE.
  await admin.client('PAUSE', 30_000, 'WRITE');
  const started = performance.now();
  const dropped = rejection(() => echo.delay('dropped'));
  const held = await eventually('the XADD to be held by the pause', async () => {
    const clients = String(await admin.client('LIST')).split('\n');
    return clients.find((c) => c.includes('name=taskfleet-producer') && / flags=\S*b/.test(c));
  });
  await admin.client('KILL', 'ID', /\bid=(\d+)/.exec(held)?.[1] as string);
  const { error } = await dropped;
  const unavailable = assertUnavailable(error, { maybeSent: true });
  assert.match(
    unavailable.message,
    /^lost the connection to the broker at .* after sending the call .*may have been applied/,
  );
  assert.ok(performance.now() - started < 10_000, 'at once, not at the bound');
  await admin.client('UNPAUSE');

  await echo.delay('after'); // on the reconnected connection: anything it would resend has gone first
  assert.deepEqual(await enqueued(admin, app), ['before', 'after']);
});

test('a delay() that Redis holds past the bound rejects saying it may have been enqueued, or may still be: and it is, when Redis answers', {
  timeout: 60_000,
}, async () => {
  const { app, echo, admin } = await connected(500);

  await admin.client('PAUSE', 30_000, 'WRITE');
  const { error, ms } = await rejection(() => echo.delay('held'));
  const unavailable = assertUnavailable(error, { maybeSent: true });
  assert.match(
    unavailable.message,
    /^sent the call to the broker at .*, which did not answer within 500 ms: the call may have been applied \(a task enqueued\), or may still be/,
  );
  assert.ok(ms >= 490 && ms < 2500, `rejected after ${Math.round(ms)} ms, for a bound of 500 ms`);
  await admin.client('UNPAUSE');
  await eventually('the held call to be applied', async () => (await enqueued(admin, app)).length === 2);
  assert.deepEqual(await enqueued(admin, app), ['before', 'held']);
});

test('get() outlasts the loss of its subscription: a result stored while it was gone is read once it is back', {
  timeout: 60_000,
}, async () => {
  const redis = await privateRedis();
  const { url } = redis.endpoint;
  const { app } = producer({ broker: url, backend: url });
  const id = randomUUID();
  const waiting = app.result<string>(id).get({ timeout: 30_000 });
  const admin = new Redis(url).on('error', () => {}); // through the outage
  after(() => admin.disconnect());
  const keys = appKeys(app.prefix);
  await eventually('get() to subscribe', async () => {
    const [, count] = (await admin.pubsub('NUMSUB', keys.resultChannel(id))) as [string, number];
    return count === 1;
  });
  // In one step: the subscription is gone when the result is stored and published, so only a read
  // after it is back can see it.
  const record = JSON.stringify({
    id,
    task: 'echo',
    state: 'SUCCESS',
    result: 'stored meanwhile',
    attempts: 1,
    queue: 'q',
  });
  const replies = await admin
    .multi()
    .client('KILL', 'TYPE', 'pubsub')
    .set(keys.result(id), record, 'PX', 60_000)
    .publish(keys.resultChannel(id), record)
    .exec();
  assert.deepEqual(
    replies?.map(([e, r]) => [e, r]),
    [
      [null, 1],
      [null, 'OK'],
      [null, 0],
    ],
    'the subscriber was killed, and the result published to no one',
  );
  assert.equal(await waiting, 'stored meanwhile');
});

test('a producer process waiting in get() prints only JSON lines through a Redis outage, and gets its result after it', {
  timeout: 90_000,
}, async () => {
  const redis = await privateRedis();
  const { url, port } = redis.endpoint;
  const prefix = `test-${randomUUID().slice(0, 8)}`;
  const id = randomUUID();
  const script = fileURLToPath(new URL('./fixtures/producer-get.ts', import.meta.url));
  const run = runScript(script, {
    TASKFLEET_BROKER: url,
    TASKFLEET_BACKEND: url,
    TASKFLEET_PREFIX: prefix,
    TASKFLEET_TEST_TASK_ID: id,
  });
  const admin = new Redis(url).on('error', () => {}); // through the outage
  after(() => admin.disconnect());
  const keys = appKeys(prefix);
  await eventually('the producer to subscribe', async () => {
    const [, count] = (await admin.pubsub('NUMSUB', keys.resultChannel(id))) as [string, number];
    return count === 1;
  });

  await redis.stop();
  // Every reconnect attempt of the producer's connections fails, each an 'error' event.
  const resets = await resetter(port);
  await eventually('the producer to fail 6 reconnect attempts', () => resets.resets >= 6);
  await resets.close();
  await redis.start();

  const record = JSON.stringify({ id, task: 'echo', state: 'SUCCESS', result: 42, attempts: 1, queue: 'q' });
  await admin.multi().set(keys.result(id), record, 'PX', 60_000).publish(keys.resultChannel(id), record).exec();
  const { code, stdout, stderr } = await run;
  assert.deepEqual(notJsonLines(stdout + stderr), [], 'every line the producer printed is JSON');
  assert.deepEqual(
    stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line)),
    [{ msg: 'result', value: 42 }],
  );
  assert.equal(code, 0, stderr);
});

test('delay() to Kafka brokers that never answer rejects after brokerTimeout with BROKER_UNAVAILABLE; nothing was sent', {
  timeout: 60_000,
}, async () => {
  const hole = await silentListener();
  const url = `kafka://127.0.0.1:${hole.port}`;
  const { echo } = producer({ broker: url, brokerTimeout: 1000 });
  const { error, ms } = await rejection(() => echo.delay('x'));
  const unavailable = assertUnavailable(error, { what: 'broker', url, maybeSent: false });
  assert.match(
    unavailable.message,
    /^cannot reach the broker at kafka:\/\/127\.0\.0\.1:\d+ within 1000 ms: nothing was sent/,
  );
  assert.ok(ms >= 990 && ms < 3000, `rejected after ${Math.round(ms)} ms, for a bound of 1000 ms`);
});
