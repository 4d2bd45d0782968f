import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TaskQueue, TaskQueueSpec } from '../api/types.ts';
import { type Deployment, type DriftContext, type DriftState, driftHash, phase, targetDeployment } from './drift.ts';
import type { ScalerRef } from './ownership.ts';

const UID = 'uid-emails';

function taskQueue(spec: Partial<TaskQueueSpec> = {}, generation = 1): TaskQueue {
  return {
    apiVersion: 'taskfleet.dev/v1alpha1',
    kind: 'TaskQueue',
    metadata: { name: 'emails', namespace: 'shop', uid: UID, generation },
    spec: {
      broker: { redis: { url: 'redis://redis.shop:6379/0' } },
      worker: { template: { spec: { containers: [{ name: 'worker', image: 'registry.example/emails:1' }] } } },
      ...spec,
    },
  };
}

/** The API server's answer to an apply: the object as sent, with an identity. */
function applied(body: unknown, uid = 'deploy-uid'): Deployment {
  const d = body as Deployment;
  return { ...d, metadata: { ...d.metadata, uid, resourceVersion: '1' } };
}

/** A cluster of one namespace: the informers' cache and the API server, which records the requests sent. */
function cluster() {
  const requests: string[] = [];
  const live = new Map<string, Deployment>();
  const scalers: ScalerRef[] = [];
  const ctx: DriftContext = {
    resyncMs: 600_000,
    cache: {
      deployment: (_namespace, name) => {
        const deployment = live.get(name);
        return deployment && { deployment, drift: driftHash(deployment) };
      },
      taskQueues: () => [],
      scalers: () => scalers,
    },
    kube: {
      find: async <T>(path: string) => {
        requests.push(`GET ${path}`);
        return live.get(path.split('/').at(-1) as string) as T | undefined;
      },
      apply: async <T>(path: string, body: unknown) => {
        requests.push(`APPLY ${path}`);
        const result = applied(body);
        live.set(result.metadata.name, result);
        return result as T;
      },
    },
  };
  return { ctx, requests, live, scalers };
}

const KEY = 'shop/emails';
const PATH = '/apis/apps/v1/namespaces/shop/deployments/emails-workers';

describe('the managed Deployment', () => {
  test('applied once, then read from the cache until resyncMs (and the queue’s phase) has passed', async () => {
    const { ctx, requests } = cluster();
    const state: DriftState = {};
    const t0 = 1_000_000;
    const first = await targetDeployment(ctx, KEY, taskQueue(), state, t0);
    assert.ok('deployment' in first);
    assert.deepEqual(requests, [`GET ${PATH}`, `APPLY ${PATH}`], 'not in the cache yet: read before the apply');
    requests.length = 0;
    const due = t0 + ctx.resyncMs * (1 + phase(KEY) / 4);
    assert.ok('deployment' in (await targetDeployment(ctx, KEY, taskQueue(), state, Math.ceil(due) - 1)));
    assert.deepEqual(requests, [], 'unchanged: nothing sent');
    await targetDeployment(ctx, KEY, taskQueue(), state, Math.ceil(due));
    assert.deepEqual(requests, [`APPLY ${PATH}`], 'resynced (ours in the cache: no read first)');
  });

  test('applied again at once for a new generation, a drift in the cluster, or a deletion', async () => {
    const { ctx, requests, live } = cluster();
    const state: DriftState = {};
    const now = 1_000_000;
    await targetDeployment(ctx, KEY, taskQueue(), state, now);
    requests.length = 0;

    const template = { spec: { containers: [{ name: 'worker', image: 'registry.example/emails:2' }] } };
    await targetDeployment(ctx, KEY, taskQueue({ worker: { template } }, 2), state, now);
    assert.deepEqual(requests, [`APPLY ${PATH}`], 'a new generation');
    requests.length = 0;

    const current = live.get('emails-workers') as Deployment;
    live.set('emails-workers', { ...current, metadata: { ...current.metadata, labels: { edited: 'by-hand' } } });
    await targetDeployment(ctx, KEY, taskQueue({ worker: { template } }, 2), state, now);
    assert.deepEqual(requests, [`APPLY ${PATH}`], 'someone edited it');
    requests.length = 0;

    live.clear();
    await targetDeployment(ctx, KEY, taskQueue({ worker: { template } }, 2), state, now);
    assert.deepEqual(requests, [`GET ${PATH}`, `APPLY ${PATH}`], 'someone deleted it');
  });

  test('a replicas change alone is no drift: the scaler owns replicas', () => {
    const d: Deployment = { metadata: { name: 'x', labels: { a: 'b' } }, spec: { replicas: 1 } };
    assert.equal(driftHash({ ...d, spec: { replicas: 7 }, status: { readyReplicas: 3 } }), driftHash(d));
    assert.notEqual(driftHash({ ...d, metadata: { name: 'x', labels: { a: 'c' } } }), driftHash(d));
  });

  test('a Deployment of that name this TaskQueue does not control is refused, and not written', async () => {
    const { ctx, requests, live } = cluster();
    live.set('emails-workers', { metadata: { name: 'emails-workers', uid: 'theirs' } });
    const found = await targetDeployment(ctx, KEY, taskQueue(), {}, 0);
    assert.ok('refused' in found);
    assert.equal(found.refused.reason, 'DeploymentConflict');
    assert.equal(found.refused.retry, true);
    assert.deepEqual(requests, [`GET ${PATH}`]);
  });

  test('a spec no Deployment can be built from is InvalidSpec, until the spec changes', async () => {
    const { ctx, requests } = cluster();
    const found = await targetDeployment(
      ctx,
      KEY,
      taskQueue({ worker: { template: { spec: { containers: [] } } } }),
      {},
      0,
    );
    assert.ok('refused' in found);
    assert.equal(found.refused.reason, 'InvalidSpec');
    assert.equal(found.refused.retry, false);
    assert.deepEqual(requests, []);
  });
});

describe('a scaleTargetRef', () => {
  const ref = (name: string): Partial<TaskQueueSpec> => ({ worker: undefined, scaleTargetRef: { name } });

  test('read with a GET; missing, it is TargetNotFound, looked at again every poll', async () => {
    const { ctx, requests, live } = cluster();
    live.set('web', { metadata: { name: 'web', uid: 'web-uid' }, spec: { replicas: 2 } });
    const found = await targetDeployment(ctx, KEY, taskQueue(ref('web')), {}, 0);
    assert.ok('deployment' in found);
    assert.equal(found.deployment.spec?.replicas, 2);
    const missing = await targetDeployment(ctx, KEY, taskQueue(ref('api')), {}, 0);
    assert.deepEqual(missing, {
      refused: {
        reason: 'TargetNotFound',
        message: 'Deployment api (scaleTargetRef) does not exist in shop',
        retry: true,
      },
    });
    assert.deepEqual(requests, [
      'GET /apis/apps/v1/namespaces/shop/deployments/web',
      'GET /apis/apps/v1/namespaces/shop/deployments/api',
    ]);
  });

  test('one an HPA drives is TargetOwned, refused from the cache without a request', async () => {
    const { ctx, requests, scalers } = cluster();
    scalers.push({ kind: 'HorizontalPodAutoscaler', name: 'web', target: { kind: 'Deployment', name: 'web' } });
    const found = await targetDeployment(ctx, KEY, taskQueue(ref('web')), {}, 0);
    assert.ok('refused' in found);
    assert.equal(found.refused.reason, 'TargetOwned');
    assert.equal(found.refused.retry, true);
    assert.deepEqual(requests, []);
  });
});

test('phase: a stable number in [0, 1) per key', () => {
  assert.equal(phase('a/b'), phase('a/b'));
  assert.notEqual(phase('a/b'), phase('a/c'));
  for (const key of ['', 'shop/emails', 'x'.repeat(300)]) assert.ok(phase(key) >= 0 && phase(key) < 1);
});
