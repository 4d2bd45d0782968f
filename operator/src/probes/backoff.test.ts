import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Backoff } from './backoff.ts';

test('Backoff: doubles per failure in a row, capped, per key; a success resets it', () => {
  const backoff = new Backoff({ baseMs: 1000, maxMs: 8000 });
  const delays: number[] = [];
  let now = 0;
  for (let i = 0; i < 6; i++) {
    const { failures, retryAt } = backoff.failed('a', 'no answer', now);
    assert.equal(failures, i + 1);
    delays.push(retryAt - now);
    assert.deepEqual(backoff.waiting('a', retryAt - 1), { failures: i + 1, detail: 'no answer', retryAt });
    assert.equal(backoff.waiting('a', retryAt), undefined, 'it may go again at retryAt');
    now = retryAt;
  }
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 8000, 8000]);
  assert.equal(backoff.waiting('b', now), undefined, 'another key is not held back');
  backoff.succeeded('a');
  assert.equal(backoff.failed('a', 'again', now).retryAt - now, 1000, 'after a success it starts over');
});

test('Backoff: by default 1 s, doubling up to 30 s', () => {
  const backoff = new Backoff();
  const delays = Array.from({ length: 7 }, () => backoff.failed('a', 'x', 0).retryAt);
  assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16_000, 30_000, 30_000]);
});

test('Backoff: keys nobody tried since their wait ended are pruned', () => {
  const backoff = new Backoff({ baseMs: 10 });
  backoff.failed('old', 'x', 0);
  backoff.failed('new', 'x', 1000);
  backoff.prune(500);
  assert.equal(backoff.size, 1);
  assert.ok(backoff.waiting('new', 1000));
});
