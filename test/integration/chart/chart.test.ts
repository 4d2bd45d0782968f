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
import { Taskfleet } from 'taskfleet';
import { parse } from 'yaml';
import { startChartOperator } from '../../support/chart-operator.ts';
import { eventually } from '../../support/eventually.ts';
import { helm } from '../../support/helm.ts';
import { kubectl } from '../../support/kube.ts';
import { operatorRbacRules, watchedNamespaceRules } from '../../support/operator-rbac.ts';
import { useKube, useRedis } from '../../support/stack.ts';
import { yamlDocuments } from '../../support/yaml.ts';

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
const render = async (...args: string[]) => yamlDocuments(await template(...args)).filter(Boolean) as Json[];
/** The one object of that kind (and name) among what the chart rendered. */
const find = (docs: Json[], kind: string, name?: string) => {
  const found = docs.filter((d) => d.kind === kind && (name === undefined || d.metadata.name === name));
  assert.equal(found.length, 1, `one ${kind} ${name ?? ''} in ${docs.map((d) => d.kind).join(', ')}`);
  return found[0]!;
};
const kinds = (docs: Json[]) => docs.map((d) => d.kind).sort();
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
      '--set',
      'networkPolicy.enabled=true,watchNamespaces={team-a,team-b},secrets.read=false,workerResources.requests.cpu=1',
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
    [['--set', 'watchNamespaces={Team_A}'], /at '\/watchNamespaces\/0': 'Team_A' does not match pattern/],
    [['--set', 'watchNamespaces={a,a}'], /at '\/watchNamespaces': items at 0 and 1 are equal/],
    [['--set', 'secrets.read=no'], /at '\/secrets\/read': got string, want boolean/],
    [
      ['--set-json', 'workerResources={"request":{"cpu":"1"}}'],
      /at '\/workerResources': additional properties 'request'/,
    ],
    [
      ['--set', 'admissionPolicies.validationActions={Block}'],
      /at '\/admissionPolicies\/validationActions\/0': value must be one of 'Deny', 'Warn', 'Audit'/,
    ],
    [
      ['--set', 'admissionPolicies.taskQueueReferences.enable=false'],
      /at '\/admissionPolicies\/taskQueueReferences': additional properties 'enable'/,
    ],
    [
      ['--set-json', 'networkPolicy.brokers=[{"protocol":"TCP"}]'],
      /at '\/networkPolicy\/brokers\/0': missing property 'port'/,
    ],
    [
      ['--set', 'networkPolicy.apiServer.cidrs={kubernetes.default}'],
      /at '\/networkPolicy\/apiServer\/cidrs\/0': 'kubernetes.default' does not match pattern/,
    ],
    [['--set', 'podDisruptionBudget.maxUnavailable=0'], /at '\/podDisruptionBudget\/maxUnavailable': 'oneOf' failed/],
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
  // `helm upgrade --reuse-values` from an older chart renders with that chart's defaults, without this one's
  // new keys (`key=null` removes a key, as they are removed there).
  await assert.rejects(
    template('--set', 'secrets=null,admissionPolicies=null'),
    /the values have no secrets, admissionPolicies: they come from an older Taskfleet chart \(helm upgrade --reuse-values keeps the old chart's defaults\)\. Upgrade with --reset-then-reuse-values/,
  );
  await assert.rejects(
    template('--set', 'admissionPolicies.validationActions={Deny,Warn}'),
    /admissionPolicies.validationActions: Deny and Warn cannot be set together/,
  );
  await assert.rejects(
    template('--set', 'serviceAccount.create=false'),
    /serviceAccount.name: name the existing ServiceAccount to run the operator as/,
  );
  assert.ok(await template('--set', 'replicaCount=1,leaderElection.enabled=false'));
});

test('by default: two replicas with leader election, the one source of RBAC, a locked-down container', async () => {
  const docs = await render();
  const { leaderElectionRules } = await operatorRbacRules();
  // Every namespace: one ClusterRole with the namespace rules and the Secrets rule.
  const clusterRole = find(docs, 'ClusterRole', operatorName);
  assert.deepEqual(clusterRole.rules, await watchedNamespaceRules({ readSecrets: true }));
  assert.ok(clusterRole.rules.some((r: Json) => r.resources.includes('secrets')));
  assert.deepEqual(find(docs, 'Role').rules, leaderElectionRules);
  const subject = [{ kind: 'ServiceAccount', name: operatorName, namespace }];
  assert.deepEqual(find(docs, 'ClusterRoleBinding').subjects, subject);
  assert.equal(find(docs, 'ClusterRoleBinding').roleRef.name, operatorName);
  assert.deepEqual(find(docs, 'RoleBinding').subjects, subject);
  assert.equal(find(docs, 'RoleBinding').roleRef.name, find(docs, 'Role').metadata.name);
  assert.equal(find(docs, 'ServiceAccount').metadata.name, operatorName);
  assert.deepEqual(
    kinds(docs),
    [
      'ClusterRole',
      'ClusterRole',
      'ClusterRole',
      'ClusterRoleBinding',
      'Deployment',
      'PodDisruptionBudget',
      'Role',
      'RoleBinding',
      'Service',
      'ServiceAccount',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicy',
      'ValidatingAdmissionPolicyBinding',
      'ValidatingAdmissionPolicyBinding',
    ],
    'no monitors, dashboard or NetworkPolicy unless asked for',
  );

  // TaskQueue rights for `edit` and `admin`, never for `view`.
  const editor = find(docs, 'ClusterRole', `${release}-taskfleet-taskqueue-editor`);
  assert.equal(editor.metadata.labels['rbac.authorization.k8s.io/aggregate-to-edit'], 'true');
  assert.equal(editor.metadata.labels['rbac.authorization.k8s.io/aggregate-to-admin'], 'true');
  assert.equal(editor.metadata.labels['rbac.authorization.k8s.io/aggregate-to-view'], undefined);
  assert.deepEqual(editor.rules, [
    {
      apiGroups: ['taskfleet.dev'],
      resources: ['taskqueues'],
      verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'],
    },
  ]);

  // Reading them: a ClusterRole aggregated nowhere, to bind where wanted.
  const viewer = find(docs, 'ClusterRole', `${release}-taskfleet-taskqueue-viewer`);
  assert.equal(
    Object.keys(viewer.metadata.labels).some((l) => l.startsWith('rbac.authorization.k8s.io/aggregate-to')),
    false,
  );
  assert.deepEqual(viewer.rules, [
    { apiGroups: ['taskfleet.dev'], resources: ['taskqueues'], verbs: ['get', 'list', 'watch'] },
  ]);

  // Both admission policies, bound, refusing what they find.
  for (const policy of [`${release}-taskfleet-taskqueue-references`, `${release}-taskfleet-operator-writes`]) {
    assert.equal(find(docs, 'ValidatingAdmissionPolicy', policy).spec.failurePolicy, 'Fail');
    const binding = find(docs, 'ValidatingAdmissionPolicyBinding', policy).spec;
    assert.deepEqual(binding, { policyName: policy, validationActions: ['Deny'] });
  }
  const references = find(docs, 'ValidatingAdmissionPolicy', `${release}-taskfleet-taskqueue-references`).spec;
  assert.deepEqual(references.matchConstraints.resourceRules, [
    { apiGroups: ['taskfleet.dev'], apiVersions: ['*'], operations: ['CREATE', 'UPDATE'], resources: ['taskqueues'] },
  ]);
  const writes = find(docs, 'ValidatingAdmissionPolicy', `${release}-taskfleet-operator-writes`).spec;
  assert.deepEqual(writes.matchConditions, [
    {
      name: 'the-operator',
      expression: `request.userInfo.username == 'system:serviceaccount:${namespace}:${operatorName}'`,
    },
  ]);

  const deployment = find(docs, 'Deployment');
  assert.equal(deployment.spec.replicas, 2);
  const pod = deployment.spec.template.spec;
  assert.equal(pod.serviceAccountName, operatorName);
  const container = pod.containers[0];
  const { appVersion } = parse(await readFile(join(chart, 'Chart.yaml'), 'utf8')) as Json;
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
    TASKFLEET_READ_SECRETS: 'true',
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

  // Two replicas: drains evict them one at a time.
  const budget = find(docs, 'PodDisruptionBudget').spec;
  assert.deepEqual(budget, { maxUnavailable: 1, selector: { matchLabels: deployment.spec.selector.matchLabels } });
  assert.deepEqual(kinds(await render('--set', 'replicaCount=1')).includes('PodDisruptionBudget'), false);
});

test('least privilege: watchNamespaces gives a Role per namespace instead of the ClusterRole, secrets.read=false drops the Secrets rule', async () => {
  const { leaderElectionRules } = await operatorRbacRules();
  const subject = [{ kind: 'ServiceAccount', name: operatorName, namespace }];
  const watched = [appNamespace, namespace];
  const args = ['--set', `watchNamespaces={${watched.join(',')}}`];
  const docs = await render(...args);
  assert.equal(
    docs.some((d) => d.kind === 'ClusterRoleBinding' || (d.kind === 'ClusterRole' && d.metadata.name === operatorName)),
    false,
    'no cluster-wide role for the operator',
  );
  const roles = docs.filter((d) => d.kind === 'Role' && d.metadata.name === operatorName);
  assert.deepEqual(roles.map((r) => r.metadata.namespace).sort(), [...watched].sort());
  for (const role of roles) assert.deepEqual(role.rules, await watchedNamespaceRules({ readSecrets: true }));
  const bindings = docs.filter((d) => d.kind === 'RoleBinding' && d.metadata.name === operatorName);
  assert.deepEqual(bindings.map((b) => b.metadata.namespace).sort(), [...watched].sort());
  for (const binding of bindings) {
    assert.deepEqual(binding.subjects, subject);
    assert.deepEqual(binding.roleRef, { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: operatorName });
  }
  assert.deepEqual(find(docs, 'Role', `${operatorName}-leader-election`).rules, leaderElectionRules);
  assert.equal(env(find(docs, 'Deployment')).TASKFLEET_WATCH_NAMESPACES, watched.join(','));

  const withoutSecrets = await render('--set', 'secrets.read=false');
  const rules = find(withoutSecrets, 'ClusterRole', operatorName).rules as Json[];
  assert.deepEqual(rules, await watchedNamespaceRules({ readSecrets: false }));
  assert.equal(
    rules.some((r) => r.resources.includes('secrets')),
    false,
    'no rule on secrets',
  );
  assert.equal(env(find(withoutSecrets, 'Deployment')).TASKFLEET_READ_SECRETS, 'false');
  const both = await render(...args, '--set', 'secrets.read=false');
  for (const role of both.filter((d) => d.kind === 'Role' && d.metadata.name === operatorName)) {
    assert.equal(
      role.rules.some((r: Json) => r.resources.includes('secrets')),
      false,
    );
  }

  // The API server takes them: Roles in existing namespaces, bound to the chart's ServiceAccount.
  const dryRun = await kubectl(['apply', '--dry-run=server', '-f', '-'], {
    input: await template(...args, '--set', 'secrets.read=false'),
  });
  for (const ns of watched) {
    assert.match(dryRun, new RegExp(`role.rbac.authorization.k8s.io/${operatorName} created \\(server dry run\\)`));
    assert.ok(dryRun.includes(`rolebinding.rbac.authorization.k8s.io/${operatorName} created`), ns);
  }
  assert.doesNotMatch(dryRun, new RegExp(`clusterrole.rbac.authorization.k8s.io/${operatorName} `));
});

test('options: NetworkPolicy, PodDisruptionBudget, worker resources, admission policies off or only reporting', async () => {
  const args = [
    '--set',
    'networkPolicy.enabled=true,networkPolicy.apiServer.cidrs={10.0.0.1/32},podDisruptionBudget.maxUnavailable=50%',
    '--set',
    'admissionPolicies.validationActions={Warn,Audit}',
    '--set-json',
    'networkPolicy.brokers=[{"port":6379},{"port":9093,"to":[{"ipBlock":{"cidr":"10.20.0.0/16"}}]}]',
    '--set-json',
    'networkPolicy.metrics.from=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}}}]',
    '--set-json',
    'workerResources={"requests":{"cpu":"250m","memory":"256Mi"},"limits":{"memory":"512Mi"}}',
  ];
  const docs = await render(...args);
  const policy = find(docs, 'NetworkPolicy').spec;
  assert.deepEqual(policy.podSelector.matchLabels, find(docs, 'Deployment').spec.selector.matchLabels);
  assert.deepEqual(policy.policyTypes, ['Ingress', 'Egress']);
  assert.deepEqual(policy.ingress, [
    {
      ports: [{ port: 'metrics', protocol: 'TCP' }],
      from: [{ namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'monitoring' } } }],
    },
  ]);
  assert.deepEqual(policy.egress, [
    {
      ports: [
        { port: 443, protocol: 'TCP' },
        { port: 6443, protocol: 'TCP' },
      ],
      to: [{ ipBlock: { cidr: '10.0.0.1/32' } }],
    },
    {
      ports: [
        { port: 53, protocol: 'UDP' },
        { port: 53, protocol: 'TCP' },
      ],
      to: [
        {
          namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
          podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
        },
      ],
    },
    { ports: [{ port: 6379, protocol: 'TCP' }] },
    { ports: [{ port: 9093, protocol: 'TCP' }], to: [{ ipBlock: { cidr: '10.20.0.0/16' } }] },
  ]);
  assert.equal(find(docs, 'PodDisruptionBudget').spec.maxUnavailable, '50%');
  assert.deepEqual(JSON.parse(env(find(docs, 'Deployment')).TASKFLEET_WORKER_RESOURCES), {
    requests: { cpu: '250m', memory: '256Mi' },
    limits: { memory: '512Mi' },
  });
  for (const binding of docs.filter((d) => d.kind === 'ValidatingAdmissionPolicyBinding')) {
    assert.deepEqual(binding.spec.validationActions, ['Warn', 'Audit']);
  }
  const dryRun = await kubectl(['apply', '--dry-run=server', '-f', '-'], { input: await template(...args) });
  assert.match(dryRun, new RegExp(`networkpolicy.networking.k8s.io/${operatorName} created \\(server dry run\\)`));
  assert.match(dryRun, new RegExp(`poddisruptionbudget.policy/${operatorName} created \\(server dry run\\)`));

  const off = await render(
    '--set',
    'admissionPolicies.taskQueueReferences.enabled=false,admissionPolicies.operatorWrites.enabled=false',
    '--set',
    'rbac.aggregateToEdit=false,podDisruptionBudget.enabled=false',
  );
  for (const kind of ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding', 'PodDisruptionBudget']) {
    assert.equal(kinds(off).includes(kind), false, `no ${kind}`);
  }
  assert.deepEqual(
    off.filter((d) => d.kind === 'ClusterRole').map((d) => d.metadata.name),
    [operatorName, `${release}-taskfleet-taskqueue-viewer`],
    'no aggregated ClusterRole',
  );
  assert.equal('TASKFLEET_WORKER_RESOURCES' in env(find(off, 'Deployment')), false, "the operator's own default");
  const notes = await helm([
    'install',
    release,
    chart,
    '--dry-run',
    '--namespace',
    namespace,
    '--set',
    'admissionPolicies.taskQueueReferences.enabled=false',
  ]);
  assert.match(
    notes,
    /The admission policy taskqueue-references is off: anyone who may create a TaskQueue can make the operator/,
  );
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
  assert.match(
    notes,
    /watches TaskQueues\nin every namespace \(a ClusterRole\)\.\nIt reads the Secrets TaskQueues name/,
  );
  assert.match(notes, /Whoever creates or changes a TaskQueue must themselves be allowed to get the Secrets it names/);
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
  const [chartCrdObject] = yamlDocuments(await readFile(chartCrd, 'utf8')) as Json[];
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
  assert.ok(await get('poddisruptionbudget', operatorName, namespace));
  assert.ok(await get('clusterrole', `${release}-taskfleet-taskqueue-editor`));
  for (const policy of [`${release}-taskfleet-taskqueue-references`, `${release}-taskfleet-operator-writes`]) {
    assert.ok(await get('validatingadmissionpolicy', policy));
    assert.ok(await get('validatingadmissionpolicybinding', policy));
  }
  assert.equal((await get('deployment', operatorName, namespace))?.spec.replicas, 2);

  // What a pod of that Deployment would be: the operator with the ServiceAccount's token and nothing more,
  // under the chart's admission policy on that ServiceAccount, with the Deployment's environment.
  const operator = await startChartOperator(namespace, operatorName, {
    identity: 'chart-operator',
    extraEnv: { TASKFLEET_LEASE_DURATION: '4000' },
  });
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
    ['clusterrole', `${release}-taskfleet-taskqueue-editor`],
    ['clusterrole', `${release}-taskfleet-taskqueue-viewer`],
    ['poddisruptionbudget', operatorName, namespace],
    ['validatingadmissionpolicy', `${release}-taskfleet-taskqueue-references`],
    ['validatingadmissionpolicybinding', `${release}-taskfleet-taskqueue-references`],
    ['validatingadmissionpolicy', `${release}-taskfleet-operator-writes`],
    ['validatingadmissionpolicybinding', `${release}-taskfleet-operator-writes`],
  ] as const) {
    assert.equal(await get(kind, name, ns), undefined, `${kind} ${name} is gone`);
  }
  assert.doesNotMatch(await helm(['list', '--namespace', namespace, '--short']), new RegExp(release));

  assert.ok(await get('crd', 'taskqueues.taskfleet.dev'), 'Helm never deletes crds/');
  assert.ok(await get('taskqueue', 'emails', appNamespace), 'the TaskQueue stays');
  assert.ok(await get('deployment', 'emails-workers', appNamespace), 'its workers stay');
  assert.equal((await app.broker.backlog(queue)).ready, 7, "the broker's data is untouched");
});
