/**
 * Workflows on a real Redis with in-process workers: group, chord, link and errback, nesting, and
 * the mistakes refused at enqueue. The chord under SIGKILL is chord-chaos.test.ts.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  CanvasError,
  type Chain,
  ChordFailedError,
  chain,
  chord,
  GroupFailedError,
  GroupResult,
  group,
  MAX_CANVAS_DEPTH,
  MAX_CANVAS_SIGNATURES,
  SerializationError,
  type TaskFailure,
  Taskfleet,
  type TaskfleetError,
  UnrecoverableError,
} from 'taskfleet';
import { chordKeys, GROUP } from '../../../worker/src/brokers/redis/keys.ts';
import { createEnvelope } from '../../../worker/src/message/envelope.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { keysOf, redisOf } from '../../support/worker-tools.ts';

/** Counts calls by key, in this process (the in-process workers run the handlers here). */
function counter() {
  const counts = new Map<string, number>();
  return {
    add: (key: string) => counts.set(key, (counts.get(key) ?? 0) + 1),
    get: (key: string) => counts.get(key) ?? 0,
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
  };
}

/** The app's queue holds nothing: every call published so far has run and been acknowledged. */
async function drained(app: Taskfleet, queue = app.defaultQueue): Promise<void> {
  await eventually(`queue ${queue} to drain`, async () => {
    const b = await app.broker.backlog(queue);
    return b.ready + b.inFlight + b.delayed === 0;
  });
}

async function arithmetic(app: Taskfleet) {
  const callbacks = counter();
  const add = app.task('add', (_ctx, a: number, b: number) => a + b);
  const double = app.task('double', (_ctx, n: number) => n * 2);
  const total = app.task('total', (_ctx, values: readonly number[]) => {
    callbacks.add('total');
    return values.reduce((a, b) => a + b, 0);
  });
  const collect = app.task('collect', (_ctx, values: unknown[], ...extra: string[]) => {
    callbacks.add('collect');
    return { values, extra };
  });
  return { add, double, total, collect, callbacks };
}

test('group: get() gathers the results in the order of the members, whatever order they finish in', async () => {
  const app = await testApp();
  const sleepy = app.task('sleepy', async (_ctx, n: number, ms: number) => {
    await sleep(ms);
    return n;
  });
  await startWorker(app, { concurrency: 8 });
  // The first members take longest, so they finish last.
  const result = await group(Array.from({ length: 8 }, (_, i) => sleepy.s(i, (8 - i) * 15))).delay();
  assert.ok(result instanceof GroupResult);
  assert.equal(result.results.length, 8);
  assert.deepEqual(await result.get({ timeout: 10_000 }), [0, 1, 2, 3, 4, 5, 6, 7]);
  assert.equal(await result.ready(), true);
  assert.equal(await result.completedCount(), 8);
  assert.equal(await result.state(), 'SUCCESS');
  // Each member's own result is there too, in the same order.
  assert.deepEqual(await Promise.all(result.results.map((r) => r.get({ timeout: 1000 }))), [0, 1, 2, 3, 4, 5, 6, 7]);

  const mixed = await group(sleepy.s(1, 0), app.task('shout', (_ctx, s: string) => s.toUpperCase()).s('hi')).delay();
  const [n, s]: [number, string] = await mixed.get({ timeout: 10_000 });
  assert.deepEqual([n, s], [1, 'HI']);
});

test('group: get() rejects naming the member that failed for good', async () => {
  const app = await testApp();
  const ok = app.task('ok', (_ctx, n: number) => n);
  const boom = app.task('boom', (_ctx, why: string) => {
    throw new UnrecoverableError(why);
  });
  await startWorker(app);
  const result = await group(ok.s(1), boom.s('card declined'), ok.s(3)).delay();
  await assert.rejects(result.get({ timeout: 10_000 }), (error: GroupFailedError) => {
    assert.ok(error instanceof GroupFailedError);
    assert.equal(error.code, 'GROUP_MEMBER_FAILED');
    assert.equal(error.index, 1);
    assert.equal(error.taskId, result.results[1]?.id);
    assert.match(error.message, /member 1 \(task [0-9a-f-]+\) failed: .*UnrecoverableError: card declined/);
    return true;
  });
  await eventually('the other members to finish', async () => (await result.ready()) && result);
  assert.equal(await result.completedCount(), 2);
  assert.equal(await result.failed(), true);
  assert.equal(await result.state(), 'FAILURE');
});

test('chord: the callback runs once, with the ordered list of results and its own arguments', async () => {
  const app = await testApp();
  const { add, total, collect, callbacks } = await arithmetic(app);
  await startWorker(app, { concurrency: 8 });
  const sum = await chord(group(Array.from({ length: 20 }, (_, i) => add.s(i, i))), total.s()).delay();
  assert.equal(await sum.get({ timeout: 10_000 }), 380);
  const listed = await chord([add.s(1, 1), add.s(2, 2), add.s(3, 3)], collect.s('x', 'y')).delay();
  assert.deepEqual(await listed.get({ timeout: 10_000 }), { values: [2, 4, 6], extra: ['x', 'y'] });
  await drained(app);
  assert.equal(callbacks.get('total'), 1);
  assert.equal(callbacks.get('collect'), 1);

  // The chord's state is kept (with an expiry) so a late duplicate member finds it closed; the results are gone.
  const keys = chordKeys(app.prefix, app.defaultQueue, sum.id);
  const redis = redisOf(app);
  assert.equal(await redis.hget(keys.state, 'state'), 'fired');
  assert.ok((await redis.pttl(keys.state)) > 0, 'the chord state expires');
  assert.equal(await redis.exists(keys.results), 0);
});

test('chord: members that retry are counted once, when they finally succeed', async () => {
  const app = await testApp();
  const { total, callbacks } = await arithmetic(app);
  const attempts = counter();
  const flaky = app.task('flaky', { maxRetries: 3, retryDelay: 10, retryJitter: false }, (ctx, n: number) => {
    attempts.add(String(n));
    if (ctx.attempt <= n % 3) throw new Error(`attempt ${ctx.attempt} of ${n} fails`);
    return n;
  });
  await startWorker(app, { concurrency: 4 });
  const result = await chord(group(Array.from({ length: 9 }, (_, i) => flaky.s(i))), total.s()).delay();
  assert.equal(await result.get({ timeout: 10_000 }), 36);
  await drained(app);
  assert.equal(callbacks.get('total'), 1);
  assert.equal(attempts.total(), 9 + 3 * 1 + 3 * 2, 'members retried before the chord completed');
});

test('chord: a member that fails for good fails the chord — no callback, FAILURE naming the member, the errback once', async () => {
  const app = await testApp();
  const { add, total, callbacks } = await arithmetic(app);
  const failures: TaskFailure[] = [];
  const boom = app.task('boom', { maxRetries: 2, retryDelay: 5 }, (_ctx, n: number): number => {
    throw new Error(`no ${n}`);
  });
  const errback = app.task('errback', (_ctx, failure: TaskFailure) => {
    failures.push(failure);
  });
  await startWorker(app);
  const result = await chord(group(add.s(1, 1), boom.s(7), add.s(2, 2)), total.s())
    .onError(errback.s())
    .delay();
  await assert.rejects(result.get({ timeout: 10_000 }), (error: ChordFailedError) => {
    assert.ok(error instanceof ChordFailedError, `a ChordFailedError, not ${error}`);
    assert.equal(error.name, 'ChordFailedError');
    assert.equal(error.code, 'CHORD_FAILED');
    assert.equal(error.chordId, result.id);
    assert.deepEqual(
      { index: error.failure.index, task: error.failure.task, error: error.failure.error.message },
      { index: 1, task: 'boom', error: 'no 7' },
    );
    assert.match(error.failure.taskId ?? '', /^[0-9a-f-]+$/);
    assert.match(
      error.message,
      new RegExp(`chord ${result.id} failed: member 1 \\(boom [0-9a-f-]+\\) failed: Error: no 7`),
    );
    return true;
  });
  await eventually('the errback to run', () => failures.length > 0);
  await drained(app);
  assert.equal(callbacks.get('total'), 0, 'the callback never ran');
  assert.equal(failures.length, 1, 'the errback ran once, not once per retry');
  assert.deepEqual(
    {
      taskId: failures[0]?.taskId,
      task: failures[0]?.task,
      name: failures[0]?.error.name,
      code: failures[0]?.error.code,
    },
    { taskId: result.id, task: 'total', name: 'ChordFailedError', code: 'CHORD_FAILED' },
  );
  assert.match(failures[0]?.error.message ?? '', /member 1 \(boom .*\) failed: Error: no 7/);
});

test('link and errback: on a signature and as applyAsync options; errbacks run once, when the call fails for good', async () => {
  const app = await testApp();
  const seen: { key: string; value: unknown }[] = [];
  const double = app.task('double', (_ctx, n: number) => n * 2);
  const record = app.task('record', (_ctx, value: unknown, key: string) => {
    seen.push({ key, value });
  });
  const fails = app.task('fails', { maxRetries: 2, retryDelay: 5 }, () => {
    throw new TypeError('bad input');
  });
  const flaky = app.task('flaky', { maxRetries: 2, retryDelay: 5 }, (ctx) => {
    if (ctx.attempt < 3) throw new Error('not yet');
    return 'third time';
  });
  const onFailure = app.task('on_failure', (_ctx, failure: TaskFailure, key: string) => {
    seen.push({ key, value: failure });
  });
  await startWorker(app);

  assert.equal(await (await double.s(2).onSuccess(record.s('link')).delay()).get({ timeout: 10_000 }), 4);
  await double.applyAsync([3], { link: [record.s('option'), record.s('option 2')] });
  const failed = await fails.s().onError(onFailure.s('errback')).delay();
  await fails.applyAsync([], { linkError: onFailure.s('linkError') });
  await flaky.s().onSuccess(record.s('after retries')).onError(onFailure.s('never')).delay();
  await eventually('links and errbacks to run', () => seen.length >= 6);
  await drained(app);

  const byKey = (key: string) => seen.filter((s) => s.key === key).map((s) => s.value);
  assert.deepEqual(byKey('link'), [4]);
  assert.deepEqual(byKey('option'), [6]);
  assert.deepEqual(byKey('option 2'), [6]);
  assert.deepEqual(byKey('after retries'), ['third time']);
  assert.deepEqual(byKey('never'), [], 'no errback for a call that succeeded after retries');
  assert.deepEqual(byKey('errback'), [
    { taskId: failed.id, task: 'fails', error: { name: 'TypeError', message: 'bad input' } },
  ]);
  assert.equal(byKey('linkError').length, 1, 'once, though the call ran three times');
});

test('nesting: a chain in a group in a chord, a chord in a chain, a chord in a chord, a chain ending in a group', async () => {
  const app = await testApp();
  const { add, double, total, collect } = await arithmetic(app);
  await startWorker(app, { concurrency: 8 });

  const nested = await chord(
    group(chain(add.s(1, 1), double.s()), group(add.s(2, 2), add.s(3, 3)), add.s(5, 5)),
    collect.s(),
  ).delay();
  assert.deepEqual(await nested.get({ timeout: 10_000 }), { values: [4, [4, 6], 10], extra: [] });

  // 1 + 2 = 3; then double(3) = 6 and add(3, 10) = 13 in parallel; total = 19; double → 38.
  const inChain = await chain(add.s(1, 2), chord(group(double.s(), add.s(10)), total.s()), double.s()).delay();
  assert.equal(await inChain.get({ timeout: 10_000 }), 38);

  // A group followed by a step is a chord, as in Celery.
  const upgraded = await chain(group(add.s(1, 1), add.s(2, 2)), total.s(), double.s()).delay();
  assert.equal(await upgraded.get({ timeout: 10_000 }), 12);

  const chordOfChords = await chord(
    [chord([add.s(1, 1), add.s(2, 2)], total.s()), chain(add.s(10, 10), chord([double.s(), double.s()], total.s()))],
    collect.s(),
  ).delay();
  assert.deepEqual(await chordOfChords.get({ timeout: 10_000 }), { values: [6, 80], extra: [] });

  const fanOut = await chain(add.s(1, 1), group(double.s(), add.s(5))).delay();
  assert.ok(fanOut instanceof GroupResult);
  assert.deepEqual(await fanOut.get({ timeout: 10_000 }), [4, 7]);
});

test('a failing step inside a chord member fails the chord, and the calls that would have followed it', async () => {
  const app = await testApp();
  const { add, double, total, callbacks } = await arithmetic(app);
  const boom = app.task('boom', (_ctx, _n: number): number => {
    throw new UnrecoverableError('step two broke');
  });
  await startWorker(app);
  const rest = double.s();
  const result = await chord([add.s(1, 1), chain(add.s(2, 2), boom.s(), rest)], total.s()).delay();
  await assert.rejects(
    result.get({ timeout: 10_000 }),
    /member 1 \(boom .*\) failed: UnrecoverableError: step two broke/,
  );
  await drained(app);
  assert.equal(callbacks.get('total'), 0);
});

test('a revoked or expired member fails its chord instead of leaving it waiting', async () => {
  const app = await testApp();
  const { add, total, callbacks } = await arithmetic(app);
  const revoked = await chord([add.s(1, 1), add.s(2, 2).set({ taskId: 'revoked-member' })], total.s()).delay();
  await app.result('revoked-member').revoke();
  const expired = await chord(
    [add.s(1, 1), add.s(3, 3).set({ expires: new Date(Date.now() - 1000) })],
    total.s(),
  ).delay();
  await startWorker(app);
  await assert.rejects(
    revoked.get({ timeout: 10_000 }),
    /member 1 \(add revoked-member\) failed: TaskRevokedError: revoked: task revoked-member was revoked/,
  );
  await assert.rejects(expired.get({ timeout: 10_000 }), /member 1 \(add .*\) failed: .*expired before it started/);
  await drained(app);
  assert.equal(callbacks.get('total'), 0);
});

test('a producer that registers no tasks sends them by name; a worker that knows them runs them', async () => {
  const app = await testApp();
  const { callbacks } = await arithmetic(app);
  await startWorker(app);
  const producer = new Taskfleet({
    broker: app.brokerUrl,
    backend: app.backendUrl,
    prefix: app.prefix,
    defaultQueue: app.defaultQueue,
  });
  try {
    const sum = await chord(
      [producer.signature<number>('add', [1, 2]), producer.signature<number>('add', [3, 4])],
      producer.signature<number, [number[]]>('total'),
    ).delay();
    assert.equal(await sum.get({ timeout: 10_000 }), 10);
    // Not checked by the producer: the worker dead-letters it, and the chain after it fails.
    const lost = await chain(
      producer.signature<number>('no_such_task'),
      producer.signature<number, [number]>('double'),
    ).delay();
    await assert.rejects(
      lost.get({ timeout: 10_000 }),
      /ChainFailed: an earlier step \(no_such_task .*\) failed: dead-lettered \(unknown-task\)/,
    );
    assert.equal(callbacks.get('total'), 1);
  } finally {
    await producer.close();
  }
});

test('refused at declaration or enqueue, with nothing sent: empty chord, unknown task, absurd depth or size, bad arguments', async () => {
  const app = await testApp();
  const { add, total } = await arithmetic(app);
  const isCode = (code: string) => (error: TaskfleetError) => {
    assert.equal(error.code, code, error.message);
    return true;
  };
  assert.throws(() => chord(group(), total.s()), isCode('EMPTY_CHORD'));
  assert.throws(() => chord([], total.s()), /a chord needs at least one member/);
  // A type error too (an empty group takes no input): cast, to see what the runtime says.
  await assert.rejects(chain(add.s(1, 1), group() as never, total.s() as never).delay(), isCode('EMPTY_CHORD'));

  await assert.rejects(app.signature('no_such_task').delay(), (error: TaskfleetError) => {
    assert.equal(error.code, 'UNKNOWN_TASK');
    assert.match(
      error.message,
      /no task named "no_such_task" is registered \(registered: add, double, total, collect\)/,
    );
    return true;
  });
  await assert.rejects(
    chord([add.s(1, 1)], app.signature<number, [number[]]>('no_such_callback')).delay(),
    isCode('UNKNOWN_TASK'),
  );

  let deep: Chain<[], number> = chain(add.s(1, 1));
  for (let i = 0; i < MAX_CANVAS_DEPTH + 5; i++) deep = chain(deep);
  await assert.rejects(deep.delay(), (error: CanvasError) => {
    assert.ok(error instanceof CanvasError);
    assert.equal(error.code, 'CANVAS_TOO_DEEP');
    assert.match(error.message, /more than 32 deep/);
    return true;
  });
  const huge = group(Array.from({ length: MAX_CANVAS_SIGNATURES + 1 }, (_, i) => add.s(i, i)));
  await assert.rejects(huge.delay(), isCode('CANVAS_TOO_LARGE'));

  await assert.rejects(
    chain(add.s(1, 1), add.s(new Date() as unknown as number)).delay(),
    (error: SerializationError) => {
      assert.ok(error instanceof SerializationError);
      assert.match(error.message, /argument 1 of add cannot be sent: a Date is not JSON/);
      return true;
    },
  );
  assert.throws(
    () => chord([add.s(1, 1)], group(total.s()) as never).delay(),
    /a chord's callback must be a task signature/,
  );
  await assert.rejects(
    chord([add.s(1, 1)], total.s().set({ countdown: 1000 })).delay(),
    /countdown, eta and expires are not supported on it/,
  );
  const backlog = await app.broker.backlog(app.defaultQueue);
  assert.equal(backlog.ready + backlog.delayed, 0, 'nothing was sent');
});

test('the chord script: slots filled twice or at the same instant enqueue the callback once, in slot order', async () => {
  const app = await testApp();
  const broker = app.broker.chords;
  assert.ok(broker, 'a Redis broker has chords');
  const redis = redisOf(app);
  const lanes = keysOf(app).lanes;
  const id = 'chord-under-test';
  const callback = createEnvelope({ id, task: 'collect', args: ['extra'], queue: app.defaultQueue });
  await broker.openChord({ id, size: 10, callback, ttlMs: 60_000 });
  const slot = (index: number) => ({ id, index, queue: app.defaultQueue });
  // Every slot twice, all at once: twenty script calls racing for ten slots.
  const outcomes = await Promise.all(
    [...Array.from({ length: 10 }, (_, i) => i), ...Array.from({ length: 10 }, (_, i) => i)].map((i) =>
      broker.completeChordMember(slot(i), { ok: true, value: { n: i, s: `"${i}"` } }, 60_000),
    ),
  );
  assert.equal(outcomes.filter((o) => o === 'completed').length, 1);
  assert.equal(outcomes.filter((o) => o === 'recorded').length, 9);
  assert.equal(outcomes.filter((o) => o === 'duplicate').length, 10);
  // Late: a redelivered member, a failure, a second opening. None changes anything.
  assert.equal(await broker.completeChordMember(slot(3), { ok: true, value: 'late' }, 60_000), 'duplicate');
  const failure = { index: 4, error: { name: 'Error', message: 'late failure' } };
  assert.equal(await broker.completeChordMember(slot(4), { ok: false, failure }, 60_000), 'duplicate');
  await broker.openChord({ id, size: 10, callback, ttlMs: 60_000 });
  assert.equal(await broker.completeChordMember(slot(5), { ok: true, value: 'reopened' }, 60_000), 'duplicate');
  assert.equal(
    await broker.completeChordMember({ ...slot(0), id: 'never-opened' }, { ok: true, value: 1 }, 1000),
    'unknown',
  );

  const entries = (await redis.xrange(lanes[1], '-', '+')) as [string, string[]][];
  assert.equal(entries.length, 1, 'one callback message');
  const message = JSON.parse(entries[0]?.[1][1] as string);
  assert.equal(message.id, id);
  assert.deepEqual(message.args, [Array.from({ length: 10 }, (_, i) => ({ n: i, s: `"${i}"` })), 'extra']);
  await redis.xgroup('CREATE', lanes[1], GROUP, '0', 'MKSTREAM').catch(() => {});
  await app.broker.purge(app.defaultQueue);
});
