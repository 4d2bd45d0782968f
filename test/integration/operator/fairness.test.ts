/**
 * Fairness between tenants, measured as the issue asks: 50 TaskQueues of one namespace point at an
 * address that accepts connections and never answers; a TaskQueue of another namespace, on the real
 * Redis, must still scale up within its pollIntervalSeconds plus one second of a backlog being pushed.
 * The operator runs as its own process, as in a cluster.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { Taskfleet } from 'taskfleet';
import { KubeClient } from '../../../operator/src/runtime/kube-client.ts';
import { blackHole } from '../../support/black-hole.ts';
import { eventually } from '../../support/eventually.ts';
import { adminConfig, condition, type Json, kubectl } from '../../support/kube.ts';
import { operatorKubeconfig, startOperator } from '../../support/operator.ts';
import { useRedis } from '../../support/stack.ts';

const id = randomUUID().slice(0, 6);
const tenant = `fair-${id}`; // the operator's namespace, and the tenant that must not wait
const hostile = `hog-${id}`;
const redisUrl = (await useRedis()).url;
const kubeconfig = await operatorKubeconfig(tenant);
await kubectl(['create', 'namespace', hostile]);
after(() => kubectl(['delete', 'namespace', hostile, '--wait=false']));
const hole = await blackHole();
after(() => hole.close());
const operator = startOperator(kubeconfig, tenant, 'operator');
const client = new KubeClient(await adminConfig());
after(() => client.close());

const prefix = `fair-${id}`;
const app = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix });
after(() => app.close());
const noop = app.task('noop', () => null);

const worker = { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } };
const taskQueue = (namespace: string, name: string, spec: Json) => ({
  apiVersion: 'taskfleet.dev/v1alpha1',
  kind: 'TaskQueue',
  metadata: { name, namespace },
  spec,
});
const taskQueues = async (namespace: string) =>
  (await client.get<{ items: Json[] }>(`/apis/taskfleet.dev/v1alpha1/namespaces/${namespace}/taskqueues`)).items;

test('50 TaskQueues probing an address that never answers do not delay another namespace’s scale-up past its poll interval + 1 s', async (t) => {
  const pollIntervalSeconds = 2;
  const queue = `orders-${id}`;
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify(
      taskQueue(tenant, 'orders', {
        queue,
        broker: { redis: { url: redisUrl, prefix } },
        worker,
        scaling: { pollIntervalSeconds, minReplicas: 1, maxReplicas: 5, targetBacklogPerReplica: 10 },
      }),
    ),
  });
  const replicas = async () =>
    (
      await client.get<{ spec?: { replicas?: number } }>(
        `/apis/apps/v1/namespaces/${tenant}/deployments/orders-workers`,
      )
    ).spec?.replicas;
  await eventually('the other tenant’s queue at 1 replica', async () => (await replicas()) === 1, 60_000);

  // Each on a prefix of its own: 50 connections, not one shared.
  const hostileQueues = Array.from({ length: 50 }, (_, i) =>
    taskQueue(hostile, `hole-${i}`, {
      broker: { redis: { url: hole.url, prefix: `p${i}` } },
      worker,
      scaling: { pollIntervalSeconds, minReplicas: 0 },
    }),
  );
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({ apiVersion: 'v1', kind: 'List', items: hostileQueues }),
  });
  const failing = await eventually(
    'all 50 hostile TaskQueues probed and failing',
    async () => {
      const items = await taskQueues(hostile);
      const failed = items.filter((tq) => condition(tq, 'BrokerReachable')?.status === 'False');
      return failed.length === 50 && failed;
    },
    180_000,
  );
  assert.ok(hole.connections >= 50, `${hole.connections} connections reached the address`);

  // While they keep probing (backing off), a backlog arrives for the other tenant.
  const pushedAt = performance.now();
  await noop.applyBulk(
    Array.from({ length: 40 }, () => []),
    { queue },
  );
  await eventually('the other tenant’s replicas to rise', async () => ((await replicas()) ?? 0) > 1, 30_000);
  const reactionMs = performance.now() - pushedAt;
  t.diagnostic(
    `replicas rose ${Math.round(reactionMs)} ms after the backlog was pushed (bound ${pollIntervalSeconds * 1000 + 1000} ms); ${hole.connections} connections to the silent address`,
  );
  assert.ok(
    reactionMs <= pollIntervalSeconds * 1000 + 1000,
    `the scale-up took ${Math.round(reactionMs)} ms, over pollIntervalSeconds + 1 s`,
  );

  // What the hostile tenant reads: the connect timeout, and when the next probe goes out.
  const reachable = condition(failing[0], 'BrokerReachable');
  assert.equal(reachable?.reason, 'ProbeFailed');
  assert.match(
    reachable?.message,
    /^cannot connect to Redis at redis:\/\/127\.0\.0\.1:\d+\/0: no answer within 2000 ms: .* \(failed (once|\d+ times in a row); next probe at \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\)$/,
  );
  await app.broker.purge(queue);
  assert.equal(operator.child.exitCode, null, 'the operator is still running');
});
