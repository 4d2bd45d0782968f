import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { FairQueue } from './fair-queue.ts';
import { WorkQueue } from './work-queue.ts';

/** The key a get() hands out, or 'waiting' if it has none to give yet. */
const now = <T>(promise: Promise<T>): Promise<T | 'waiting'> =>
  Promise.race([promise, new Promise<'waiting'>((resolve) => setImmediate(() => resolve('waiting')))]);

describe('WorkQueue: the controller-runtime semantics', () => {
  test('adds while queued collapse; an add while processing runs the key once more afterwards', async () => {
    const queue = new WorkQueue();
    queue.add('ns/a');
    queue.add('ns/a');
    assert.equal(queue.length, 1);
    assert.equal(await queue.get(), 'ns/a');
    queue.add('ns/a');
    assert.equal(queue.length, 0, 'not queued while it is processing');
    const next = queue.get();
    assert.equal(await now(next), 'waiting', 'a key is never processed twice at once');
    queue.done('ns/a');
    assert.equal(await next, 'ns/a');
    queue.close();
  });

  test('close ends every waiting get', async () => {
    const queue = new WorkQueue();
    const waiting = [queue.get(), queue.get()];
    queue.close();
    assert.deepEqual(await Promise.all(waiting), [undefined, undefined]);
    assert.equal(await queue.get(), undefined);
  });
});

describe('WorkQueue: fair between namespaces', () => {
  test('keys are served round-robin by namespace, not in the order they came', async () => {
    const queue = new WorkQueue();
    for (const key of ['a/1', 'a/2', 'a/3', 'a/4', 'b/1', 'b/2', 'c/1']) queue.add(key);
    const order: string[] = [];
    for (let i = 0; i < 7; i++) {
      const key = (await queue.get()) as string;
      order.push(key);
      queue.done(key);
    }
    assert.deepEqual(order, ['a/1', 'b/1', 'c/1', 'a/2', 'b/2', 'a/3', 'a/4']);
    queue.close();
  });

  test('a namespace with 50 slow keys cannot hold every worker: another namespace’s key starts at once', async () => {
    const queue = new WorkQueue({ perNamespace: 4 });
    const workers = Array.from({ length: 16 }, () => queue.get());
    for (let i = 0; i < 50; i++) queue.add(`slow/q${i}`);
    const handed = await Promise.all(workers.map(now));
    const busy = handed.filter((k) => k !== 'waiting');
    assert.equal(busy.length, 15, 'all but one worker, though the slow namespace is alone');
    assert.ok(busy.every((k) => String(k).startsWith('slow/')));
    const idle = workers[handed.indexOf('waiting')] as Promise<string | undefined>;
    queue.add('fast/q');
    assert.equal(await now(idle), 'fast/q', 'the idle worker takes the other tenant’s key without waiting');
    queue.close();
  });

  test('a namespace at its share yields the next free worker to one below it', async () => {
    const queue = new WorkQueue({ perNamespace: 1, reserve: 0 });
    for (let i = 1; i <= 5; i++) queue.add(`a/${i}`);
    const [first, second] = await Promise.all([queue.get(), queue.get()]);
    assert.deepEqual([first, second], ['a/1', 'a/2'], 'alone, a namespace may go over its share');
    queue.add('b/1'); // no worker is free: it waits behind a/3, a/4 and a/5
    queue.done('a/1');
    assert.equal(await queue.get(), 'b/1', 'not a/3: b is below its share');
    queue.close();
  });
});

describe('FairQueue', () => {
  test('the reserve: a namespace at its share does not take the last free units', () => {
    const fair = new FairQueue<string>({ share: 1, reserve: 2 });
    for (let i = 0; i < 5; i++) fair.push('a', `a${i}`);
    assert.equal(fair.take(5)?.item, 'a0', 'below its share: taken');
    assert.equal(fair.take(4)?.item, 'a1');
    assert.equal(fair.take(3)?.item, 'a2');
    assert.equal(fair.take(2), undefined, 'two free units stay for other namespaces');
    fair.push('b', 'b0');
    assert.equal(fair.take(2)?.item, 'b0');
    assert.equal(fair.active('a'), 3);
    fair.release('a');
    assert.equal(fair.active('a'), 2);
  });

  test('among namespaces all at their share, the one holding least goes first', () => {
    const fair = new FairQueue<string>({ share: 1, reserve: 0 });
    for (const item of ['a0', 'a1', 'a2']) fair.push('a', item);
    for (const item of ['b0', 'b1']) fair.push('b', item);
    const taken = Array.from({ length: 5 }, () => fair.take(5)?.item);
    assert.deepEqual(taken, ['a0', 'b0', 'a1', 'b1', 'a2']);
  });

  test('share and reserve are checked', () => {
    assert.throws(() => new FairQueue({ share: 0 }), RangeError);
    assert.throws(() => new FairQueue({ share: 1, reserve: -1 }), RangeError);
  });
});
