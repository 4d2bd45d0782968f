import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { AppsV1Api, CoreV1Api, CustomObjectsApi, VersionApi } from '@kubernetes/client-node';
import { versions } from '../../stack/versions.ts';
import { eventually } from '../../support/eventually.ts';
import { adminConfig, kubectl, tokenConfig } from '../../support/kube.ts';

const crd = new URL('fixtures/widget-crd.yaml', import.meta.url).pathname;
const namespace = `smoke-${randomUUID().slice(0, 8)}`;
let core: CoreV1Api;

before(async () => {
  core = (await adminConfig()).makeApiClient(CoreV1Api);
  await core.createNamespace({ body: { metadata: { name: namespace } } });
});
after(() => core.deleteNamespace({ name: namespace }));

test('/version reports the Kubernetes version the stack was built from', async () => {
  const info = await (await adminConfig()).makeApiClient(VersionApi).getCode();
  assert.equal(info.gitVersion, versions.KUBE_VERSION);
  assert.match(await kubectl(['version', '--output=json']), new RegExp(`"gitVersion": "${versions.KUBE_VERSION}"`));
});

test('a CRD becomes Established; custom resources are stored, and schema violations are rejected', async () => {
  await kubectl(['apply', '-f', crd]);
  await kubectl(['wait', '--for=condition=Established', 'crd/widgets.smoke.taskfleet.dev', '--timeout=30s']);
  const widgets = (await adminConfig()).makeApiClient(CustomObjectsApi);
  const api = { group: 'smoke.taskfleet.dev', version: 'v1', namespace, plural: 'widgets' };
  await widgets.createNamespacedCustomObject({
    ...api,
    body: { apiVersion: 'smoke.taskfleet.dev/v1', kind: 'Widget', metadata: { name: 'ok' }, spec: { size: 3 } },
  });
  const read = (await widgets.getNamespacedCustomObject({ ...api, name: 'ok' })) as { spec: { size: number } };
  assert.equal(read.spec.size, 3);

  const invalid = `apiVersion: smoke.taskfleet.dev/v1
kind: Widget
metadata: { name: bad, namespace: ${namespace} }
spec: { size: 11, color: blue }
`;
  await assert.rejects(kubectl(['apply', '-f', '-'], { input: invalid }), (error: Error) => {
    assert.match(error.message, /spec\.size: Invalid value: 11: spec\.size in body should be less than or equal to 10/);
    assert.match(error.message, /spec\.color: Unsupported value: "blue"/);
    return true;
  });
});

test('kube-controller-manager runs: a Deployment gets its ReplicaSet', async () => {
  const apps = (await adminConfig()).makeApiClient(AppsV1Api);
  const labels = { app: 'smoke' };
  await apps.createNamespacedDeployment({
    namespace,
    body: {
      metadata: { name: 'smoke' },
      spec: {
        replicas: 2,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name: 'main', image: 'example.invalid/smoke:1' }] } },
      },
    },
  });
  const replicaSet = await eventually('a ReplicaSet owned by the Deployment', async () => {
    const list = await apps.listNamespacedReplicaSet({ namespace });
    return list.items.find((rs) =>
      rs.metadata?.ownerReferences?.some((o) => o.kind === 'Deployment' && o.name === 'smoke'),
    );
  });
  assert.equal(replicaSet.spec?.replicas, 2);
  // No scheduler or kubelet runs, but the ReplicaSet controller still creates the (Pending) pods.
  const pods = await eventually('the ReplicaSet to create 2 pods', async () => {
    const list = await core.listNamespacedPod({ namespace, labelSelector: 'app=smoke' });
    return list.items.length === 2 && list.items;
  });
  assert.ok(pods.every((pod) => pod.status?.phase === 'Pending'));
});

test('RBAC denies a ServiceAccount that has no role', async () => {
  await kubectl(['create', 'serviceaccount', 'nobody', '--namespace', namespace]);
  const token = (await kubectl(['create', 'token', 'nobody', '--namespace', namespace])).trim();
  const asNobody = (await tokenConfig(token)).makeApiClient(CoreV1Api);
  await assert.rejects(asNobody.listNamespacedPod({ namespace }), (error: { code?: number; body?: string }) => {
    assert.equal(error.code, 403);
    const { message } = JSON.parse(String(error.body)) as { message: string };
    assert.match(message, /User "system:serviceaccount:smoke-[0-9a-f]+:nobody" cannot list resource "pods"/);
    return true;
  });
  // The same token works once a Role allows it: the denial was RBAC, not a broken token.
  await kubectl(['create', 'role', 'pod-reader', '--verb=list', '--resource=pods', '--namespace', namespace]);
  await kubectl([
    'create',
    'rolebinding',
    'nobody-reads',
    '--role=pod-reader',
    `--serviceaccount=${namespace}:nobody`,
    '--namespace',
    namespace,
  ]);
  await eventually('the RoleBinding to take effect', () => asNobody.listNamespacedPod({ namespace }));
});
