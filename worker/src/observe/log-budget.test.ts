import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LogBudget } from './log-budget.ts';

test('writes the first lines of a kind in each window, counts the rest and reports them once', () => {
  let now = 0;
  const budget = new LogBudget({ perWindow: 3, windowMs: 1000, now: () => now });
  const taken = Array.from({ length: 2000 }, () => budget.take('unknown-task'));
  assert.equal(taken.filter((t) => t.write).length, 3);
  assert.ok(taken.every((t) => t.suppressed === 0));
  // Another kind has a budget of its own.
  assert.deepEqual(budget.take('malformed'), { write: true, suppressed: 0 });
  now = 1000;
  assert.deepEqual(budget.take('unknown-task'), { write: true, suppressed: 1997 }, 'the next window reports the last');
  assert.deepEqual(budget.take('unknown-task'), { write: true, suppressed: 0 }, 'once');
  budget.take('unknown-task');
  budget.take('unknown-task');
  assert.deepEqual([...budget.drain()], [['unknown-task', 1]]);
  assert.deepEqual([...budget.drain()], []);
});
