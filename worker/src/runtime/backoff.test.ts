import assert from 'node:assert/strict';
import { test } from 'node:test';
import { type RetryPolicy, retryDelayMs } from './backoff.ts';

const policy: RetryPolicy = { retryDelay: 1000, retryBackoff: false, retryBackoffMax: 600_000, retryJitter: true };
const never = () => assert.fail('random() must not be called');

test('without backoff, every retry waits retryDelay, jitter or not', () => {
  for (const retry of [1, 2, 10]) {
    assert.equal(retryDelayMs(policy, retry, never), 1000);
    assert.equal(retryDelayMs({ ...policy, retryJitter: false }, retry, never), 1000);
  }
});

test('with backoff and no jitter, the delay doubles at each retry', () => {
  const exponential = { ...policy, retryBackoff: true, retryJitter: false };
  assert.deepEqual(
    [1, 2, 3, 4, 5].map((retry) => retryDelayMs(exponential, retry, never)),
    [1000, 2000, 4000, 8000, 16000],
  );
});

test('a backed-off delay stops at retryBackoffMax', () => {
  const capped = { ...policy, retryBackoff: true, retryJitter: false, retryBackoffMax: 5000 };
  assert.deepEqual(
    [1, 2, 3, 4, 50, 2000].map((retry) => retryDelayMs(capped, retry, never)),
    [1000, 2000, 4000, 5000, 5000, 5000],
  );
});

test('jitter picks uniformly in [0, delay], from the capped delay', () => {
  const jittered = { ...policy, retryBackoff: true, retryBackoffMax: 5000 };
  assert.equal(
    retryDelayMs(jittered, 3, () => 0),
    0,
  );
  assert.equal(
    retryDelayMs(jittered, 3, () => 0.5),
    2000,
  );
  assert.equal(
    retryDelayMs(jittered, 3, () => 0.999_999),
    4000,
  );
  assert.equal(
    retryDelayMs(jittered, 10, () => 0.5),
    2500,
  );
  assert.equal(
    retryDelayMs(jittered, 1, () => 0.3333),
    333,
  );
});

test('jitter uses Math.random when no source is given, staying in range', () => {
  const jittered = { ...policy, retryBackoff: true };
  for (let i = 0; i < 100; i++) {
    const delay = retryDelayMs(jittered, 2);
    assert.ok(Number.isInteger(delay) && delay >= 0 && delay <= 2000, String(delay));
  }
});
