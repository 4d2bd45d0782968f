import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { WorkerHeartbeat } from 'taskfleet';
import type { TaskQueue } from '../api/types.ts';
import { deletionCosts, inFlightByPod, markBusyPods, POD_DELETION_COST } from './deletion-cost.ts';
import type { Deployment } from './drift.ts';

type Beat = Pick<WorkerHeartbeat, 'id' | 'hostname' | 'at' | 'active'>;
const beat = (id: string, hostname: string, at: number, active: number): Beat => ({
  id,
  hostname,
  at,
  active: Array.from({ length: active }, (_, i) => ({ id: `${id}-${i}`, task: 't', startedAt: at, attempt: 1 })),
});

describe('inFlightByPod', () => {
  test('each pod counts its worker’s calls in flight', () => {
    const busy = inFlightByPod([beat('w1', 'pod-a', 10, 3), beat('w2', 'pod-b', 10, 0)], new Set(['w1', 'w2']));
    assert.deepEqual(
      [...busy],
      [
        ['pod-a', 3],
        ['pod-b', 0],
      ],
    );
  });

  test('of two heartbeats with one pod’s name, the fresh one counts, even if older', () => {
    // A container restarted: the old worker's heartbeat (newer, busy) has not expired; the new one answered.
    const workers = [beat('old', 'pod-a', 20, 5), beat('new', 'pod-a', 10, 0)];
    assert.equal(inFlightByPod(workers, new Set(['new'])).get('pod-a'), 0);
    assert.equal(inFlightByPod([...workers].reverse(), new Set(['new'])).get('pod-a'), 0);
  });

  test('between heartbeats equally fresh, the newer counts; on a tie, the first', () => {
    const workers = [beat('w1', 'pod-a', 10, 1), beat('w2', 'pod-a', 30, 2), beat('w3', 'pod-a', 20, 3)];
    assert.equal(inFlightByPod(workers, new Set()).get('pod-a'), 2);
    assert.equal(inFlightByPod(workers, new Set(['w1', 'w2', 'w3'])).get('pod-a'), 2);
    const tie = [beat('w1', 'pod-a', 10, 1), beat('w2', 'pod-a', 10, 2)];
    assert.equal(inFlightByPod(tie, new Set()).get('pod-a'), 1);
  });
});

describe('deletionCosts', () => {
  const pod = (name: string, cost?: string) => ({
    metadata: { name, ...(cost !== undefined ? { annotations: { [POD_DELETION_COST]: cost } } : {}) },
  });

  test('a pod without a worker is idle (0); a pod whose annotation already says its cost is not written', () => {
    const costs = deletionCosts(
      [pod('a'), pod('b', '2'), pod('c', '1'), pod('d', '0')],
      new Map([
        ['b', 2],
        ['c', 4],
      ]),
    );
    assert.deepEqual(costs, [
      { pod: 'a', cost: '0' },
      { pod: 'c', cost: '4' },
    ]);
  });
});

describe('markBusyPods', () => {
  const tq = (resultBackend: boolean): TaskQueue => ({
    apiVersion: 'taskfleet.dev/v1alpha1',
    kind: 'TaskQueue',
    metadata: { name: 'emails', namespace: 'team-a', uid: 'uid-1' },
    spec: {
      broker: { redis: { url: 'redis://r:6379' } },
      ...(resultBackend ? { resultBackend: { redis: { url: 'redis://r:6379' } } } : {}),
    },
  });
  const deployment: Deployment = {
    metadata: { name: 'emails-workers' },
    spec: { selector: { matchLabels: { app: 'emails', tier: 'worker' } } },
  };

  function harness(withBackend: boolean) {
    const requests: string[] = [];
    const patches: { path: string; body: unknown }[] = [];
    const reports: string[] = [];
    const ctx = {
      kube: {
        get: async <T>(path: string, query?: Record<string, string>) => {
          requests.push(`GET ${path}?${new URLSearchParams(query)}`);
          return {
            items: [
              { metadata: { name: 'pod-a' } },
              { metadata: { name: 'pod-b', annotations: { [POD_DELETION_COST]: '0' } } },
              { metadata: { name: 'pod-c', deletionTimestamp: '2026-01-01T00:00:00Z' } },
            ],
          } as T;
        },
        patch: async <T>(path: string, body: unknown) => {
          patches.push({ path, body });
          return {} as T;
        },
      },
      resultBackend: async () =>
        withBackend
          ? {
              report: async (queue: string, options?: { expect?: (w: WorkerHeartbeat) => boolean }) => {
                const expected = ['pod-a', 'pod-b', 'pod-c'].filter((hostname) =>
                  options?.expect?.({ hostname } as WorkerHeartbeat),
                );
                reports.push(`${queue}: ${expected.join(',')}`);
                return { workers: [beat('w1', 'pod-a', 1, 2) as WorkerHeartbeat], answered: new Set(['w1']) };
              },
            }
          : undefined,
    };
    return { ctx, requests, patches, reports };
  }

  test('asks the live pods’ workers, and writes the cost of each pod whose cost changed', async () => {
    const { ctx, requests, patches, reports } = harness(true);
    await markBusyPods(ctx, tq(true), deployment);
    assert.deepEqual(requests, ['GET /api/v1/namespaces/team-a/pods?labelSelector=app%3Demails%2Ctier%3Dworker']);
    assert.deepEqual(reports, ['emails: pod-a,pod-b'], 'a pod going already is not waited for');
    assert.deepEqual(patches, [
      {
        path: '/api/v1/namespaces/team-a/pods/pod-a',
        body: { metadata: { annotations: { [POD_DELETION_COST]: '2' } } },
      },
    ]);
  });

  test('without a result backend or a selector, nothing is read or written', async () => {
    const none = harness(false);
    await markBusyPods(none.ctx, tq(false), deployment);
    const unlabelled = harness(true);
    await markBusyPods(unlabelled.ctx, tq(true), { metadata: { name: 'emails-workers' } });
    for (const { requests, patches } of [none, unlabelled]) {
      assert.deepEqual(requests, []);
      assert.deepEqual(patches, []);
    }
  });
});
