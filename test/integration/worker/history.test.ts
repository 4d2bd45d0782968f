import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { type HistoryEntry, Taskfleet } from 'taskfleet';
import type { RedisBroker } from '../../../worker/src/brokers/redis/broker.ts';
import { queueKeys } from '../../../worker/src/brokers/redis/keys.ts';
import { startWorker, testApp } from '../../support/app.ts';
import { eventually } from '../../support/eventually.ts';
import { useRedis } from '../../support/stack.ts';

/** Redis's clock (epoch ms): the one history entries are stamped by, and aged by. */
async function redisTime(app: Taskfleet): Promise<number> {
  const [seconds, micros] = await (app.broker as RedisBroker).redis.time();
  return Number(seconds) * 1000 + Math.floor(Number(micros) / 1000);
}

/** Waits until Redis's clock reads `ms` or later, sleeping what is left each time (the local clock may drift from it). */
async function untilRedisTime(app: Taskfleet, ms: number): Promise<number> {
  for (let now = await redisTime(app); now < ms; now = await redisTime(app)) await sleep(ms - now);
  return ms;
}

/** Every entry of the default queue's history, newest first, a page at a time. */
async function everything(app: Taskfleet): Promise<HistoryEntry[]> {
  const all: HistoryEntry[] = [];
  let cursor: string | undefined;
  do {
    const page = await app.history.list(app.defaultQueue, { limit: 7, ...(cursor ? { cursor } : {}) });
    all.push(...page.entries);
    cursor = page.next;
  } while (cursor);
  return all;
}

test('the history records every outcome: success with its result, a retry then its success, failure, revoked, dead letter', async () => {
  const app = await testApp({ history: true });
  const add = app.task('add', (_ctx, a: number, b: number) => a + b);
  let tries = 0;
  const flaky = app.task('flaky', { maxRetries: 2, retryDelay: 10, retryJitter: false }, () => {
    tries++;
    if (tries === 1) throw new Error('not yet');
    return 'done';
  });
  const bad = app.task('bad', { maxRetries: 0 }, () => {
    throw new TypeError('broken');
  });
  const never = app.task('never', () => 'ran');
  // A producer that registers no tasks may send any name: this one no worker knows.
  const producer = new Taskfleet({
    broker: app.brokerUrl,
    backend: app.backendUrl,
    prefix: app.prefix,
    defaultQueue: app.defaultQueue,
  });
  after(() => producer.close());
  const unknown = producer.signature('not-registered');
  const revoked = await never.applyAsync([], { countdown: 300 });
  await revoked.revoke();
  const calls = {
    add: await add.delay(2, 3),
    flaky: await flaky.delay(),
    bad: await bad.delay(),
    unknown: await unknown.delay(),
  };
  await startWorker(app);
  await calls.add.get({ timeout: 10_000 });
  await calls.flaky.get({ timeout: 10_000 });
  await assert.rejects(calls.bad.get({ timeout: 10_000 }));
  await assert.rejects(calls.unknown.get({ timeout: 10_000 }));
  await eventually(
    'the revoked call settled',
    async () => (await app.history.entry(app.defaultQueue, revoked.id)) !== undefined,
  );

  const entry = async (id: string) => (await app.history.entry(app.defaultQueue, id)) as HistoryEntry;
  const ok = await entry(calls.add.id);
  assert.equal(ok.state, 'SUCCESS');
  assert.equal(ok.task, 'add');
  assert.deepEqual(ok.args, [2, 3]);
  assert.equal(ok.result, 5);
  assert.equal(ok.attempt, 1);
  assert.equal(ok.queue, app.defaultQueue);
  assert.match(ok.worker, /./);
  assert.ok(
    ok.startedAt !== undefined && ok.finishedAt >= ok.startedAt && ok.startedAt >= (ok.createdAt ?? Number.NaN),
  );

  // The index points at a task's latest attempt; the history has both.
  const retried = await entry(calls.flaky.id);
  assert.deepEqual([retried.state, retried.attempt, retried.result], ['SUCCESS', 2, 'done']);
  const all = await everything(app);
  const flakyEntries = all.filter((e) => e.id === calls.flaky.id);
  assert.deepEqual(
    flakyEntries.map((e) => [e.state, e.attempt, e.error?.message]),
    [
      ['SUCCESS', 2, undefined],
      ['RETRY', 1, 'not yet'],
    ],
    'newest first',
  );
  assert.ok(flakyEntries[1]?.retryAt !== undefined);

  const failed = await entry(calls.bad.id);
  assert.deepEqual([failed.state, failed.error?.name, failed.error?.message], ['FAILURE', 'TypeError', 'broken']);
  assert.match(failed.error?.stack ?? '', /broken/);

  const letter = await entry(calls.unknown.id);
  assert.deepEqual([letter.state, letter.deadLetter], ['FAILURE', 'unknown-task']);

  const skipped = await entry(revoked.id);
  assert.equal(skipped.state, 'REVOKED');
  assert.equal(skipped.startedAt, undefined, 'it never ran');

  assert.equal(all.length, 6, 'one entry per attempt that ended');
  assert.equal(await app.history.size(app.defaultQueue), 6);
  const failures = await app.history.list(app.defaultQueue, { state: 'FAILURE' });
  assert.deepEqual(new Set(failures.entries.map((e) => e.id)), new Set([calls.bad.id, calls.unknown.id]));
  assert.equal(failures.next, undefined, 'one page holds them');
  const byTask = await app.history.list(app.defaultQueue, { task: 'flaky' });
  assert.deepEqual(
    byTask.entries.map((e) => e.state),
    ['SUCCESS', 'RETRY'],
  );
});

test('since and until select the entries written in a time window', async () => {
  const app = await testApp({ history: true });
  const ok = app.task('ok', (_ctx, n: number) => n);
  await startWorker(app);
  // A millisecond of Redis's clock that begins after everything written so far.
  const nextMillisecond = async () => untilRedisTime(app, (await redisTime(app)) + 1);
  await (await ok.delay(1)).get({ timeout: 10_000 });
  const from = await nextMillisecond();
  const middle = await ok.delay(2);
  await middle.get({ timeout: 10_000 });
  const to = await nextMillisecond();
  await (await ok.delay(3)).get({ timeout: 10_000 });
  const page = await app.history.list(app.defaultQueue, { since: from, until: to });
  assert.deepEqual(
    page.entries.map((e) => e.id),
    [middle.id],
  );
  assert.equal((await app.history.list(app.defaultQueue, { since: to })).entries.length, 1);
  assert.equal((await app.history.list(app.defaultQueue, { until: from })).entries.length, 1);
});

test('the history keeps at most maxEntries, the index only for what it keeps', async () => {
  const app = await testApp({ history: { maxEntries: 25 } });
  const ok = app.task('ok', (_ctx, n: number) => n);
  await startWorker(app);
  const calls = await ok.applyBulk(Array.from({ length: 100 }, (_, n) => [n] as [number]));
  await Promise.all(calls.map((c) => c.get({ timeout: 10_000 })));
  await eventually('the history trimmed to 25', async () => (await app.history.size(app.defaultQueue)) === 25);
  const redis = (app.broker as RedisBroker).redis;
  const keys = queueKeys(app.prefix, app.defaultQueue);
  assert.equal(await redis.hlen(keys.historyIndex), 25, 'the index holds the kept entries only');
  assert.equal(await redis.llen(keys.historyOrder), 25, 'and so does their order');
  const kept = await everything(app);
  assert.equal(kept.length, 25);
  for (const e of kept) assert.ok(await app.history.entry(app.defaultQueue, e.id), `${e.id} is found by id`);
});

test('a history over a bound just lowered comes down to it, at most 100 + n entries a call', async () => {
  const { url } = await useRedis();
  const first = await testApp({ history: { maxEntries: 1000 } });
  const ok = first.task('ok', (_ctx, n: number) => n);
  const worker = await startWorker(first);
  await Promise.all(
    (await ok.applyBulk(Array.from({ length: 300 }, (_, n) => [n] as [number]))).map((c) => c.get({ timeout: 10_000 })),
  );
  await worker.stop({ graceMs: 1000 });
  assert.equal(await first.history.size(first.defaultQueue), 300);
  // The same queue, its workers now keeping 10.
  const lowered = await testApp({
    broker: url,
    backend: url,
    prefix: first.prefix,
    defaultQueue: first.defaultQueue,
    history: { maxEntries: 10 },
  });
  const again = lowered.task('ok', (_ctx, n: number) => n);
  await startWorker(lowered);
  const sizes: number[] = [];
  for (let i = 0; i < 4; i++) {
    await (await again.delay(i)).get({ timeout: 10_000 });
    sizes.push(await lowered.history.size(lowered.defaultQueue));
  }
  assert.deepEqual(sizes, [200, 100, 10, 10], 'each call removes up to 101: 301 → 200 → 100 → 10, then it holds');
});

test('the history drops entries older than maxAgeMs as new ones are written', async () => {
  const app = await testApp({ history: { maxAgeMs: 500 } });
  const ok = app.task('ok', (_ctx, n: number) => n);
  await startWorker(app);
  const old = await Promise.all(Array.from({ length: 10 }, (_, n) => ok.delay(n)));
  await Promise.all(old.map((c) => c.get({ timeout: 10_000 })));
  // Until every entry written so far is older than maxAgeMs by Redis's clock, which ages them.
  await untilRedisTime(app, (await redisTime(app)) + 501);
  const fresh = await ok.delay(99);
  await fresh.get({ timeout: 10_000 });
  const kept = await everything(app);
  assert.deepEqual(
    kept.map((e) => e.id),
    [fresh.id],
  );
  assert.equal(await app.history.entry(app.defaultQueue, old[0]!.id), undefined);
  const redis = (app.broker as RedisBroker).redis;
  assert.equal(await redis.hlen(queueKeys(app.prefix, app.defaultQueue).historyIndex), 1);
});

test('an entry over maxEntryBytes leaves out the message it ran first (its size kept), then the result', async () => {
  const app = await testApp({ history: { maxEntryBytes: 1024 } });
  const big = app.task('big', (_ctx, text: string, times: number) => text.repeat(times));
  await startWorker(app);
  const withoutMessage = await big.delay('x'.repeat(300), 2);
  const withoutResult = await big.delay('y'.repeat(100), 10);
  await withoutMessage.get({ timeout: 10_000 });
  await withoutResult.get({ timeout: 10_000 });
  const entry = async (id: string) => (await app.history.entry(app.defaultQueue, id)) as HistoryEntry;

  // The result record (about 900 bytes) fits; with the message it ran (about 600) it would not.
  const first = await entry(withoutMessage.id);
  assert.equal(first.result, 'x'.repeat(600));
  assert.equal(first.args, undefined);
  assert.ok((first.omitted?.message ?? 0) > 300, `the message's size is kept: ${JSON.stringify(first.omitted)}`);
  // The result (1,002 bytes as JSON) does not fit at all; the outcome without it and the message do.
  const second = await entry(withoutResult.id);
  assert.equal(second.result, undefined);
  assert.deepEqual(second.omitted, { result: 1002 });
  assert.deepEqual(second.args, ['y'.repeat(100), 10]);

  const raw = (await (app.broker as RedisBroker).redis.xrange(
    queueKeys(app.prefix, app.defaultQueue).history,
    '-',
    '+',
  )) as [string, string[]][];
  for (const [, fields] of raw) {
    const bytes = fields.filter((_, k) => k % 2 === 1 && ['o', 'm'].includes(fields[k - 1] as string));
    assert.ok(Buffer.byteLength(bytes.join('')) <= 1024, 'the outcome and the message together fit');
  }
});

test('by default no history is written, and a bad bound is refused with the option named', async () => {
  const app = await testApp();
  const ok = app.task('ok', () => 1);
  await startWorker(app);
  await (await ok.delay()).get({ timeout: 10_000 });
  assert.equal(await app.history.size(app.defaultQueue), 0);
  await assert.rejects(
    testApp({ history: { maxEntries: 0 } }),
    /history\.maxEntries must be a whole number ≥ 1, not 0/,
  );
  await assert.rejects(app.history.list(app.defaultQueue, { cursor: '1-0; FLUSHALL' }), /cursor must be a page's next/);
  await assert.rejects(
    app.history.list(app.defaultQueue, { limit: 5000 }),
    /limit must be a whole number from 1 to 1,000/,
  );
});
