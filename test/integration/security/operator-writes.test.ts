/**
 * The chart's operator-writes admission policy, against the real API server: what RBAC cannot narrow about
 * the operator's own ServiceAccount. Its `patch pods` may change only the pod-deletion-cost annotation; its
 * `create`/`patch deployments` may write only the worker Deployment of a TaskQueue (label
 * app.kubernetes.io/managed-by=taskfleet, that TaskQueue as controller owner, named <TaskQueue>-workers)
 * and never take over one someone else made. Requests are sent as the operator sends them (its KubeClient,
 * a token of the chart's ServiceAccount); anyone else is not affected.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../../../operator/src/runtime/kube-client.ts';
import { installCrds } from '../../support/crds.ts';
import { eventually } from '../../support/eventually.ts';
import { helm } from '../../support/helm.ts';
import { inNamespace, type Json, kubectl } from '../../support/kube.ts';
import { serviceAccountKubeconfig } from '../../support/service-account.ts';
import { useKube } from '../../support/stack.ts';

const chart = new URL('../../../charts/taskfleet', import.meta.url).pathname;
const id = randomUUID().slice(0, 8);
const system = `ow-${id}`;
const apps = `ow-${id}-apps`;
const release = `ow-${id}`;
const operatorName = `${release}-taskfleet-operator`;
const COST = 'controller.kubernetes.io/pod-deletion-cost';

const kube = await useKube();
await installCrds();
for (const ns of [system, apps]) await kubectl(['create', 'namespace', ns]);
after(() => kubectl(['delete', 'namespace', system, apps, '--wait=false']));
after(() => helm(['uninstall', release, '--namespace', system, '--ignore-not-found']));
await helm(['install', release, chart, '--namespace', system, '--set', 'replicaCount=1']);

const config = new KubeConfig();
config.loadFromFile(
  await serviceAccountKubeconfig(kube, system, operatorName, {
    file: join(kube.kubeconfig, '..', `${system}.kubeconfig`),
  }),
);
const operator = new KubeClient(config);
after(() => operator.close());

const deploymentSpec = (app: string) => ({
  selector: { matchLabels: { app } },
  template: { metadata: { labels: { app } }, spec: { containers: [{ name: 'main', image: 'example.invalid/app:1' }] } },
});
const taskQueue = (name: string) => ({
  apiVersion: 'taskfleet.dev/v1alpha1',
  kind: 'TaskQueue',
  metadata: { name, namespace: apps },
  spec: {
    broker: { redis: { url: 'redis://redis.example.invalid:6379/0' } },
    worker: { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } },
  },
});
// As an admin: two TaskQueues, a Deployment of someone else's (with pods, from the ReplicaSet controller)
// and one that only has a worker Deployment's name.
await kubectl(['apply', '-f', '-'], {
  input: JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      taskQueue('q'),
      taskQueue('p'),
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: apps },
        spec: deploymentSpec('web'),
      },
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'p-workers', namespace: apps },
        spec: deploymentSpec('p-workers'),
      },
    ],
  }),
});
const a = inNamespace(apps);
const uid = async (name: string) => (await a.get('taskqueue', name))?.metadata.uid as string;

/** The worker Deployment of TaskQueue `owner`, as the operator applies one (server-side apply). */
const workerDeployment = async (owner: string, { name = `${owner}-workers`, labelled = true } = {}) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: {
    name,
    namespace: apps,
    labels: labelled ? { 'app.kubernetes.io/managed-by': 'taskfleet', 'taskfleet.dev/queue': owner } : { app: name },
    ownerReferences: [
      { apiVersion: 'taskfleet.dev/v1alpha1', kind: 'TaskQueue', name: owner, uid: await uid(owner), controller: true },
    ],
  },
  spec: deploymentSpec(name),
});
const apply = (deployment: Json) =>
  operator.apply<Json>(
    `/apis/apps/v1/namespaces/${apps}/deployments/${deployment.metadata.name}`,
    deployment,
    'taskfleet-operator',
  );
// A new policy binding takes effect within moments, not at once: wait until a rogue Deployment is refused.
await eventually('the operator-writes policy in force', async () => {
  const rogue = await workerDeployment('q', { name: 'rogue', labelled: false });
  return operator
    .patch(`/apis/apps/v1/namespaces/${apps}/deployments/rogue`, rogue, 'apply', {
      fieldManager: 'taskfleet-operator',
      dryRun: 'All',
    })
    .then(
      () => false,
      (error: Error) => /denied request/.test(error.message),
    );
});

const refused = (pattern: RegExp) => (error: Error) => {
  assert.match(error.message, /: 403 /);
  assert.match(error.message, pattern);
  return true;
};

test("the operator's ServiceAccount may set a pod's deletion cost and change nothing else of it", async () => {
  const pod = await eventually('a pod of web', async () => {
    const pods = JSON.parse(await kubectl(['get', 'pods', '-n', apps, '-l', 'app=web', '-o', 'json'])).items as Json[];
    return pods[0]?.metadata.name as string | undefined;
  });
  const path = `/api/v1/namespaces/${apps}/pods/${pod}`;
  const patch = (body: Json) => operator.patch<Json>(path, body, 'merge');

  // What the operator does before a scale-down: allowed, and applied.
  await patch({ metadata: { annotations: { [COST]: '3' } } });
  assert.equal((await a.get('pod', pod))?.metadata.annotations[COST], '3');

  const only = `the Taskfleet operator may change only the annotation controller\\.kubernetes\\.io/pod-deletion-cost of a pod: this update of pod ${pod} also changes`;
  for (const [body, what] of [
    [{ metadata: { annotations: { [COST]: '4', team: 'a' } } }, 'annotation team'],
    [{ metadata: { labels: { app: 'other' } } }, 'labels'],
    [{ metadata: { finalizers: ['example.com/hold'] } }, 'finalizers'],
    [{ spec: { activeDeadlineSeconds: 5 } }, 'spec'],
  ] as const) {
    await assert.rejects(patch(body), refused(new RegExp(`${only} ${what}$`)), JSON.stringify(body));
  }
  const after = (await a.get('pod', pod))!;
  assert.equal(after.metadata.annotations[COST], '3', 'no refused patch changed the pod');
  assert.equal(after.metadata.labels.app, 'web');
  assert.equal(after.spec.activeDeadlineSeconds, undefined);

  // The policy is the operator's alone: an admin still labels the pod.
  await kubectl(['label', 'pod', pod, '-n', apps, 'team=a']);
});

test("the operator's ServiceAccount may write only a TaskQueue's worker Deployment, and take over none", async () => {
  // Its own: created, then changed.
  await apply(await workerDeployment('q'));
  const changed = await workerDeployment('q');
  changed.spec.template.spec.containers[0]!.image = 'example.invalid/app:2';
  await apply(changed);
  assert.equal(
    (await a.get('deployment', 'q-workers'))?.spec.template.spec.containers[0].image,
    'example.invalid/app:2',
  );

  const mustBe = (name: string) =>
    new RegExp(
      `the Taskfleet operator may write only the worker Deployments of TaskQueues: Deployment ${name} must be labelled app\\.kubernetes\\.io/managed-by=taskfleet, have a TaskQueue as its controller owner and be named <TaskQueue>-workers`,
    );
  await assert.rejects(
    apply(await workerDeployment('q', { name: 'rogue', labelled: false })),
    refused(mustBe('rogue')),
  );
  await assert.rejects(apply(await workerDeployment('q', { name: 'web-workers' })), refused(mustBe('web-workers')));
  const unowned = await workerDeployment('q', { name: 'loose-workers' });
  unowned.metadata.ownerReferences = [];
  await assert.rejects(apply(unowned), refused(mustBe('loose-workers')));
  assert.equal(await a.get('deployment', 'rogue'), undefined);
  // Dropping the label from its own would let it out of the operator's cache and of this policy.
  await assert.rejects(apply(await workerDeployment('q', { labelled: false })), refused(mustBe('q-workers')));

  // Someone else's Deployment with a worker Deployment's name: no takeover.
  await assert.rejects(
    apply(await workerDeployment('p')),
    refused(
      /the Taskfleet operator may not take over Deployment p-workers: it is not the worker Deployment of TaskQueue p/,
    ),
  );
  const foreign = (await a.get('deployment', 'p-workers'))!;
  assert.equal(foreign.metadata.labels, undefined, 'p-workers is as its owner made it');
  assert.equal(foreign.metadata.ownerReferences, undefined);

  // Replicas go through /scale, which this policy leaves to RBAC and the TaskQueue's author's rights.
  await operator.patch(`/apis/apps/v1/namespaces/${apps}/deployments/web/scale`, { spec: { replicas: 2 } }, 'merge');
  assert.equal(await a.replicas('web'), 2);
});
