/**
 * The operator run least-privileged, as its ServiceAccount with exactly the chart's rule groups:
 *
 * - `--watch-namespaces a,b` with Roles in a and b only (no ClusterRole): it lists and watches there,
 *   scales there, and never sees a third namespace;
 * - `--read-secrets=false` with no right on Secrets: it never sends a request for a Secret, a queue whose
 *   probe would need one says so (BrokerReachable=False, SecretsNotRead) and gets its fallback replicas,
 *   and the workers still get the Secret by reference;
 * - default resources on worker containers that set none, and `--worker-resources` replacing them.
 *
 * On a control plane of its own (test/support/private-kube.ts): operators of other test files watch every
 * namespace, and with other flags they would fight these over the same objects.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { test } from 'node:test';
import { eventually } from '../../support/eventually.ts';
import { condition, inNamespace, type Json, kubectlWith } from '../../support/kube.ts';
import { type OperatorProcess, startOperator } from '../../support/operator.ts';
import { apiRequests, freePort, requestsFor } from '../../support/operator-metrics.ts';
import { privateKube, privateOperatorKubeconfig } from '../../support/private-kube.ts';
import { useRedis } from '../../support/stack.ts';

const kube = await privateKube();
const kubectl = (args: readonly string[], input?: string) =>
  kubectlWith(kube, args, input === undefined ? {} : { input });
const { url: redisUrl } = await useRedis();
const id = randomUUID().slice(0, 6);
const prefix = `lp-${id}`;
const worker = (extra: Json = {}) => ({
  template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1', ...extra }] } },
});
const queue = (namespace: string, name: string, spec: Json) =>
  kubectl(
    ['apply', '-f', '-'],
    JSON.stringify({ apiVersion: 'taskfleet.dev/v1alpha1', kind: 'TaskQueue', metadata: { name, namespace }, spec }),
  );
const pinned = (n: number) => ({ pollIntervalSeconds: 1, minReplicas: n, maxReplicas: n });

function withOutput<T>(operator: OperatorProcess, promise: Promise<T>): Promise<T> {
  return promise.catch((error: Error) => {
    throw new Error(`${error.message}\noperator output:\n${operator.output().slice(-3000)}`);
  });
}

test('--watch-namespaces a,b with Roles there only: scales in a and b, never sees c; --worker-resources applies', async () => {
  const [op, a, b, c] = ['op', 'a', 'b', 'c'].map((n) => `lp-${n}-${id}`) as [string, string, string, string];
  const kubeconfig = await privateOperatorKubeconfig(kube, op, { watchNamespaces: [a, b], others: [a, b, c] });
  const resources = { requests: { cpu: '50m', memory: '64Mi' }, limits: { memory: '256Mi' } };
  const operator = startOperator(kubeconfig, op, 'operator-watch', {
    TASKFLEET_WATCH_NAMESPACES: `${a},${b}`,
    TASKFLEET_WORKER_RESOURCES: JSON.stringify(resources),
  });
  const broker = { redis: { url: redisUrl, prefix } };
  // c's first, so that an operator that could see it would have reconciled it before a's and b's.
  await queue(c, 'ignored', { broker, worker: worker(), scaling: pinned(2) });
  await queue(a, 'alpha', { broker, worker: worker(), scaling: pinned(2) });
  const own = { limits: { cpu: '1', memory: '1Gi' } };
  await queue(b, 'beta', { broker, worker: worker({ resources: own }), scaling: pinned(2) });
  await withOutput(
    operator,
    eventually(
      'alpha and beta scaled to 2',
      async () =>
        (await inNamespace(a, kube).replicas('alpha-workers')) === 2 &&
        (await inNamespace(b, kube).replicas('beta-workers')) === 2,
      60_000,
    ),
  );
  assert.equal(condition(await inNamespace(a, kube).get('taskqueue', 'alpha'), 'Ready')?.status, 'True');
  assert.equal(await inNamespace(c, kube).get('deployment', 'ignored-workers'), undefined, 'nothing made in c');
  assert.equal((await inNamespace(c, kube).get('taskqueue', 'ignored'))?.status, undefined, 'no status in c');
  assert.doesNotMatch(operator.output(), /forbidden|\b403\b/i, 'no request was refused');

  const container = async (ns: string, name: string) =>
    (await inNamespace(ns, kube).get('deployment', name))?.spec.template.spec.containers[0] as Json;
  assert.deepEqual((await container(a, 'alpha-workers')).resources, resources, '--worker-resources');
  assert.deepEqual((await container(b, 'beta-workers')).resources, own, 'the template’s own resources win');
});

test('--read-secrets=false with no right on Secrets: no Secret request, SecretsNotRead, fallback replicas, Secrets by reference', async () => {
  const op = `lp-nosecrets-${id}`;
  const kubeconfig = await privateOperatorKubeconfig(kube, op, { readSecrets: false });
  const metricsPort = await freePort();
  const operator = startOperator(
    kubeconfig,
    op,
    'operator-nosecrets',
    // Its own namespace only: the other operator of this file must not act on these TaskQueues either.
    { TASKFLEET_READ_SECRETS: 'false', TASKFLEET_WATCH_NAMESPACES: op },
    { metricsPort },
  );
  const { get } = inNamespace(op, kube);
  await kubectl(['create', 'secret', 'generic', 'redis', '-n', op, `--from-literal=url=${redisUrl}`]);
  const urlFrom = { urlFrom: { secretKeyRef: { name: 'redis', key: 'url' } } };
  await queue(op, 'by-reference', {
    broker: { redis: { ...urlFrom, prefix } },
    resultBackend: { redis: urlFrom },
    worker: worker(),
    scaling: { pollIntervalSeconds: 1, maxReplicas: 5, fallback: { replicas: 2, afterFailures: 1 } },
    schedules: [{ name: 'tick', everySeconds: 1, task: 'noop' }],
  });
  await queue(op, 'inline', { broker: { redis: { url: redisUrl, prefix } }, worker: worker(), scaling: pinned(1) });
  await queue(op, 'kafka-sasl', {
    broker: { kafka: { brokers: ['kafka.invalid:9092'], sasl: { mechanism: 'plain', secretRef: { name: 'kafka' } } } },
    worker: worker(),
    scaling: { pollIntervalSeconds: 1 },
  });

  const tq = await withOutput(
    operator,
    eventually(
      'by-reference: SecretsNotRead and its fallback of 2',
      async () => {
        const tq = await get('taskqueue', 'by-reference');
        return (
          condition(tq, 'BrokerReachable')?.reason === 'SecretsNotRead' &&
          condition(tq, 'Fallback')?.status === 'True' &&
          (await get('deployment', 'by-reference-workers'))?.spec.replicas === 2 &&
          tq
        );
      },
      60_000,
    ),
  );
  assert.equal(condition(tq, 'BrokerReachable')?.status, 'False');
  assert.equal(tq.status.schedules, undefined, 'no schedule fired: the broker URL is in the Secret');
  assert.match(
    condition(tq, 'BrokerReachable')?.message,
    /^spec\.broker\.redis\.urlFrom names a Secret, and this operator reads no Secrets \(--read-secrets=false\): it cannot measure this queue, so the replicas follow spec\.scaling\.fallback\. To measure it, set spec\.broker\.redis\.url to a URL without credentials instead/,
  );
  const inline = await eventually('inline probed', async () => {
    const tq = await get('taskqueue', 'inline');
    return condition(tq, 'BrokerReachable')?.reason === 'Probed' && tq;
  });
  assert.equal(condition(inline, 'Ready')?.status, 'True');
  const kafka = await eventually('kafka-sasl: SecretsNotRead', async () => {
    const tq = await get('taskqueue', 'kafka-sasl');
    return condition(tq, 'BrokerReachable')?.reason === 'SecretsNotRead' && tq;
  });
  assert.match(
    condition(kafka, 'BrokerReachable')?.message,
    /^spec\.broker\.kafka\.sasl\.secretRef names a Secret, and this operator reads no Secrets \(--read-secrets=false\)/,
  );

  // The workers get the Secret by reference, as always; and the defaults where a container sets none.
  const container = (await get('deployment', 'by-reference-workers'))?.spec.template.spec.containers[0] as Json;
  const env = Object.fromEntries((container.env as Json[]).map((e) => [e.name, e]));
  assert.deepEqual(env.TASKFLEET_BROKER.valueFrom, { secretKeyRef: { name: 'redis', key: 'url' } });
  assert.deepEqual(env.TASKFLEET_BACKEND.valueFrom, { secretKeyRef: { name: 'redis', key: 'url' } });
  assert.deepEqual(container.resources, {
    requests: { cpu: '100m', memory: '128Mi' },
    limits: { memory: '512Mi' },
  });

  const counts = await apiRequests(metricsPort);
  assert.equal(requestsFor(counts, 'secrets'), 0, `requests sent: ${JSON.stringify([...counts])}`);
  assert.doesNotMatch(operator.output(), /forbidden|\b403\b/i, 'no request was refused');
});

test('a flag the operator cannot use stops it at start with exit code 2, naming the flag', async () => {
  const main = new URL('../../../operator/src/main.ts', import.meta.url).pathname;
  const child = spawn(process.execPath, [main, '--worker-resources', '{"limits":{"memory":"lots"}}'], {
    env: { ...process.env, NODE_OPTIONS: '--conditions=source', KUBECONFIG: '/nonexistent' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const [code] = await once(child, 'exit');
  assert.equal(code, 2);
  assert.equal(
    stderr.trim(),
    'taskfleet-operator: --worker-resources (TASKFLEET_WORKER_RESOURCES): limits.memory is not a quantity ("lots"): use e.g. 100m, 0.5, 128Mi, 1Gi',
  );
});
