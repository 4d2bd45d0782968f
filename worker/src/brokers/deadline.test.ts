import assert from 'node:assert/strict';
import { test } from 'node:test';
import { BrokerUnavailableError } from '../errors.ts';
import { Deadline, withDeadline } from './deadline.ts';

const broker = { what: 'broker', url: 'redis://:s3cret@redis.internal:6379/0' } as const;

test('a deadline lets work that settles in time settle as it does', async () => {
  const deadline = new Deadline(60_000, broker);
  try {
    assert.equal(await deadline.race(Promise.resolve(7), () => new Error('late')), 7);
    await assert.rejects(
      deadline.race(Promise.reject(new Error('own')), () => new Error('late')),
      /own/,
    );
  } finally {
    deadline.clear();
  }
});

test('a deadline that passes rejects the work it races with late(), and its signal aborts', async () => {
  const never = new Promise<never>(() => {});
  await withDeadline(5, broker, async (deadline) => {
    await assert.rejects(
      deadline.race(never, () => new Error('late')),
      /late/,
    );
    assert.equal(deadline.passed, true);
    assert.equal(deadline.signal.aborted, true);
    // Once passed, anything raced with it is given up at once.
    await assert.rejects(
      deadline.race(Promise.resolve(1), () => new Error('late again')),
      /late again/,
    );
  });
});

test('BrokerUnavailableError names the broker without its password and says whether anything was sent', () => {
  const deadline = new Deadline(10_000, broker);
  deadline.clear();
  const unsent = deadline.unavailable({ maybeSent: false, timedOut: true }, 'connect ECONNREFUSED 10.0.0.1:6379');
  assert.ok(unsent instanceof BrokerUnavailableError);
  assert.equal(unsent.code, 'BROKER_UNAVAILABLE');
  assert.equal(unsent.maybeSent, false);
  assert.equal(unsent.url, 'redis://:***@redis.internal:6379/0');
  assert.equal(
    unsent.message,
    "cannot reach the broker at redis://:***@redis.internal:6379/0 within 10000 ms (connect ECONNREFUSED 10.0.0.1:6379): nothing was sent, and nothing will be. Check that it runs at that address (TASKFLEET_BROKER, or the app's broker option), then call again; brokerTimeout (TASKFLEET_BROKER_TIMEOUT, ms) sets how long a call waits.",
  );
  assert.doesNotMatch(unsent.message, /s3cret/);

  const slow = deadline.unavailable({ maybeSent: true, timedOut: true });
  assert.equal(slow.maybeSent, true);
  assert.match(
    slow.message,
    /^sent the call to the broker at redis:\/\/:\*\*\*@redis.internal:6379\/0, which did not answer within 10000 ms: the call may have been applied \(a task enqueued\), or may still be, and calling again may do it twice/,
  );

  const dropped = new Deadline(500, { what: 'result backend', url: 'redis://results:6379/1?password=pw' });
  dropped.clear();
  const lost = dropped.unavailable({ maybeSent: true, timedOut: false }, 'read ECONNRESET (password=pw)');
  assert.match(
    lost.message,
    /^lost the connection to the result backend at redis:\/\/results:6379\/1\?password=\*\*\* after sending the call \(read ECONNRESET \(password=\*\*\*\)\)/,
  );
  assert.match(lost.message, /TASKFLEET_BACKEND, or the app's backend option/);
  assert.doesNotMatch(lost.message, /=pw/);
});
