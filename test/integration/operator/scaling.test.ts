/**
 * More of the operator against the real control plane: spec changes reach the Deployment, an existing
 * Deployment is scaled through /scale alone, scale-down spares the pods that are running calls, and
 * the operator serves its metrics and health.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { Taskfleet, Worker } from 'taskfleet';
import { silentLogger } from '../../../worker/src/observe/logger.ts';
import { freePort } from '../../stack/process.ts';
import { eventually } from '../../support/eventually.ts';
import { inNamespace, kubectl } from '../../support/kube.ts';
import { operatorKubeconfig, startOperator } from '../../support/operator.ts';
import { useRedis } from '../../support/stack.ts';

const namespace = `scale-${randomUUID().slice(0, 8)}`;
const prefix = `sc-${randomUUID().slice(0, 8)}`;
const redisUrl = (await useRedis()).url;
const kubeconfig = await operatorKubeconfig(namespace);
const metricsPort = await freePort();
startOperator(kubeconfig, namespace, 'operator', {}, { metricsPort });
const app = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix });
after(() => app.close());
const noop = app.task('noop', () => null);

interface Json {
  // biome-ignore lint/suspicious/noExplicitAny: reading kubectl's JSON in assertions
  [key: string]: any;
}
const getJson = async (kind: string, name: string): Promise<Json> =>
  JSON.parse(await kubectl(['get', kind, name, '-n', namespace, '-o', 'json', '--show-managed-fields']));
const { applyTaskQueue: applyQueue } = inNamespace(namespace);
const worker = (concurrency: number) => ({
  concurrency,
  template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } },
});
const env = (deployment: Json) =>
  Object.fromEntries((deployment.spec.template.spec.containers[0].env as Json[]).map((e) => [e.name, e.value]));

test('a spec change reaches the Deployment (server-side apply), and replicas stay the scaler’s', async () => {
  const spec = {
    broker: { redis: { url: redisUrl, prefix } },
    worker: worker(16),
    scaling: { pollIntervalSeconds: 1, minReplicas: 2 },
  };
  await applyQueue('changing', spec);
  await eventually(
    '2 replicas (minReplicas)',
    async () => (await getJson('deployment', 'changing-workers').catch(() => undefined))?.spec.replicas === 2,
    30_000,
  );
  await applyQueue('changing', { ...spec, worker: worker(4) });
  const updated = await eventually('TASKFLEET_CONCURRENCY=4', async () => {
    const d = await getJson('deployment', 'changing-workers');
    return env(d).TASKFLEET_CONCURRENCY === '4' && d;
  });
  assert.equal(updated.spec.replicas, 2, 'the apply did not reset replicas');
  // The operator's apply never claims replicas, so it can never reset what /scale set.
  const applied = (updated.metadata.managedFields as Json[]).find(
    (m) => m.manager === 'taskfleet' && m.operation === 'Apply',
  );
  assert.ok(applied, 'the Deployment is applied with field manager taskfleet');
  assert.equal(applied.fieldsV1?.['f:spec']?.['f:replicas'], undefined);
});

test('scaleTargetRef: an existing Deployment is scaled through /scale, nothing else of it is touched', async () => {
  await kubectl([
    'create',
    'deployment',
    'existing',
    '--image=example.invalid/mine:1',
    '--replicas=1',
    '-n',
    namespace,
  ]);
  const before = await getJson('deployment', 'existing');
  const queue = `existing-${randomUUID().slice(0, 6)}`;
  await applyQueue('existing', {
    queue,
    broker: { redis: { url: redisUrl, prefix } },
    scaleTargetRef: { name: 'existing' },
    scaling: { pollIntervalSeconds: 1, targetBacklogPerReplica: 100 },
  });
  await noop.applyBulk(
    Array.from({ length: 300 }, () => []),
    { queue },
  );
  const after = await eventually(
    '3 replicas',
    async () => {
      const d = await getJson('deployment', 'existing');
      return d.spec.replicas === 3 && d;
    },
    30_000,
  );
  assert.deepEqual(after.spec.template, before.spec.template);
  assert.deepEqual(after.metadata.labels, before.metadata.labels);
  assert.equal(after.metadata.ownerReferences, undefined, 'an existing Deployment is not adopted');
  await app.broker.purge(queue);
});

test('scale-down spares busy workers: pods running calls get a higher pod-deletion-cost and are kept', async () => {
  const queue = `busy-${randomUUID().slice(0, 6)}`;
  await applyQueue('busy', {
    queue,
    broker: { redis: { url: redisUrl, prefix } },
    resultBackend: { redis: { url: redisUrl, prefix } },
    worker: worker(2),
    scaling: { pollIntervalSeconds: 1, targetBacklogPerReplica: 100, scaleDown: { stabilizationSeconds: 0 } },
  });
  await noop.applyBulk(
    Array.from({ length: 400 }, () => []),
    { queue },
  );
  await eventually(
    '4 replicas',
    async () => (await getJson('deployment', 'busy-workers').catch(() => undefined))?.spec.replicas === 4,
    30_000,
  );
  const pods = await eventually(
    '4 pods',
    async () => {
      const list = JSON.parse(
        await kubectl(['get', 'pods', '-n', namespace, '-l', 'taskfleet.dev/queue=busy', '-o', 'json']),
      ).items as Json[];
      return list.length === 4 && list.map((p) => p.metadata.name as string);
    },
    30_000,
  );

  // Two of the pods run a real worker (as the pod runner will), each stuck in a call until released.
  await app.broker.purge(queue);
  const busyApp = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix, defaultQueue: queue });
  after(() => busyApp.close());
  const release = Promise.withResolvers<void>();
  after(() => release.resolve());
  busyApp.task('hold', async () => {
    await release.promise;
    return null;
  });
  const busyPods = pods.slice(0, 2) as [string, string];
  for (const hostname of busyPods) {
    const w = new Worker(busyApp, {
      hostname,
      concurrency: 1,
      prefetch: 0,
      logger: silentLogger,
      heartbeatInterval: 200,
    });
    await w.start();
    after(() => w.stop({ graceMs: 100 }));
  }
  await busyApp.sendBulk(busyApp.definition('hold'), [[], []], {});
  await eventually(
    'both workers busy',
    async () => (await busyApp.control.workers()).filter((w) => w.active.length === 1).length === 2,
  );

  // Backlog is now just the 2 calls in flight: the operator scales down to 1 and must keep a busy pod.
  await eventually('1 replica', async () => (await getJson('deployment', 'busy-workers')).spec.replicas === 1, 30_000);
  const remaining = await eventually(
    'the ReplicaSet to delete 3 pods',
    async () => {
      const list = JSON.parse(
        await kubectl(['get', 'pods', '-n', namespace, '-l', 'taskfleet.dev/queue=busy', '-o', 'json']),
      ).items as Json[];
      const alive = list.filter((p) => !p.metadata.deletionTimestamp);
      return alive.length === 1 && alive;
    },
    30_000,
  );
  assert.ok(
    busyPods.includes(remaining[0]?.metadata.name),
    `kept ${remaining[0]?.metadata.name}, busy were ${busyPods.join(', ')}`,
  );
  assert.equal(remaining[0]?.metadata.annotations?.['controller.kubernetes.io/pod-deletion-cost'], '1');
});

test('the operator serves /metrics, /healthz and /readyz', async () => {
  const base = `http://127.0.0.1:${metricsPort}`;
  assert.equal((await fetch(`${base}/healthz`)).status, 200);
  assert.equal((await fetch(`${base}/readyz`)).status, 200);
  const metrics = await (await fetch(`${base}/metrics`)).text();
  for (const name of [
    'taskfleet_queue_backlog',
    'taskfleet_queue_desired_replicas',
    'taskfleet_queue_replicas',
    'taskfleet_probe_duration_seconds',
    'taskfleet_reconcile_duration_seconds',
    'taskfleet_scale_events_total',
    'taskfleet_operator_leader',
  ]) {
    assert.match(metrics, new RegExp(`^${name}`, 'm'), name);
  }
  assert.match(
    metrics,
    new RegExp(`^taskfleet_queue_backlog\\{namespace="${namespace}",taskqueue="busy",kind="in_flight"\\} \\d`, 'm'),
  );
  assert.match(metrics, /^taskfleet_operator_leader 1$/m);
});
