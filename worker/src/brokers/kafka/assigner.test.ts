import assert from 'node:assert/strict';
import { test } from 'node:test';
import { assignPartitions, type MemberClaim } from './assigner.ts';

const claim = (owned: number[] = [], busy: number[] = []): MemberClaim => ({ owned: { t: owned }, busy: { t: busy } });
const shares = (assignment: Map<string, Record<string, number[]>>) =>
  Object.fromEntries([...assignment].map(([id, a]) => [id, [...(a.t ?? [])].sort((x, y) => x - y)]));

test('a first member takes every partition', () => {
  assert.deepEqual(shares(assignPartitions([{ id: 'a', claim: claim() }], { t: [0, 1, 2] })), { a: [0, 1, 2] });
});

test('a joining member gets a fair share, taken from partitions with nothing running', () => {
  const result = assignPartitions(
    [
      { id: 'a', claim: claim([0, 1, 2, 3], [3]) },
      { id: 'b', claim: claim() },
    ],
    { t: [0, 1, 2, 3] },
  );
  assert.deepEqual(shares(result), { a: [0, 3], b: [1, 2] });
});

test('a member keeps what it owns when the shares allow it', () => {
  const result = assignPartitions(
    [
      { id: 'a', claim: claim([0, 1]) },
      { id: 'b', claim: claim([2]) },
      { id: 'c', claim: claim() },
    ],
    { t: [0, 1, 2] },
  );
  assert.deepEqual(shares(result), { a: [0], b: [2], c: [1] });
});

test('shares differ by one at most, and the larger go to those who own most', () => {
  const result = assignPartitions(
    [
      { id: 'a', claim: claim() },
      { id: 'b', claim: claim([0, 1, 2, 3, 4]) },
    ],
    { t: [0, 1, 2, 3, 4] },
  );
  assert.deepEqual(shares(result), { a: [3, 4], b: [0, 1, 2] });
});

test('a member that left: its partitions go to the others, evenly', () => {
  const result = assignPartitions(
    [
      { id: 'a', claim: claim([0, 1]) },
      { id: 'c', claim: claim([4, 5]) },
    ],
    { t: [0, 1, 2, 3, 4, 5] },
  );
  assert.deepEqual(shares(result), { a: [0, 1, 2], c: [3, 4, 5] });
});

test('more members than partitions: some get none', () => {
  const result = assignPartitions(
    ['a', 'b', 'c'].map((id) => ({ id, claim: claim() })),
    { t: [0, 1] },
  );
  assert.deepEqual(Object.values(shares(result)).flat().sort(), [0, 1]);
  assert.equal(Object.values(shares(result)).filter((p) => p.length === 0).length, 1);
});
