/**
 * The confused deputy, refused: a TaskQueue author must not be able to make the operator scale or take
 * over a Deployment that something else already drives. A scaleTargetRef driven by a
 * HorizontalPodAutoscaler, a KEDA ScaledObject (a stand-in CRD here) or another TaskQueue gets
 * Ready=False, reason TargetOwned, naming the owner, and is not scaled; a managed `<name>-workers` that
 * already exists and is not the TaskQueue's gets DeploymentConflict, and is not written.
 *
 * On a control plane of its own (test/support/private-kube.ts): an operator of another test file, started
 * before the ScaledObject CRD existed, would look for ScaledObjects only a minute later, and could scale
 * the target meanwhile.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { crdEstablished } from '../../support/crds.ts';
import { eventually } from '../../support/eventually.ts';
import { condition, inNamespace, type Json, kubectlWith } from '../../support/kube.ts';
import { startOperator } from '../../support/operator.ts';
import { privateKube, privateOperatorKubeconfig } from '../../support/private-kube.ts';
import { useRedis } from '../../support/stack.ts';

const kube = await privateKube();
const kubectl = (args: readonly string[], options: { input?: string } = {}) => kubectlWith(kube, args, options);
const namespace = `owned-${randomUUID().slice(0, 8)}`;
const prefix = `owned-${randomUUID().slice(0, 6)}`;
const { get, replicas, events } = inNamespace(namespace, kube);
const worker = { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } };

/** KEDA's ScaledObject, as far as the operator reads it: a stand-in CRD. */
const KEDA_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'scaledobjects.keda.sh' },
  spec: {
    group: 'keda.sh',
    scope: 'Namespaced',
    names: { plural: 'scaledobjects', singular: 'scaledobject', kind: 'ScaledObject', listKind: 'ScaledObjectList' },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } },
      },
    ],
  },
};

const { url: redisUrl } = await useRedis();
// Before the operator starts: it lists ScaledObjects at start (and only every minute while they are not
// served). The control plane is this file's alone, so the CRD goes with it.
await kubectl(['create', '-f', '-'], { input: JSON.stringify(KEDA_CRD) });
await crdEstablished(kube, 'scaledobjects.keda.sh');
const kubeconfig = await privateOperatorKubeconfig(kube, namespace);
const operator = startOperator(kubeconfig, namespace, 'operator-owned');

const apply = (input: Json) => kubectl(['apply', '-f', '-'], { input: JSON.stringify(input) });
const queue = (name: string, spec: Json) =>
  apply({ apiVersion: 'taskfleet.dev/v1alpha1', kind: 'TaskQueue', metadata: { name, namespace }, spec });
const deployment = (name: string, count: number) =>
  kubectl(['create', 'deployment', name, '-n', namespace, '--image=example.invalid/app:1', `--replicas=${count}`]);
const broker = { redis: { url: redisUrl, prefix } };
/** A scaling that would move the target to `n` at once, were the operator allowed to. */
const pinned = (n: number) => ({ pollIntervalSeconds: 1, minReplicas: n, maxReplicas: n });

async function refused(name: string, reason: string): Promise<Json> {
  return eventually(`${name}: Ready=False ${reason}`, async () => {
    const tq = await get('taskqueue', name);
    return condition(tq, 'Ready')?.reason === reason && tq;
  }).catch((error) => {
    throw new Error(`${error.message}\noperator output:\n${operator.output().slice(-3000)}`);
  });
}

/** Field managers of a Deployment that are the operator's. */
async function taskfleetManagers(name: string): Promise<string[]> {
  const d = JSON.parse(
    await kubectl(['get', 'deployment', name, '-n', namespace, '-o', 'json', '--show-managed-fields']),
  ) as Json;
  return (d.metadata.managedFields as Json[]).map((f) => f.manager as string).filter((m) => m.startsWith('taskfleet'));
}

test('a Deployment an HPA drives: TargetOwned naming the HPA, not scaled; scaled once the HPA is gone', async () => {
  await deployment('web', 2);
  await apply({
    apiVersion: 'autoscaling/v2',
    kind: 'HorizontalPodAutoscaler',
    metadata: { name: 'web-cpu', namespace },
    spec: {
      scaleTargetRef: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' },
      minReplicas: 1,
      maxReplicas: 3,
      metrics: [
        { type: 'Resource', resource: { name: 'cpu', target: { type: 'Utilization', averageUtilization: 80 } } },
      ],
    },
  });
  await queue('hijack', { broker, scaleTargetRef: { name: 'web' }, scaling: pinned(4) });
  const tq = await refused('hijack', 'TargetOwned');
  assert.equal(condition(tq, 'Ready')?.status, 'False');
  assert.match(
    condition(tq, 'Ready')?.message,
    /^Deployment web \(spec\.scaleTargetRef\) is already scaled by HorizontalPodAutoscaler web-cpu: /,
  );
  assert.ok(
    (await events('hijack')).some((e) =>
      e.startsWith(
        'TargetOwned: Deployment web (spec.scaleTargetRef) is already scaled by HorizontalPodAutoscaler web-cpu',
      ),
    ),
  );
  assert.equal(await replicas('web'), 2);
  assert.deepEqual(await taskfleetManagers('web'), [], 'the operator wrote nothing to web');

  // The refusal is the only thing in the way: without the HPA, the same TaskQueue scales web.
  await kubectl(['delete', 'hpa', 'web-cpu', '-n', namespace]);
  await eventually('web scaled to 4 by the TaskQueue', async () => (await replicas('web')) === 4, 30_000);
});

test('a Deployment a KEDA ScaledObject drives: TargetOwned naming the ScaledObject, not scaled', async () => {
  await deployment('api', 1);
  await apply({
    apiVersion: 'keda.sh/v1alpha1',
    kind: 'ScaledObject',
    metadata: { name: 'api-lag', namespace },
    spec: { scaleTargetRef: { name: 'api' }, triggers: [{ type: 'cpu', metadata: { value: '50' } }] },
  });
  await queue('api-too', { broker, scaleTargetRef: { name: 'api' }, scaling: pinned(3) });
  const tq = await refused('api-too', 'TargetOwned');
  assert.match(condition(tq, 'Ready')?.message, /is already scaled by ScaledObject api-lag: /);
  assert.equal(await replicas('api'), 1);
  assert.deepEqual(await taskfleetManagers('api'), []);
});

test('two TaskQueues on one Deployment: the older keeps it, the newer is refused naming it', async () => {
  await deployment('shared', 1);
  await queue('first', { broker, scaleTargetRef: { name: 'shared' }, scaling: pinned(3) });
  await eventually('first scales shared to 3', async () => (await replicas('shared')) === 3, 30_000);
  await queue('second', { broker, scaleTargetRef: { name: 'shared' }, scaling: pinned(1) });
  const second = await refused('second', 'TargetOwned');
  assert.match(
    condition(second, 'Ready')?.message,
    /^Deployment shared \(spec\.scaleTargetRef\) is already scaled by TaskQueue first: /,
  );
  assert.equal(condition(await get('taskqueue', 'first'), 'Ready')?.status, 'True');
  assert.equal(await replicas('shared'), 3, 'still what first decided');
});

test('a Deployment another TaskQueue manages: TargetOwned naming that TaskQueue, not scaled', async () => {
  await queue('victim', { broker, worker, scaling: pinned(1) });
  await eventually('victim-workers', () => get('deployment', 'victim-workers'), 30_000);
  await queue('thief', { broker, scaleTargetRef: { name: 'victim-workers' }, scaling: pinned(4) });
  const thief = await refused('thief', 'TargetOwned');
  assert.match(
    condition(thief, 'Ready')?.message,
    /^Deployment victim-workers \(spec\.scaleTargetRef\) is already scaled by TaskQueue victim: /,
  );
  assert.equal(await replicas('victim-workers'), 1);
});

test('a user’s Deployment with the managed name: DeploymentConflict, and the Deployment is not taken over', async () => {
  await deployment('clash-workers', 1);
  const before = await get('deployment', 'clash-workers');
  await queue('clash', { broker, worker, scaling: pinned(3) });
  const tq = await refused('clash', 'DeploymentConflict');
  assert.match(
    condition(tq, 'Ready')?.message,
    /^Deployment clash-workers exists and is not controlled by this TaskQueue: the operator will not take it over, and writes nothing\. /,
  );
  assert.ok((await events('clash')).some((e) => e.startsWith('DeploymentConflict: Deployment clash-workers exists')));
  const after = await get('deployment', 'clash-workers');
  assert.equal(
    after?.metadata.ownerReferences,
    undefined,
    'no owner reference: deleting the TaskQueue would delete it',
  );
  assert.deepEqual(after?.metadata.labels, before?.metadata.labels);
  assert.equal(after?.spec.template.spec.containers[0].image, 'example.invalid/app:1');
  assert.equal(after?.spec.replicas, 1);
  assert.equal(after?.metadata.generation, before?.metadata.generation, 'the spec was not written');
  assert.deepEqual(await taskfleetManagers('clash-workers'), []);
  assert.equal(operator.child.exitCode, null, `the operator exited:\n${operator.output()}`);
});
