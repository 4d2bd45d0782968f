import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TaskQueue, TaskQueueStatus } from '../api/types.ts';
import { type Decision, EMPTY_HISTORY, type Observation } from '../scaling/policy.ts';
import { sameStatus } from './same-status.ts';
import { Scrubber } from './scrub.ts';
import {
  ConditionDraft,
  type ConditionUpdate,
  decisionConditions,
  queueStatus,
  refusedStatus,
  setCondition,
} from './status.ts';

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

describe('the status a reconcile writes', () => {
  const tq = (status?: TaskQueueStatus, paused = false): TaskQueue => ({
    apiVersion: 'taskfleet.dev/v1alpha1',
    kind: 'TaskQueue',
    metadata: { name: 'emails', namespace: 'team-a', generation: 4 },
    spec: { broker: { redis: { url: 'redis://r:6379' } }, ...(paused ? { scaling: { paused: true } } : {}) },
    ...(status ? { status } : {}),
  });
  const decision = (over: Partial<Decision> = {}): Decision => ({
    replicas: 3,
    reason: 'scaled 1 → 3: backlog 300 over target 100 per replica',
    active: true,
    fallback: false,
    recommended: 3,
    history: EMPTY_HISTORY,
    ...over,
  });
  const probed: Observation = {
    ok: true,
    backlog: { ready: 250, delayed: 20, inFlight: 30 },
    rates: { arrival: 5, completion: 4 },
    currentReplicas: 1,
    readyReplicas: 1,
  };
  const failed: Observation = { ok: false, error: 'no answer', currentReplicas: 1 };
  const byType = (updates: ConditionUpdate[]) => Object.fromEntries(updates.map((u) => [u.type, u]));

  test('the decision’s conditions: the limit that held the count, paused, and Active Unknown without a probe', () => {
    const limited = byType(decisionConditions(tq(undefined, true), probed, decision({ limitedBy: 'scaleUpPolicy' })));
    assert.deepEqual(Object.keys(limited), ['Ready', 'Active', 'ScalingLimited', 'Fallback', 'Paused']);
    assert.equal(limited.ScalingLimited?.reason, 'ScaleUpLimit');
    assert.equal(limited.Paused?.status, 'True');
    assert.equal(limited.Ready?.reason, 'Scaling');
    const blind = byType(decisionConditions(tq(), failed, decision({ fallback: true, active: false })));
    assert.deepEqual(
      [blind.Ready?.reason, blind.Active?.status, blind.ScalingLimited?.reason, blind.Fallback?.reason],
      ['BrokerUnreachable', 'Unknown', 'WithinLimits', 'ProbesFailing'],
    );
  });

  test('what a failed probe did not learn (backlog, rates) and a scale that did not happen stay as they were', () => {
    const before: TaskQueueStatus = {
      backlog: { ready: 9, delayed: 0, inFlight: 1 },
      backlogTotal: 10,
      lastScaleTime: '2026-01-01T00:00:00.000Z',
      lastScaleReason: 'scaled 0 → 1',
    };
    const outcome = {
      conditions: [],
      observation: failed,
      reading: undefined,
      decision: decision({ replicas: 1 }),
      replicas: 1,
      readyReplicas: 1,
      lastScale: undefined,
      schedules: undefined,
    };
    const status = queueStatus(tq(before), outcome);
    assert.deepEqual(status.backlog, before.backlog);
    assert.equal(status.backlogTotal, 10);
    assert.deepEqual(status.rates, {});
    assert.equal(status.lastScaleReason, 'scaled 0 → 1');
    assert.equal(status.observedGeneration, 4);

    const scaled = queueStatus(tq(before), {
      ...outcome,
      observation: probed,
      reading: { backlog: { ready: 250, delayed: 20, inFlight: 30 } },
      decision: decision({ perReplicaRate: 2 }),
      lastScale: { time: at.toISOString(), reason: 'scaled 1 → 3' },
    });
    assert.deepEqual(scaled.backlog, { ready: 250, delayed: 20, inFlight: 30 });
    assert.equal(scaled.backlogTotal, 300);
    assert.deepEqual(scaled.rates, { arrival: 5, completion: 4, perReplica: 2 });
    assert.equal(scaled.desiredReplicas, 3);
    assert.equal(scaled.lastScaleTime, at.toISOString());
  });

  test('a refusal sets Ready=False and keeps the rest; every condition message passes the scrubber', () => {
    const scrub = new Scrubber();
    scrub.secret('hunter2');
    const before: TaskQueueStatus = {
      desiredReplicas: 2,
      conditions: setCondition([], 'Active', 'True', 'Backlog', 'x', 3, at),
    };
    const refusal = { reason: 'TargetOwned', message: 'owned; hunter2', retry: true };
    const status = refusedStatus(tq(before), refusal, scrub, at.getTime());
    assert.equal(status.desiredReplicas, 2);
    assert.equal(status.observedGeneration, 4);
    assert.deepEqual(
      status.conditions?.map((c) => [c.type, c.status, c.reason, c.message]),
      [
        ['Ready', 'False', 'TargetOwned', 'owned; ***'],
        ['Active', 'True', 'Backlog', 'x'],
      ],
    );
    const draft = new ConditionDraft(scrub);
    draft.add({ type: 'BrokerReachable', status: 'False', reason: 'ProbeFailed', message: 'redis://u:hunter2@r' });
    assert.equal(draft.conditions(tq(), at.getTime())[0]?.message, 'redis://u:***@r');
  });
});
