import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { TaskQueueStatus } from '../api/types.ts';
import { sameStatus } from './same-status.ts';
import { setCondition } from './status.ts';

const at = new Date('2026-01-02T03:04:05Z');

/** What the operator builds: its own field order. */
function built(): TaskQueueStatus {
  return {
    observedGeneration: 3,
    conditions: setCondition([], 'Ready', 'True', 'Scaling', 'held at 0: no backlog', 3, at),
    backlog: { ready: 0, delayed: 0, inFlight: 0 },
    rates: { arrival: 0, completion: 0 },
    replicas: 0,
    readyReplicas: 0,
    desiredReplicas: 0,
    brokerKind: 'redis',
    backlogTotal: 0,
  };
}

/** The same status as the API server returns it: every object's keys sorted. */
function sorted<T>(value: T): T {
  if (Array.isArray(value)) return value.map(sorted) as T;
  if (value === null || typeof value !== 'object') return value;
  return Object.fromEntries(
    Object.keys(value)
      .sort()
      .map((k) => [k, sorted((value as Record<string, unknown>)[k])]),
  ) as T;
}

test('a status read back from the API server (keys sorted) is the same as the one written', () => {
  const written = built();
  const readBack = sorted(written);
  assert.notEqual(JSON.stringify(readBack), JSON.stringify(written), 'the key order really differs');
  assert.ok(sameStatus(readBack, written));
});

test('a changed field, or a rate that moved by more than rounding, is a change', () => {
  assert.ok(!sameStatus(sorted(built()), { ...built(), desiredReplicas: 1 }));
  assert.ok(!sameStatus(sorted(built()), { ...built(), rates: { arrival: 0.5, completion: 0 } }));
  assert.ok(sameStatus(sorted(built()), { ...built(), rates: { arrival: 0.001, completion: 0 } }));
});

test('an unchanged condition keeps its lastTransitionTime; a new status moves it', () => {
  const first = setCondition([], 'Active', 'False', 'Idle', 'the queue is idle', 1, at);
  const later = new Date(at.getTime() + 60_000);
  assert.deepEqual(setCondition(first, 'Active', 'False', 'Idle', 'the queue is idle', 1, later), first);
  const flipped = setCondition(first, 'Active', 'True', 'Backlog', 'the queue has work', 1, later);
  assert.equal(flipped[0]?.lastTransitionTime, later.toISOString());
});
