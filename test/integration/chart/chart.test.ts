/**
 * The Helm chart (charts/taskfleet) with the stack's real Helm and kube-apiserver: it lints clean, its
 * schema rejects bad values with a message naming the field, what it renders is accepted by the API
 * server, and installed it gives the operator permissions enough to do its work — proven by running the
 * operator (a local process: the stack has no kubelet) with a token of the chart's ServiceAccount. An
 * upgrade changes the operator's Deployment; an uninstall removes the operator and keeps the CRD, the
 * TaskQueues, their workers and the broker's data.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { load, loadAll } from 'js-yaml';
import { Taskfleet } from 'taskfleet';
import { eventually } from '../../support/eventually.ts';
import { helm } from '../../support/helm.ts';
import { kubectl } from '../../support/kube.ts';
import { startOperator } from '../../support/operator.ts';
import { operatorRbacRules } from '../../support/operator-rbac.ts';
import { serviceAccountKubeconfig } from '../../support/service-account.ts';
import { useKube, useRedis } from '../../support/stack.ts';

interface Json {
  // biome-ignore lint/suspicious/noExplicitAny: reading rendered manifests and kubectl's JSON in assertions
  [key: string]: any;
}

const chart = new URL('../../../charts/taskfleet', import.meta.url).pathname;
const chartCrd = join(chart, 'crds', 'taskqueues.taskfleet.dev.yaml');
const monitoringCrds = new URL('fixtures/monitoring-crds.yaml', import.meta.url).pathname;

const id = randomUUID().slice(0, 8);
const namespace = `chart-${id}`;
const appNamespace = `chart-${id}-apps`;
const release = `tf-${id}`;
/** <release>-taskfleet-operator: the Deployment, ServiceAccount, ClusterRole and their bindings. */
const operatorName = `${release}-taskfleet-operator`;

const kube = await useKube();
const redisUrl = (await useRedis()).url;

/** `helm template` as the stack's cluster would see it (the stack's Helm defaults to an older version). */
const template = (...args: string[]) =>
  helm(['template', release, chart, '--namespace', namespace, '--kube-version', kube.version, ...args]);
const render = async (...args: string[]) => loadAll(await template(...args)).filter(Boolean) as Json[];
const find = (docs: Json[], kind: string) => {
  const found = docs.filter((d) => d.kind === kind);
  assert.equal(found.length, 1, `one ${kind} in ${docs.map((d) => d.kind).join(', ')}`);
  return found[0]!;
};
const get = async (kind: string, name: string, ns?: string): Promise<Json | undefined> => {
  try {
    return JSON.parse(await kubectl(['get', kind, name, ...(ns ? ['-n', ns] : []), '-o', 'json']));
  } catch (error) {
    if (/NotFound/.test((error as Error).message)) return undefined;
    throw error;
  }
};
const env = (deployment: Json) =>
  Object.fromEntries((deployment.spec.template.spec.containers[0].env as Json[]).map((e) => [e.name, e.value]));

await kubectl(['create', 'namespace', namespace]);
await kubectl(['create', 'namespace', appNamespace]);
// Whatever a failed test left behind: the chart's cluster-scoped objects go with the release.
after(() => helm(['uninstall', release, '--namespace', namespace, '--ignore-not-found']));
after(() => kubectl(['delete', 'namespace', namespace, appNamespace, '--wait=false']));

test('helm lint is clean, with --strict too, and with every option on', async () => {
  for (const args of [
    [],
    ['--strict'],
    [
      '--strict',
      '--set',
      'metrics.serviceMonitor.enabled=true,metrics.workerPodMonitor.enabled=true,dashboard.enabled=true',
    ],
  ]) {
    const out = await helm(['lint', chart, ...args]);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    assert.doesNotMatch(out, /\[(WARNING|ERROR)\]/, out);
  }
});

test('bad values fail helm lint and helm template with the schema message naming the field', async () => {
  const cases: [string[], RegExp][] = [
    [['--set', 'replicaCount=0'], /at '\/replicaCount': minimum: got 0, want 1/],
    [['--set', 'replicaCount=two'], /at '\/replicaCount': got string, want integer/],
    [['--set', 'logLevel=verbose'], /at '\/logLevel': value must be one of 'debug', 'info', 'warn', 'error'/],
    [['--set', 'leaderElection.leaseDurationSeconds=0'], /at '\/leaderElection\/leaseDurationSeconds': minimum/],
    [['--set', 'leaderElection.enabled=yes'], /at '\/leaderElection\/enabled': got string, want boolean/],
    [['--set', 'metrics.port=70000'], /at '\/metrics\/port': maximum: got 70,000, want 65,535/],
    [['--set', 'image.pullPolicy=Sometimes'], /at '\/image\/pullPolicy': value must be one of 'Always'/],
    [['--set', 'image.digest=latest'], /at '\/image\/digest': 'latest' does not match pattern/],
    [['--set', 'replicas=3'], /at '': additional properties 'replicas' not allowed/],
    [['--set', 'metrics.serviceMonitor.enable=true'], /at '\/metrics\/serviceMonitor': additional properties 'enable'/],
    [['--set', 'metrics.serviceMonitor.interval=30 seconds'], /at '\/metrics\/serviceMonitor\/interval': '30 seconds'/],
    [['--set', 'podLabels.team=7'], /at '\/podLabels\/team': got number, want string/],
    [['--set-json', 'extraEnv=[{"name":"RETRIES","value":3}]'], /at '\/extraEnv\/0\/value': got number, want string/],
    [['--set-json', 'resources={"request":{"cpu":"1"}}'], /at '\/resources': additional properties 'request'/],
  ];
  for (const [args, message] of cases) {
    await assert.rejects(helm(['lint', chart, ...args]), message, `helm lint ${args.join(' ')}`);
    await assert.rejects(template(...args), message, `helm template ${args.join(' ')}`);
  }
  // Conflicts between values are the templates' to judge (helm lint only logs a template's `fail`).
  await assert.rejects(
    template('--set', 'replicaCount=2,leaderElection.enabled=false'),
    /replicaCount is 2 but leaderElection.enabled is false: every replica would act at once/,
  );
  await assert.rejects(
    template('--set', 'serviceAccount.create=false'),
    /serviceAccount.name: name the existing ServiceAccount to run the operator as/,
  );
  assert.ok(await template('--set', 'replicaCount=1,leaderElection.enabled=false'));
});

test('by default: two replicas with leader election, the one source of RBAC, a locked-down container', async () => {
  const docs = await render();
  const { clusterRules, leaderElectionRules } = await operatorRbacRules();
  assert.deepEqual(find(docs, 'ClusterRole').rules, clusterRules);
  assert.deepEqual(find(docs, 'Role').rules, leaderElectionRules);
  const subject = [{ kind: 'ServiceAccount', name: operatorName, namespace }];
  assert.deepEqual(find(docs, 'ClusterRoleBinding').subjects, subject);
  assert.equal(find(docs, 'ClusterRoleBinding').roleRef.name, find(docs, 'ClusterRole').metadata.name);
  assert.deepEqual(find(docs, 'RoleBinding').subjects, subject);
  assert.equal(find(docs, 'RoleBinding').roleRef.name, find(docs, 'Role').metadata.name);
  assert.equal(find(docs, 'ServiceAccount').metadata.name, operatorName);
  assert.deepEqual(
    docs.map((d) => d.kind).sort(),
    ['ClusterRole', 'ClusterRoleBinding', 'Deployment', 'Role', 'RoleBinding', 'Service', 'ServiceAccount'],
    'no monitors or dashboard unless asked for',
  );

  const deployment = find(docs, 'Deployment');
  assert.equal(deployment.spec.replicas, 2);
  const pod = deployment.spec.template.spec;
  assert.equal(pod.serviceAccountName, operatorName);
  const container = pod.containers[0];
  const { appVersion } = load(await readFile(join(chart, 'Chart.yaml'), 'utf8')) as Json;
  assert.equal(container.image, `ghcr.io/taskfleet/taskfleet-operator:${appVersion}`, "the chart's appVersion");
  const [fromPod, literal] = [(container.env as Json[]).filter((e) => e.valueFrom), env(deployment)];
  assert.deepEqual(Object.fromEntries(fromPod.map((e) => [e.name, e.valueFrom.fieldRef.fieldPath])), {
    POD_NAMESPACE: 'metadata.namespace',
    POD_NAME: 'metadata.name',
  });
  for (const e of fromPod) delete literal[e.name];
  assert.deepEqual(literal, {
    TASKFLEET_METRICS_PORT: '8080',
    TASKFLEET_LEADER_ELECT: 'true',
    TASKFLEET_LEASE_DURATION: '15000',
    TASKFLEET_LOG_LEVEL: 'info',
    NODE_OPTIONS: '--max-old-space-size=128 --max-semi-space-size=2',
  });
  assert.deepEqual(pod.securityContext, {
    runAsNonRoot: true,
    seccompProfile: { type: 'RuntimeDefault' },
  });
  assert.deepEqual(container.securityContext, {
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ['ALL'] },
  });
  assert.equal(container.livenessProbe.httpGet.path, '/healthz');
  assert.equal(container.readinessProbe.httpGet.path, '/readyz');
  assert.deepEqual(container.ports, [{ name: 'metrics', containerPort: 8080, protocol: 'TCP' }]);

  const service = find(docs, 'Service');
  assert.deepEqual(service.spec.selector, deployment.spec.selector.matchLabels);
  assert.deepEqual(service.spec.ports, [{ name: 'metrics', port: 8080, targetPort: 'metrics', protocol: 'TCP' }]);
});

test('options: image, pull secrets, scheduling, env, monitors and the Grafana dashboard', async () => {
  const docs = await render(
    '--set',
    [
      'image.repository=registry.example/taskfleet-operator',
      'image.tag=1.2.3',
      'imagePullSecrets[0].name=registry',
      'logLevel=debug',
      'leaderElection.leaseDurationSeconds=30',
      'metrics.port=9000',
      'nodeOptions=',
      'nodeSelector.pool=system',
      'metrics.serviceMonitor.enabled=true',
      'metrics.serviceMonitor.labels.release=prometheus',
      'metrics.workerPodMonitor.enabled=true',
      'metrics.workerPodMonitor.interval=15s',
      'dashboard.enabled=true',
      'dashboard.label=grafana_dashboard_taskfleet',
      'dashboard.labelValue=yes',
      'dashboard.namespace=monitoring',
    ].join(','),
    '--set-json',
    'extraEnv=[{"name":"HTTPS_PROXY","value":"http://proxy.example:3128"}]',
    '--set-json',
    'tolerations=[{"key":"dedicated","operator":"Equal","value":"system","effect":"NoSchedule"}]',
  );
  const deployment = find(docs, 'Deployment');
  const pod = deployment.spec.template.spec;
  assert.equal(pod.containers[0].image, 'registry.example/taskfleet-operator:1.2.3');
  assert.deepEqual(pod.imagePullSecrets, [{ name: 'registry' }]);
  assert.deepEqual(pod.nodeSelector, { pool: 'system' });
  assert.equal(pod.tolerations[0].key, 'dedicated');
  const vars = env(deployment);
  assert.equal(vars.TASKFLEET_LOG_LEVEL, 'debug');
  assert.equal(vars.TASKFLEET_LEASE_DURATION, '30000');
  assert.equal(vars.TASKFLEET_METRICS_PORT, '9000');
  assert.equal(vars.HTTPS_PROXY, 'http://proxy.example:3128');
  assert.equal('NODE_OPTIONS' in vars, false, 'an empty nodeOptions leaves NODE_OPTIONS unset');
  assert.equal(pod.containers[0].ports[0].containerPort, 9000);
  assert.equal(find(docs, 'Service').spec.ports[0].port, 9000);

  const serviceMonitor = find(docs, 'ServiceMonitor');
  assert.equal(serviceMonitor.metadata.labels.release, 'prometheus');
  const serviceLabels = find(docs, 'Service').metadata.labels;
  for (const [key, value] of Object.entries(serviceMonitor.spec.selector.matchLabels)) {
    assert.equal(serviceLabels[key], value, `the ServiceMonitor selects the metrics Service by ${key}`);
  }
  assert.equal(serviceMonitor.spec.endpoints[0].port, 'metrics');
  const podMonitor = find(docs, 'PodMonitor');
  assert.deepEqual(podMonitor.spec.selector.matchLabels, { 'app.kubernetes.io/name': 'taskfleet-worker' });
  assert.deepEqual(podMonitor.spec.namespaceSelector, { any: true });
  assert.deepEqual(podMonitor.spec.podMetricsEndpoints[0], {
    port: 'metrics',
    path: '/metrics',
    interval: '15s',
    scrapeTimeout: '10s',
  });

  const dashboard = find(docs, 'ConfigMap');
  assert.equal(dashboard.metadata.namespace, 'monitoring');
  assert.equal(dashboard.metadata.labels.grafana_dashboard_taskfleet, 'yes');
  const json = await readFile(join(chart, 'dashboards', 'taskfleet.json'), 'utf8');
  assert.deepEqual(JSON.parse(dashboard.data['taskfleet.json']), JSON.parse(json));
  assert.equal(
    find(await render('--set', 'dashboard.enabled=true'), 'ConfigMap').metadata.labels.grafana_dashboard,
    '1',
  );
});

test('the API server accepts what the chart renders (server-side dry run), monitors off and on', async () => {
  const apply = (manifests: string) => kubectl(['apply', '--dry-run=server', '-f', '-'], { input: manifests });
  const plain = await apply(await template('--include-crds'));
  assert.match(plain, /customresourcedefinition.apiextensions.k8s.io\/taskqueues.taskfleet.dev \w+ \(server dry run\)/);
  assert.match(plain, new RegExp(`deployment.apps/${operatorName} created \\(server dry run\\)`));

  // With the Prometheus Operator's kinds served (a minimal stand-in for its CRDs), and every option set.
  after(() => kubectl(['delete', '-f', monitoringCrds, '--ignore-not-found']));
  await kubectl(['apply', '-f', monitoringCrds]);
  await kubectl([
    'wait',
    '--for=condition=Established',
    'crd/servicemonitors.monitoring.coreos.com',
    'crd/podmonitors.monitoring.coreos.com',
    '--timeout=60s',
  ]);
  const relabel = '[{"sourceLabels":["__meta_kubernetes_pod_label_taskfleet_dev_queue"],"targetLabel":"taskqueue"}]';
  const everything = await apply(
    await template(
      '--set',
      [
        'metrics.serviceMonitor.enabled=true',
        'metrics.serviceMonitor.labels.release=prometheus',
        'metrics.workerPodMonitor.enabled=true',
        'dashboard.enabled=true',
        'imagePullSecrets[0].name=registry',
        'nodeSelector.pool=system',
        'podAnnotations.team=platform',
        'priorityClassName=system-cluster-critical',
        'serviceAccount.annotations.example\\.com/role=operator',
      ].join(','),
      '--set-json',
      `metrics.workerPodMonitor.relabelings=${relabel}`,
      '--set-json',
      'metrics.serviceMonitor.metricRelabelings=[{"action":"drop","regex":"nodejs_.*","sourceLabels":["__name__"]}]',
      '--set-json',
      'extraEnv=[{"name":"HTTPS_PROXY","value":"http://proxy.example:3128"}]',
      '--set-json',
      'tolerations=[{"key":"dedicated","operator":"Equal","value":"system","effect":"NoSchedule"}]',
    ),
  );
  for (const kind of ['servicemonitor.monitoring.coreos.com', 'podmonitor.monitoring.coreos.com', 'configmap']) {
    assert.match(everything, new RegExp(`${kind.replaceAll('.', '\\.')}/\\S+ created \\(server dry run\\)`));
  }
});

// The same release goes through install, use, upgrade and uninstall in the next two tests.
const queue = `chart-${id}`;
const prefix = `chart-${id}`;
const app = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix });
after(() => app.close());

test("helm install: the CRD from crds/, the operator's ServiceAccount and RBAC, enough for the operator to work", async (t) => {
  const crdBefore = await get('crd', 'taskqueues.taskfleet.dev');
  const notes = await helm(['install', release, chart, '--namespace', namespace]);
  assert.match(notes, /kubectl get taskqueues -A/);
  assert.match(notes, new RegExp(`kubectl -n ${namespace} rollout status deployment/${operatorName}`));

  // Helm installs crds/ only where the CRD is missing: in a shared cluster another test may have been first.
  const crd = await eventually('the TaskQueue CRD established', async () => {
    const crd = await get('crd', 'taskqueues.taskfleet.dev');
    return crd?.status?.conditions?.some((c: Json) => c.type === 'Established' && c.status === 'True') && crd;
  });
  if (crdBefore === undefined) {
    const managers = JSON.parse(
      await kubectl(['get', 'crd', 'taskqueues.taskfleet.dev', '--show-managed-fields', '-o', 'json']),
    ).metadata.managedFields.map((f: Json) => f.manager);
    assert.ok(managers.includes('helm'), `the CRD was created by helm install (managers: ${managers})`);
  } else {
    t.diagnostic('the TaskQueue CRD was already in the cluster: Helm kept it, as it keeps any existing CRD');
  }
  const [chartCrdObject] = loadAll(await readFile(chartCrd, 'utf8')) as Json[];
  assert.deepEqual(
    crd.spec.versions.map((v: Json) => v.schema.openAPIV3Schema),
    chartCrdObject!.spec.versions.map((v: Json) => v.schema.openAPIV3Schema),
    "the served schema is the chart's",
  );

  assert.ok(await get('serviceaccount', operatorName, namespace));
  assert.ok(await get('clusterrole', operatorName));
  assert.ok(await get('clusterrolebinding', operatorName));
  assert.ok(await get('role', `${operatorName}-leader-election`, namespace));
  assert.ok(await get('rolebinding', `${operatorName}-leader-election`, namespace));
  assert.ok(await get('service', `${operatorName}-metrics`, namespace));
  assert.equal((await get('deployment', operatorName, namespace))?.spec.replicas, 2);

  // What a pod of that Deployment would be: the operator with the ServiceAccount's token and nothing more.
  const kubeconfig = await serviceAccountKubeconfig(kube, namespace, operatorName, {
    file: join(kube.kubeconfig, '..', `chart-${id}.kubeconfig`),
  });
  const operator = startOperator(kubeconfig, namespace, 'chart-operator', { TASKFLEET_LEASE_DURATION: '4000' });
  await app
    .task('noop', () => null)
    .applyBulk(
      Array.from({ length: 7 }, () => []),
      { queue },
    );
  // In another namespace (the ClusterRole's reach), with the broker's URL in a Secret (secrets: get), and a
  // backlog worth two replicas: the operator applies the Deployment, patches /scale, records an Event.
  await kubectl(['create', 'secret', 'generic', 'redis', '-n', appNamespace, `--from-literal=url=${redisUrl}`]);
  await kubectl(['apply', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'taskfleet.dev/v1alpha1',
      kind: 'TaskQueue',
      metadata: { name: 'emails', namespace: appNamespace },
      spec: {
        queue,
        broker: { redis: { urlFrom: { secretKeyRef: { name: 'redis', key: 'url' } }, prefix } },
        worker: { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } },
        scaling: { pollIntervalSeconds: 1, targetBacklogPerReplica: 5, maxReplicas: 2 },
      },
    }),
  });
  const failed = (error: Error) => {
    throw new Error(`${error.message}\noperator output:\n${operator.output()}`);
  };
  const workers = await eventually('the worker Deployment', () => get('deployment', 'emails-workers', appNamespace));
  assert.equal(workers.metadata.ownerReferences?.[0]?.name, 'emails');
  const tq = await eventually(
    'the TaskQueue status: backlog 7, 2 replicas, Ready',
    async () => {
      const tq = await get('taskqueue', 'emails', appNamespace);
      const ready = tq?.status?.conditions?.find((c: Json) => c.type === 'Ready');
      return tq?.status?.backlog?.ready === 7 && tq.status.desiredReplicas === 2 && ready?.status === 'True' && tq;
    },
    30_000,
  ).catch(failed);
  assert.equal(tq.status.observedGeneration, tq.metadata.generation);
  assert.equal((await get('deployment', 'emails-workers', appNamespace))?.spec.replicas, 2);
  const events = JSON.parse(
    await kubectl([
      'get',
      'events',
      '-n',
      appNamespace,
      '--field-selector',
      'involvedObject.name=emails',
      '-o',
      'json',
    ]),
  ).items as Json[];
  assert.ok(
    events.some((e) => e.reason === 'Scaled' && /^scaled 1 → 2: /.test(e.message)),
    events.map((e) => `${e.reason}: ${e.message}`).join('\n'),
  );
  const lease = await get('lease', 'taskfleet-operator', namespace);
  assert.equal(lease?.spec?.holderIdentity, 'chart-operator', 'leader election in the release namespace');
  assert.doesNotMatch(operator.output(), /forbidden/i, 'no request was refused');

  // The operator stops as its pods would on uninstall, releasing the Lease.
  operator.child.kill('SIGTERM');
  await eventually('the operator to stop', () => operator.child.exitCode !== null);
});

test('helm upgrade changes the Deployment; helm uninstall removes the operator and keeps the CRD, the TaskQueues and the broker data', async () => {
  await helm([
    'upgrade',
    release,
    chart,
    '--namespace',
    namespace,
    '--reuse-values',
    '--set',
    'replicaCount=3,logLevel=debug,leaderElection.leaseDurationSeconds=30',
  ]);
  const deployment = await get('deployment', operatorName, namespace);
  assert.equal(deployment?.spec.replicas, 3);
  assert.equal(env(deployment!).TASKFLEET_LOG_LEVEL, 'debug');
  assert.equal(env(deployment!).TASKFLEET_LEASE_DURATION, '30000');
  assert.equal(JSON.parse(await helm(['status', release, '--namespace', namespace, '-o', 'json'])).version, 2);

  await helm(['uninstall', release, '--namespace', namespace, '--wait']);
  for (const [kind, name, ns] of [
    ['deployment', operatorName, namespace],
    ['service', `${operatorName}-metrics`, namespace],
    ['serviceaccount', operatorName, namespace],
    ['role', `${operatorName}-leader-election`, namespace],
    ['rolebinding', `${operatorName}-leader-election`, namespace],
    ['clusterrole', operatorName],
    ['clusterrolebinding', operatorName],
  ] as const) {
    assert.equal(await get(kind, name, ns), undefined, `${kind} ${name} is gone`);
  }
  assert.doesNotMatch(await helm(['list', '--namespace', namespace, '--short']), new RegExp(release));

  assert.ok(await get('crd', 'taskqueues.taskfleet.dev'), 'Helm never deletes crds/');
  assert.ok(await get('taskqueue', 'emails', appNamespace), 'the TaskQueue stays');
  assert.ok(await get('deployment', 'emails-workers', appNamespace), 'its workers stay');
  assert.equal((await app.broker.backlog(queue)).ready, 7, "the broker's data is untouched");
});
