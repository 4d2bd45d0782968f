/**
 * TaskQueues admitted under an older, looser CRD — before object names had the Kubernetes name pattern —
 * and still in etcd after the upgrade: the operator refuses each with Ready=False, reason InvalidSpec,
 * naming the field, and sends no request for what they name. Without the check, `urlFrom` naming
 * `../../kube-system/secrets/x` made the operator GET kube-system's Secret (URL resolution collapses the
 * `..`) and copy its value into the TaskQueue's status and Events.
 *
 * Swapping the CRD for a looser one would let every other test's TaskQueues through meanwhile, so this
 * file runs its own control plane when the run shares one (test/support/private-kube.ts).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { crdEstablished, installCrdsInto } from '../../support/crds.ts';
import { eventually } from '../../support/eventually.ts';
import { condition, type Json, kubectlWith } from '../../support/kube.ts';
import { startOperator } from '../../support/operator.ts';
import { operatorAccountKubeconfig } from '../../support/operator-account.ts';
import { apiRequests, freePort, requestsFor } from '../../support/operator-metrics.ts';
import { privateKube } from '../../support/private-kube.ts';

const crdFile = new URL('../../../crds/taskqueues.taskfleet.dev.yaml', import.meta.url).pathname;

/**
 * The CRD as it was before names were checked: no pattern or length on any `name` or `key`, and no rule
 * on inline URLs' credentials.
 */
async function looserCrd(): Promise<Json> {
  const crd = parse(await readFile(crdFile, 'utf8')) as Json;
  const loosen = (node: unknown): void => {
    if (typeof node !== 'object' || node === null) return;
    const properties = (node as Json).properties as Record<string, Json> | undefined;
    for (const [field, schema] of Object.entries(properties ?? {})) {
      if ((field === 'name' || field === 'key') && schema.type === 'string') {
        delete schema.pattern;
        delete schema.maxLength;
      }
    }
    const rules = (node as Json)['x-kubernetes-validations'] as Json[] | undefined;
    if (rules) (node as Json)['x-kubernetes-validations'] = rules.filter((r) => r.fieldPath !== '.url');
    for (const value of Object.values(node)) loosen(value);
  };
  loosen(crd);
  return crd;
}

const kube = await privateKube();
const kubectl = (args: readonly string[], input?: string) =>
  kubectlWith(kube, args, input === undefined ? {} : { input });
const namespace = `older-${randomUUID().slice(0, 8)}`;
const jewel = `kube-system-crown-jewel-${randomUUID().slice(0, 8)}`;
const worker = { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } };

test('TaskQueues with traversal names from an older CRD: InvalidSpec naming the field, no request for what they name, no value anywhere', async () => {
  // 1. The older CRD, and what an attacker in `namespace` wants: kube-system's Secret and Deployment.
  await kubectl(['apply', '--server-side', '--force-conflicts', '-f', '-'], JSON.stringify(await looserCrd()));
  await crdEstablished(kube, 'taskqueues.taskfleet.dev');
  await kubectl(['create', 'namespace', namespace]);
  await kubectl([
    'create',
    'secret',
    'generic',
    'x',
    '-n',
    'kube-system',
    `--from-literal=url=redis://:${jewel}@127.0.0.1:1/0`,
  ]);
  await kubectl([
    'create',
    'deployment',
    'coredns',
    '-n',
    'kube-system',
    '--image=example.invalid/dns:1',
    '--replicas=2',
  ]);
  const queue = (name: string, spec: Json) =>
    kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({ apiVersion: 'taskfleet.dev/v1alpha1', kind: 'TaskQueue', metadata: { name, namespace }, spec }),
    );
  await eventually(
    'the looser CRD to admit a traversal name',
    () =>
      queue('traversal', {
        broker: { redis: { urlFrom: { secretKeyRef: { name: '../../kube-system/secrets/x', key: 'url' } } } },
        worker,
      }).then(() => true),
    30_000,
  );
  await queue('hop', {
    broker: { redis: { url: 'redis://127.0.0.1:1/0' } },
    scaleTargetRef: { name: '../../kube-system/deployments/coredns' },
    scaling: { minReplicas: 5, maxReplicas: 5 },
  });

  // 2. The upgrade: the current CRD refuses such names from now on; the two stay in etcd.
  await installCrdsInto(kube);
  const probe = JSON.stringify({
    apiVersion: 'taskfleet.dev/v1alpha1',
    kind: 'TaskQueue',
    metadata: { name: 'again', namespace },
    spec: {
      broker: { redis: { urlFrom: { secretKeyRef: { name: '../../kube-system/secrets/x', key: 'url' } } } },
      worker,
    },
  });
  await eventually(
    'the current CRD to refuse a traversal name',
    () =>
      kubectl(['create', '--dry-run=server', '-f', '-'], probe).then(
        () => false,
        (error: Error) => /should match/.test(error.message),
      ),
    30_000,
  );

  // 3. The operator, as its ServiceAccount with the chart's rules: cluster-wide `get secrets` included.
  const kubeconfig = await operatorAccountKubeconfig(kube, namespace, {
    clusterRoleBinding: `taskfleet-operator-${namespace}`,
    file: join(kube.kubeconfig, '..', `operator-${namespace}.kubeconfig`),
  });
  const metricsPort = await freePort();
  const operator = startOperator(kubeconfig, namespace, 'operator-older', {}, { metricsPort });
  const refused = async (name: string) => {
    const tq = JSON.parse(await kubectl(['get', 'taskqueue', name, '-n', namespace, '-o', 'json'])) as Json;
    return condition(tq, 'Ready')?.reason === 'InvalidSpec' && tq;
  };
  const traversal = await eventually('traversal refused', () => refused('traversal'), 60_000).catch((error) => {
    throw new Error(`${error.message}\noperator output:\n${operator.output().slice(-3000)}`);
  });
  const hop = await eventually('hop refused', () => refused('hop'), 30_000);
  assert.equal(condition(traversal, 'Ready')?.status, 'False');
  assert.match(
    condition(traversal, 'Ready')?.message,
    /^spec\.broker\.redis\.urlFrom\.secretKeyRef\.name "\.\.\/\.\.\/kube-system\/secrets\/x" is not a valid Secret name: it must be a DNS-1123 subdomain/,
  );
  assert.match(
    condition(hop, 'Ready')?.message,
    /^spec\.scaleTargetRef\.name "\.\.\/\.\.\/kube-system\/deployments\/coredns" is not a valid Deployment name/,
  );
  const events = JSON.parse(
    await kubectl(['get', 'events', '-n', namespace, '--field-selector', 'reason=InvalidSpec', '-o', 'json']),
  ).items as Json[];
  assert.ok(
    events.some((e) => e.involvedObject.name === 'traversal' && /secretKeyRef\.name/.test(e.message)),
    JSON.stringify(events.map((e) => e.message)),
  );

  // 4. Nothing was read or sent for them: no Secret request at all, no apply, no /scale; coredns untouched.
  const counts = await apiRequests(metricsPort);
  assert.equal(requestsFor(counts, 'secrets'), 0, `requests sent: ${JSON.stringify([...counts])}`);
  assert.equal(requestsFor(counts, 'deployments/scale'), 0, `requests sent: ${JSON.stringify([...counts])}`);
  assert.equal(counts.get('APPLY deployments') ?? 0, 0, `requests sent: ${JSON.stringify([...counts])}`);
  assert.ok((counts.get('PATCH taskqueues/status') ?? 0) >= 2, 'the conditions were written');
  const coredns = JSON.parse(
    await kubectl(['get', 'deployment', 'coredns', '-n', 'kube-system', '-o', 'json', '--show-managed-fields']),
  ) as Json;
  assert.equal(coredns.spec.replicas, 2);
  assert.equal(
    (coredns.metadata.managedFields as Json[]).some((f) => /taskfleet/.test(f.manager)),
    false,
    'no taskfleet field manager on coredns',
  );
  assert.equal(await kubectl(['get', 'deployments', '-n', namespace, '-o', 'name']), '', 'no worker Deployment');

  // 5. The Secret's value is nowhere: statuses, Events, the operator's output.
  const everything = [
    JSON.stringify(traversal),
    JSON.stringify(hop),
    await kubectl(['get', 'events', '-n', namespace, '-o', 'json']),
    operator.output(),
  ].join('\n');
  assert.equal(everything.includes(jewel), false, 'the Secret value leaked');
  assert.equal(operator.child.exitCode, null, `the operator exited:\n${operator.output()}`);
});
