/**
 * The chart's least-privileged install, end to end: `watchNamespaces` (a Role in each listed namespace, no
 * ClusterRole) and `secrets.read: false` (no `get secrets` anywhere), with the operator run as the chart's
 * ServiceAccount and the chart Deployment's environment. It scales a TaskQueue of a watched namespace whose
 * broker URL is inline, reports SecretsNotRead for one whose URL is in a Secret, never touches a TaskQueue
 * of another namespace, and — by the API server's audit log — reads no Secret at all.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { Taskfleet } from 'taskfleet';
import { auditedRequests, describeRequest } from '../../support/audit.ts';
import { startChartOperator } from '../../support/chart-operator.ts';
import { installCrds } from '../../support/crds.ts';
import { eventually } from '../../support/eventually.ts';
import { helm } from '../../support/helm.ts';
import { condition, inNamespace, type Json, kubectl } from '../../support/kube.ts';
import { useRedis } from '../../support/stack.ts';

const chart = new URL('../../../charts/taskfleet', import.meta.url).pathname;
const id = randomUUID().slice(0, 8);
const system = `lp-${id}`;
const watched = `lp-${id}-watched`;
const other = `lp-${id}-other`;
const release = `lp-${id}`;
const operatorName = `${release}-taskfleet-operator`;
const username = `system:serviceaccount:${system}:${operatorName}`;

const redisUrl = (await useRedis()).url;
const queue = `lp-${id}`;
const app = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix: queue });
after(() => app.close());

await installCrds();
for (const ns of [system, watched, other]) await kubectl(['create', 'namespace', ns]);
after(() => kubectl(['delete', 'namespace', system, watched, other, '--wait=false']));
after(() => helm(['uninstall', release, '--namespace', system, '--ignore-not-found']));

const taskQueue = (namespace: string, name: string, broker: object) => ({
  apiVersion: 'taskfleet.dev/v1alpha1',
  kind: 'TaskQueue',
  metadata: { name, namespace },
  spec: {
    queue,
    broker: { redis: { ...broker, prefix: queue } },
    worker: { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } },
    scaling: { pollIntervalSeconds: 1, targetBacklogPerReplica: 5, maxReplicas: 3, fallback: { replicas: 1 } },
  },
});

test('watchNamespaces and secrets.read=false: Roles only where asked, no Secret read, the rest still scales', async () => {
  const notes = await helm([
    'install',
    release,
    chart,
    '--namespace',
    system,
    '--set',
    `replicaCount=1,watchNamespaces={${watched}},secrets.read=false`,
  ]);
  assert.match(
    notes,
    new RegExp(`watches TaskQueues\\nin ${watched} only \\(a Role in each\\)\\.\\nIt reads no Secrets`),
  );

  // What the API server lets the chart's ServiceAccount do: the watched namespace's TaskQueues, nothing
  // cluster-wide, no Secret even where it watches.
  // `kubectl auth can-i` answers yes (exit 0) or no (exit 1, nothing on stderr).
  const can = (...args: string[]) =>
    kubectl(['auth', 'can-i', ...args, `--as=${username}`]).then(
      (out) => out.trim() === 'yes',
      (error: Error) => {
        if (!/: Command failed: \S*kubectl auth can-i /.test(error.message)) throw error;
        return false;
      },
    );
  assert.equal(await can('list', 'taskqueues.taskfleet.dev', '-n', watched), true);
  assert.equal(await can('list', 'taskqueues.taskfleet.dev', '-n', other), false);
  assert.equal(await can('list', 'taskqueues.taskfleet.dev', '--all-namespaces'), false);
  assert.equal(await can('get', 'secrets', '-n', watched), false);
  assert.equal(await can('patch', 'deployments', '-n', other), false);

  await app
    .task('noop', () => null)
    .applyBulk(
      Array.from({ length: 7 }, () => []),
      { queue },
    );
  await kubectl(['create', 'secret', 'generic', 'redis', '-n', watched, `--from-literal=url=${redisUrl}`]);
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'v1',
      kind: 'List',
      items: [
        taskQueue(watched, 'inline', { url: redisUrl }),
        taskQueue(watched, 'from-secret', { urlFrom: { secretKeyRef: { name: 'redis', key: 'url' } } }),
        taskQueue(other, 'elsewhere', { url: redisUrl }),
      ],
    }),
  });

  const operator = await startChartOperator(system, operatorName, { identity: 'lp-operator' });
  const failed = (error: Error) => {
    throw new Error(`${error.message}\noperator output:\n${operator.output()}`);
  };
  const w = inNamespace(watched);
  await eventually(
    'inline: backlog 7 scaled to 2',
    async () =>
      (await w.get('taskqueue', 'inline'))?.status?.desiredReplicas === 2 && (await w.replicas('inline-workers')) === 2,
    30_000,
  ).catch(failed);
  const notRead = await eventually('from-secret: SecretsNotRead', async () => {
    const reachable = condition(await w.get('taskqueue', 'from-secret'), 'BrokerReachable');
    return reachable?.reason === 'SecretsNotRead' && reachable;
  }).catch(failed);
  assert.equal(notRead.status, 'False');
  assert.match(notRead.message, /spec\.broker\.redis\.urlFrom names a Secret, and this operator reads no Secrets/);
  // Its workers still get the URL, by reference: the kubelet reads the Secret, not the operator.
  const workers = await eventually('from-secret-workers', () => w.get('deployment', 'from-secret-workers')).catch(
    failed,
  );
  const env = workers.spec.template.spec.containers[0].env as Json[];
  assert.ok(
    env.some((e) => e.valueFrom?.secretKeyRef?.name === 'redis'),
    JSON.stringify(env),
  );

  // Both reconciled: the TaskQueue of the unwatched namespace, created with them, was never touched.
  const elsewhere = await inNamespace(other).get('taskqueue', 'elsewhere');
  assert.equal(elsewhere?.status, undefined, 'no status in an unwatched namespace');
  assert.equal(await inNamespace(other).get('deployment', 'elsewhere-workers'), undefined);
  assert.doesNotMatch(operator.output(), /forbidden/i, 'it asked for nothing its Roles do not grant');

  const secretRequests = (await auditedRequests(username)).filter((e) => e.objectRef?.resource === 'secrets');
  assert.deepEqual(secretRequests.map(describeRequest), [], 'not one request on Secrets');
});
