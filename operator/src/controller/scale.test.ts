import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TaskQueue, TaskQueueSpec } from '../api/types.ts';
import { OperatorMetrics } from '../runtime/metrics.ts';
import { type Decision, EMPTY_HISTORY, type History } from '../scaling/policy.ts';
import type { Deployment } from './drift.ts';
import { type ScaleContext, type ScaleState, scale } from './scale.ts';

const tq = (spec: Partial<TaskQueueSpec> = {}): TaskQueue => ({
  apiVersion: 'taskfleet.dev/v1alpha1',
  kind: 'TaskQueue',
  metadata: { name: 'emails', namespace: 'shop', uid: 'uid-1' },
  spec: { broker: { redis: { url: 'redis://r:6379' } }, ...spec },
});
const deployment: Deployment = {
  metadata: { name: 'emails-workers', resourceVersion: '42' },
  spec: { replicas: 4, selector: { matchLabels: { app: 'emails' } } },
};
const next: History = { ...EMPTY_HISTORY, failures: 0, lastActiveAt: 1 };
const decision = (replicas: number): Decision => ({
  replicas,
  reason: `scaled 4 → ${replicas}`,
  active: true,
  fallback: false,
  recommended: replicas,
  history: next,
});

function harness({ failPatch = false, readSecrets = true } = {}) {
  const sent: string[] = [];
  const events: string[] = [];
  const backends: string[] = [];
  const ctx: ScaleContext = {
    kube: {
      get: async <T>(path: string) => {
        sent.push(`GET ${path}`);
        return { items: [] } as T;
      },
      patch: async <T>(path: string, body: unknown) => {
        sent.push(`PATCH ${path} ${JSON.stringify(body)}`);
        if (failPatch) throw new Error('409 Conflict');
        return {} as T;
      },
    },
    resultBackend: async () => {
      backends.push('read');
      return undefined;
    },
    metrics: new OperatorMetrics(),
    readSecrets,
    event: async (type, reason, message) => {
      events.push(`${type} ${reason}: ${message}`);
    },
    say: () => {},
  };
  return { ctx, sent, events, backends };
}

describe('scale', () => {
  test('an unchanged count sends nothing, and the decision’s history is kept', async () => {
    const { ctx, sent, events } = harness();
    const state: ScaleState = { history: EMPTY_HISTORY };
    assert.equal(await scale(ctx, tq(), state, deployment, decision(4), 0), undefined);
    assert.deepEqual(sent, []);
    assert.deepEqual(events, []);
    assert.equal(state.history, next);
  });

  test('a change patches /scale at the Deployment’s resourceVersion, with a Scaled Event', async () => {
    const { ctx, sent, events, backends } = harness();
    const state: ScaleState = { history: EMPTY_HISTORY };
    const now = Date.parse('2026-01-02T03:04:05Z');
    const last = await scale(ctx, tq(), state, deployment, decision(6), now);
    assert.deepEqual(last, { time: '2026-01-02T03:04:05.000Z', reason: 'scaled 4 → 6' });
    assert.deepEqual(sent, [
      'PATCH /apis/apps/v1/namespaces/shop/deployments/emails-workers/scale {"metadata":{"resourceVersion":"42"},"spec":{"replicas":6}}',
    ]);
    assert.deepEqual(backends, [], 'a scale-up ranks no pods');
    assert.deepEqual(events, ['Normal Scaled: scaled 4 → 6']);
    assert.equal(state.history, next);
  });

  test('a /scale refused leaves the history as it was: no scale event that never happened', async () => {
    const { ctx, events } = harness({ failPatch: true });
    const state: ScaleState = { history: EMPTY_HISTORY };
    await assert.rejects(scale(ctx, tq(), state, deployment, decision(6), 0), /409/);
    assert.equal(state.history, EMPTY_HISTORY);
    assert.deepEqual(events, []);
  });

  test('a scale-down ranks the pods first, unless spareBusyWorkers is off or the backend URL is not readable', async () => {
    const backend = { resultBackend: { redis: { urlFrom: { secretKeyRef: { name: 'redis', key: 'url' } } } } };
    const ranked = harness();
    await scale(ranked.ctx, tq(backend), { history: EMPTY_HISTORY }, deployment, decision(2), 0);
    assert.deepEqual(ranked.backends, ['read']);
    const off = harness();
    await scale(
      off.ctx,
      tq({ ...backend, scaling: { spareBusyWorkers: false } }),
      { history: EMPTY_HISTORY },
      deployment,
      decision(2),
      0,
    );
    assert.deepEqual(off.backends, []);
    const noSecrets = harness({ readSecrets: false });
    await scale(noSecrets.ctx, tq(backend), { history: EMPTY_HISTORY }, deployment, decision(2), 0);
    assert.deepEqual(noSecrets.backends, []);
    const inline = harness({ readSecrets: false });
    await scale(
      inline.ctx,
      tq({ resultBackend: { redis: { url: 'redis://r:6379' } } }),
      { history: EMPTY_HISTORY },
      deployment,
      decision(2),
      0,
    );
    assert.deepEqual(inline.backends, ['read']);
  });
});
