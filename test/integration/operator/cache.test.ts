/**
 * The operator polls from its informers' caches: an unchanged queue costs no API request per poll, yet a
 * managed Deployment that someone deletes or edits is put back, and the status is written only when it
 * changes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../../support/eventually.ts';
import { inNamespace, type Json, kubectl } from '../../support/kube.ts';
import { operatorKubeconfig, startOperator } from '../../support/operator.ts';
import { apiRequests, freePort } from '../../support/operator-metrics.ts';
import { useRedis } from '../../support/stack.ts';

const namespace = `cache-${randomUUID().slice(0, 8)}`;
const prefix = `ca-${randomUUID().slice(0, 8)}`;
const redisUrl = (await useRedis()).url;
const kubeconfig = await operatorKubeconfig(namespace);
const metricsPort = await freePort();
// It watches this namespace only: the requests it counts are then this queue's, not those of queues other
// test files leave behind elsewhere in the cluster (in namespaces still being deleted).
const operator = startOperator(
  kubeconfig,
  namespace,
  'operator',
  { TASKFLEET_WATCH_NAMESPACES: namespace },
  { metricsPort },
);

const { get: getJson, applyTaskQueue } = inNamespace(namespace);
const env = (deployment: Json) =>
  Object.fromEntries((deployment.spec.template.spec.containers[0].env as Json[]).map((e) => [e.name, e.value]));

const requests = () => apiRequests(metricsPort);
const reconciles = async () =>
  Number(
    /^taskfleet_reconcile_duration_seconds_count (\d+)/m.exec(
      await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text(),
    )?.[1] ?? 0,
  );

await applyTaskQueue('cached', {
  queue: `cached-${randomUUID().slice(0, 6)}`,
  broker: { redis: { url: redisUrl, prefix } },
  worker: { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } },
  scaling: { pollIntervalSeconds: 1, minReplicas: 2 },
});

test('an unchanged queue is polled without API requests: no apply, no status write', async () => {
  await eventually('the queue Ready', async () => {
    const tq = await getJson('taskqueue', 'cached');
    return tq?.status?.conditions?.some((c: Json) => c.type === 'Ready' && c.status === 'True');
  });
  // Settled: the Deployment controller has made the minReplicas pods (the status shows the Deployment's
  // count, which it updates on its own time), and two polls have passed without a status write.
  await eventually('the Deployment at minReplicas, in the status too', async () => {
    const deployment = await getJson('deployment', 'cached-workers');
    const tq = await getJson('taskqueue', 'cached');
    return deployment?.status?.replicas === 2 && tq?.status?.replicas === 2;
  });
  let since: { version: string; polls: number } | undefined;
  await eventually('two polls without a status write', async () => {
    const version = (await getJson('taskqueue', 'cached'))?.metadata.resourceVersion;
    const polls = await reconciles(); // after the read: a poll counted here has written what it writes
    if (since === undefined || since.version !== version) {
      since = { version, polls };
      return false;
    }
    return polls - since.polls >= 2;
  });
  const before = await requests();
  const polls = await reconciles();
  await sleep(4000);
  const after = await requests();
  assert.ok((await reconciles()) - polls >= 3, 'the queue was polled meanwhile');
  for (const kind of ['APPLY deployments', 'PATCH taskqueues/status', 'GET taskqueues', 'GET deployments']) {
    assert.equal(after.get(kind) ?? 0, before.get(kind) ?? 0, `${kind} while nothing changed`);
  }
});

test('a deleted managed Deployment is recreated at once', async () => {
  const original = await eventually('the Deployment', () => getJson('deployment', 'cached-workers'));
  await kubectl(['delete', 'deployment', 'cached-workers', '-n', namespace, '--wait=false']);
  const recreated = await eventually(
    'a new Deployment',
    async () => {
      const d = await getJson('deployment', 'cached-workers');
      return d && d.metadata.uid !== original.metadata.uid && !d.metadata.deletionTimestamp && d;
    },
    30_000,
  );
  assert.equal(recreated.metadata.ownerReferences?.[0]?.name, 'cached');
  await eventually('the new Deployment scaled to minReplicas (it starts at 1)', async () => {
    return (await getJson('deployment', 'cached-workers'))?.spec?.replicas === 2;
  });
});

test('a managed Deployment edited by someone else is put back (drift), other fields are left alone', async () => {
  await kubectl([
    'set',
    'env',
    'deployment/cached-workers',
    '-n',
    namespace,
    '-c',
    'worker',
    'TASKFLEET_CONCURRENCY=99',
    'SOMEONE_ELSES=kept',
  ]);
  const restored = await eventually(
    'TASKFLEET_CONCURRENCY back to 16',
    async () => {
      const d = await getJson('deployment', 'cached-workers');
      return d && env(d).TASKFLEET_CONCURRENCY === '16' && d;
    },
    30_000,
  );
  assert.equal(env(restored).SOMEONE_ELSES, 'kept', 'a field the operator does not own stays');
  assert.equal(operator.child.exitCode, null, operator.output().slice(-2000));
});
