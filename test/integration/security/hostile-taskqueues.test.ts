/**
 * The hostile-TaskQueue corpus, against the real API server with the chart installed (its CRD, RBAC and
 * admission policies) and the operator running as the chart's ServiceAccount. Tenants hold only rights in
 * their namespace — a RoleBinding to the built-in `edit`, or a narrower Role — and try to turn the operator
 * against the cluster: names that climb out of the request path, Secrets of other namespaces, Secrets of
 * their own namespace they may not read, a foreign endpoint to send credentials to, Deployments they may
 * not scale, a managed worker when they may not create Deployments. Each is refused by the API server (the
 * CRD's name patterns, RBAC, or the taskqueue-references admission policy) with a message naming what is
 * wrong, or turned into a condition by the operator. Then, from the API server's audit log: the operator
 * read no Secret but those its tenants may read, and scaled nothing but their own Deployments; and no Secret
 * value is in any status, Event or the operator's log.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer } from 'node:net';
import { after, test } from 'node:test';
import { Taskfleet } from 'taskfleet';
import { type AuditEvent, auditedRequests, describeRequest } from '../../support/audit.ts';
import { startChartOperator } from '../../support/chart-operator.ts';
import { installCrds } from '../../support/crds.ts';
import { eventually } from '../../support/eventually.ts';
import { helm } from '../../support/helm.ts';
import { condition, inNamespace, type Json, kubectl } from '../../support/kube.ts';
import { useRedis } from '../../support/stack.ts';

const chart = new URL('../../../charts/taskfleet', import.meta.url).pathname;
const id = randomUUID().slice(0, 8);
const system = `sec-${id}`;
const teamA = `team-a-${id}`;
const teamB = `team-b-${id}`;
const release = `sec-${id}`;
const operatorName = `${release}-taskfleet-operator`;
/** Tenants of team-a: `edit`, `admin`, `view`, and a Role narrower than `edit` (see below). */
const alice = `alice-${id}`;
const dora = `dora-${id}`;
const carol = `carol-${id}`;
const bob = `bob-${id}`;
/** Bound to the chart's taskqueue-viewer ClusterRole, which is aggregated nowhere. */
const erin = `erin-${id}`;
const foreignSecret = `cloud-credentials-${id}`;

/** Every Secret value of the corpus: none may appear anywhere but in its Secret. */
const values = {
  db: `db-password-${randomUUID()}`,
  kafka: `kafka-password-${randomUUID()}`,
  teamB: `team-b-token-${randomUUID()}`,
  kubeSystem: `kube-system-token-${randomUUID()}`,
};

const redisUrl = (await useRedis()).url;
const queue = `sec-${id}`;
const app = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix: queue });
after(() => app.close());

// An endpoint of the tenant's choosing: a hostile TaskQueue would have the operator connect here and send
// the credentials of a Secret its author cannot read. It counts who came.
let foreignConnections = 0;
const foreign = createServer((socket) => {
  foreignConnections++;
  socket.destroy();
});
foreign.listen(0, '127.0.0.1');
await once(foreign, 'listening');
const foreignEndpoint = `127.0.0.1:${(foreign.address() as { port: number }).port}`;
after(() => foreign.close());

const json = (items: Json[]) => JSON.stringify({ apiVersion: 'v1', kind: 'List', items });
const secret = (namespace: string, name: string, data: Record<string, string>) => ({
  apiVersion: 'v1',
  kind: 'Secret',
  metadata: { name, namespace },
  stringData: data,
});
const deployment = (namespace: string, name: string, replicas: number) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name, namespace },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: { containers: [{ name: 'main', image: 'example.invalid/app:1' }] },
    },
  },
});
const taskQueue = (name: string, spec: Json, namespace = teamA) => ({
  apiVersion: 'taskfleet.dev/v1alpha1',
  kind: 'TaskQueue',
  metadata: { name, namespace },
  spec: { queue, scaling: { pollIntervalSeconds: 1, targetBacklogPerReplica: 5, maxReplicas: 4 }, ...spec },
});
const worker = { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } };
const redisFrom = (name: string, key = 'url') => ({
  redis: { urlFrom: { secretKeyRef: { name, key } }, prefix: queue },
});
/** kubectl as a tenant: the admin impersonates them, so RBAC and admission see only the tenant. */
const as = (user: string, args: string[], input?: Json) =>
  kubectl([`--as=${user}`, ...args], input === undefined ? {} : { input: JSON.stringify(input) });

/** A tenant's merge patch of a TaskQueue's spec. */
const patchSpec = (user: string, name: string, spec: Json) =>
  as(user, ['patch', 'taskqueue', name, '-n', teamA, '--type=merge', '-p', JSON.stringify({ spec })]);

await installCrds();
for (const ns of [system, teamA, teamB]) await kubectl(['create', 'namespace', ns]);
after(() => kubectl(['delete', 'namespace', system, teamA, teamB, '--wait=false']));
after(() => kubectl(['delete', 'secret', foreignSecret, '-n', 'kube-system', '--ignore-not-found']));
after(() => helm(['uninstall', release, '--namespace', system, '--ignore-not-found']));
await helm(['install', release, chart, '--namespace', system, '--set', 'replicaCount=1']);

await kubectl(['apply', '-f', '-'], {
  input: json([
    secret(teamA, 'redis', { url: redisUrl }),
    // A Secret that holds a password where a URL belongs: the common slip whose value must stay put.
    secret(teamA, 'db', { password: values.db }),
    secret(teamA, 'kafka-user', { username: 'tenant', password: values.kafka }),
    secret(teamA, 'bob-redis', { url: redisUrl }),
    secret(teamB, 'cloud-credentials', { token: values.teamB }),
    secret('kube-system', foreignSecret, { token: values.kubeSystem }),
    deployment(teamA, 'web', 3),
    deployment(teamA, 'bob-target', 1),
    deployment(teamA, 'alice-target', 1),
    deployment(teamB, 'web', 2),
  ]),
});
// team-a's tenants. Bob may write TaskQueues, read one Secret and scale one Deployment, by name — no more.
await kubectl(['create', 'rolebinding', 'alice-edit', '-n', teamA, '--clusterrole=edit', `--user=${alice}`]);
await kubectl(['create', 'rolebinding', 'dora-admin', '-n', teamA, '--clusterrole=admin', `--user=${dora}`]);
await kubectl(['create', 'rolebinding', 'carol-view', '-n', teamA, '--clusterrole=view', `--user=${carol}`]);
await kubectl([
  'create',
  'rolebinding',
  'erin-taskqueue-viewer',
  '-n',
  teamA,
  `--clusterrole=${release}-taskfleet-taskqueue-viewer`,
  `--user=${erin}`,
]);
await kubectl(['apply', '-f', '-'], {
  input: json([
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'queue-author', namespace: teamA },
      rules: [
        {
          apiGroups: ['taskfleet.dev'],
          resources: ['taskqueues'],
          verbs: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete'],
        },
        { apiGroups: [''], resources: ['secrets'], resourceNames: ['bob-redis'], verbs: ['get'] },
        { apiGroups: ['apps'], resources: ['deployments'], verbs: ['get', 'list', 'watch'] },
        {
          apiGroups: ['apps'],
          resources: ['deployments/scale'],
          resourceNames: ['bob-target'],
          verbs: ['get', 'patch'],
        },
      ],
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'bob-queue-author', namespace: teamA },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'queue-author' },
      subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: bob }],
    },
  ]),
});

// A new policy binding takes effect within moments, not at once: wait until it refuses bob a Secret.
await eventually('the taskqueue-references policy in force', () =>
  as(
    bob,
    ['create', '--dry-run=server', '-f', '-'],
    taskQueue('probe', { broker: redisFrom('db', 'password'), worker }),
  ).then(
    () => false,
    (error: Error) => /denied request/.test(error.message),
  ),
);

const operator = await startChartOperator(system, operatorName, { identity: 'sec-operator' });
const withLog = (error: Error) => {
  throw new Error(`${error.message}\noperator output:\n${operator.output()}`);
};
const a = inNamespace(teamA);

test('edit and admin may create and update TaskQueues (aggregated into them); view may not even read them, taskqueue-viewer may', async () => {
  // The admitted ones, used below: a managed worker, and a scale target with a backlog worth 2 replicas.
  await app
    .task('noop', () => null)
    .applyBulk(
      Array.from({ length: 7 }, () => []),
      { queue },
    );
  await as(alice, ['create', '-f', '-'], taskQueue('legit-worker', { broker: redisFrom('redis'), worker }));
  await as(
    alice,
    ['create', '-f', '-'],
    taskQueue('legit-target', { broker: redisFrom('redis'), scaleTargetRef: { name: 'alice-target' } }),
  );
  // The slip of issue 12: a password where the URL belongs. Alice may read it, so it is admitted; its value
  // must not come back out.
  await as(alice, ['create', '-f', '-'], taskQueue('not-a-url', { broker: redisFrom('db', 'password'), worker }));
  await patchSpec(alice, 'legit-target', { scaling: { maxReplicas: 3 } });
  assert.equal((await a.get('taskqueue', 'legit-target'))?.spec.scaling.maxReplicas, 3);
  assert.match(
    await as(
      dora,
      ['create', '--dry-run=server', '-f', '-'],
      taskQueue('dora', { broker: redisFrom('redis'), worker }),
    ),
    /taskqueue.taskfleet.dev\/dora created \(server dry run\)/,
  );

  const forbidden = (verb: string) =>
    new RegExp(
      `User "${carol}" cannot ${verb} resource "taskqueues" in API group "taskfleet.dev" in the namespace "${teamA}"`,
    );
  await assert.rejects(
    as(carol, ['create', '-f', '-'], taskQueue('carol', { broker: redisFrom('redis'), worker })),
    forbidden('create'),
  );
  await assert.rejects(patchSpec(carol, 'legit-target', { queue: 'x' }), forbidden('get'));
  await assert.rejects(as(carol, ['get', 'taskqueues', '-n', teamA]), forbidden('list'));

  // Reading them is the chart's taskqueue-viewer, bound on purpose.
  assert.match(
    await as(erin, ['get', 'taskqueues', '-n', teamA, '-o', 'name']),
    /taskqueue.taskfleet.dev\/legit-target/,
  );
  await assert.rejects(
    as(erin, ['create', '-f', '-'], taskQueue('erin', { broker: redisFrom('redis'), worker })),
    new RegExp(`User "${erin}" cannot create resource "taskqueues"`),
  );
});

/** A TaskQueue a tenant tries to create, and what the API server must answer. */
interface HostileCase {
  title: string;
  user: string;
  manifest: Json;
  refused: RegExp;
}

const traversal = `../../kube-system/secrets/${foreignSecret}`;
const invalidName = (field: string) => new RegExp(`${field.replaceAll('.', '\\.')}: Invalid value`);
const mayNotGet = (name: string, field: string) =>
  new RegExp(
    `you may not get Secret ${name} in ${teamA} \\(${field.replaceAll('.', '\\.')}\\): a TaskQueue may reference only Secrets its author can read`,
  );
const kafka = (extra: Json) => ({ kafka: { brokers: [foreignEndpoint], prefix: queue, ...extra } });

const corpus: HostileCase[] = [
  {
    title: 'a Secret name that climbs out of the request path (urlFrom)',
    user: alice,
    manifest: taskQueue('traversal-url', { broker: redisFrom(traversal), worker }),
    refused: invalidName('spec.broker.redis.urlFrom.secretKeyRef.name'),
  },
  {
    title: 'the same, percent-encoded',
    user: alice,
    manifest: taskQueue('traversal-encoded', {
      broker: redisFrom(`..%2F..%2Fkube-system%2Fsecrets%2F${foreignSecret}`),
      worker,
    }),
    refused: invalidName('spec.broker.redis.urlFrom.secretKeyRef.name'),
  },
  {
    title: 'a result backend Secret name that climbs out',
    user: alice,
    manifest: taskQueue('traversal-backend', {
      broker: redisFrom('redis'),
      resultBackend: redisFrom(traversal),
      worker,
    }),
    refused: invalidName('spec.resultBackend.redis.urlFrom.secretKeyRef.name'),
  },
  {
    title: 'a SASL Secret name that climbs out',
    user: alice,
    manifest: taskQueue('traversal-sasl', {
      broker: kafka({ sasl: { mechanism: 'plain', secretRef: { name: traversal } } }),
      worker,
    }),
    refused: invalidName('spec.broker.kafka.sasl.secretRef.name'),
  },
  {
    title: 'a Kafka CA Secret name that climbs out',
    user: alice,
    manifest: taskQueue('traversal-ca', {
      broker: kafka({ tls: { enabled: true, caFrom: { secretKeyRef: { name: traversal, key: 'ca.crt' } } } }),
      worker,
    }),
    refused: invalidName('spec.broker.kafka.tls.caFrom.secretKeyRef.name'),
  },
  {
    title: 'a Kafka client certificate Secret name that climbs out',
    user: alice,
    manifest: taskQueue('traversal-cert', {
      broker: kafka({
        tls: {
          enabled: true,
          certFrom: { secretKeyRef: { name: traversal, key: 'tls.crt' } },
          keyFrom: { secretKeyRef: { name: 'kafka-user', key: 'password' } },
        },
      }),
      worker,
    }),
    refused: invalidName('spec.broker.kafka.tls.certFrom.secretKeyRef.name'),
  },
  {
    title: 'a Kafka client key Secret name that climbs out',
    user: alice,
    manifest: taskQueue('traversal-key', {
      broker: kafka({
        tls: {
          enabled: true,
          certFrom: { secretKeyRef: { name: 'kafka-user', key: 'username' } },
          keyFrom: { secretKeyRef: { name: traversal, key: 'tls.key' } },
        },
      }),
      worker,
    }),
    refused: invalidName('spec.broker.kafka.tls.keyFrom.secretKeyRef.name'),
  },
  {
    title: "a scale target in another namespace, by a name that climbs out ('web' of team-b)",
    user: alice,
    manifest: taskQueue('traversal-scale', {
      broker: redisFrom('redis'),
      scaleTargetRef: { name: `../../${teamB}/deployments/web` },
    }),
    refused: invalidName('spec.scaleTargetRef.name'),
  },
  {
    title: "a TaskQueue in another namespace, next to that namespace's Secret",
    user: alice,
    manifest: taskQueue('in-team-b', { broker: redisFrom('cloud-credentials', 'token'), worker }, teamB),
    refused: new RegExp(
      `User "${alice}" cannot create resource "taskqueues" in API group "taskfleet.dev" in the namespace "${teamB}"`,
    ),
  },
  {
    title: 'a Secret of its own namespace that its author may not read',
    user: bob,
    manifest: taskQueue('bob-db', { broker: redisFrom('db', 'password'), scaleTargetRef: { name: 'bob-target' } }),
    refused: mayNotGet('db', 'spec.broker.redis.urlFrom'),
  },
  {
    title: 'a readable broker Secret and a result backend Secret its author may not read',
    user: bob,
    manifest: taskQueue('bob-backend', {
      broker: redisFrom('bob-redis'),
      resultBackend: redisFrom('redis'),
      scaleTargetRef: { name: 'bob-target' },
    }),
    refused: mayNotGet('redis', 'spec.resultBackend.redis.urlFrom'),
  },
  {
    title: 'a foreign endpoint with a SASL Secret its author may not read (the operator would send it there)',
    user: bob,
    manifest: taskQueue('bob-sasl', {
      broker: kafka({ sasl: { mechanism: 'plain', secretRef: { name: 'kafka-user' } } }),
      scaleTargetRef: { name: 'bob-target' },
    }),
    refused: mayNotGet('kafka-user', 'spec.broker.kafka.sasl.secretRef'),
  },
  {
    title: 'a foreign endpoint with a client key its author may not read',
    user: bob,
    manifest: taskQueue('bob-tls', {
      broker: kafka({
        tls: {
          enabled: true,
          certFrom: { secretKeyRef: { name: 'bob-redis', key: 'url' } },
          keyFrom: { secretKeyRef: { name: 'kafka-user', key: 'password' } },
        },
      }),
      scaleTargetRef: { name: 'bob-target' },
    }),
    refused: mayNotGet('kafka-user', 'spec.broker.kafka.tls.keyFrom'),
  },
  {
    title: 'a scale target its author may not scale',
    user: bob,
    manifest: taskQueue('bob-web', { broker: redisFrom('bob-redis'), scaleTargetRef: { name: 'web' } }),
    refused: new RegExp(
      `you may not patch deployments/scale of Deployment web in ${teamA} \\(spec.scaleTargetRef\\): a TaskQueue may scale only Deployments its author may scale`,
    ),
  },
  {
    title: 'a managed worker for an author who may not create Deployments',
    user: bob,
    manifest: taskQueue('bob-worker', { broker: redisFrom('bob-redis'), worker }),
    refused: new RegExp(
      `you may not create Deployments in ${teamA} \\(spec.worker\\): the operator creates a managed worker Deployment only for an author who may create one`,
    ),
  },
];

test('hostile TaskQueues are refused by the API server, each with a message that names what is wrong', async (t) => {
  for (const { title, user, manifest, refused } of corpus) {
    await t.test(title, async () => {
      await assert.rejects(as(user, ['create', '-f', '-'], manifest), refused);
      const { name, namespace } = manifest.metadata;
      assert.equal(await inNamespace(namespace).get('taskqueue', name), undefined, 'nothing was stored');
    });
  }
  // What bob may use, he may: the refusals above are about the names, not about bob.
  await as(
    bob,
    ['create', '--dry-run=server', '-f', '-'],
    taskQueue('bob-ok', { broker: redisFrom('bob-redis'), scaleTargetRef: { name: 'bob-target' } }),
  );
});

test("a spec update is checked as a new author's; an update that leaves the spec alone is not", async () => {
  // Bob may not read Secret redis, which alice's TaskQueue names: re-pointing it (here, its queue) would make
  // the operator use alice's credentials for bob's purposes.
  await assert.rejects(
    patchSpec(bob, 'legit-target', { queue: 'elsewhere' }),
    mayNotGet('redis', 'spec.broker.redis.urlFrom'),
  );
  assert.equal((await a.get('taskqueue', 'legit-target'))?.spec.queue, queue);
  await as(bob, ['label', 'taskqueue', 'legit-target', '-n', teamA, 'team=a']);
  assert.equal((await a.get('taskqueue', 'legit-target'))?.metadata.labels.team, 'a');
});

test('the operator read no Secret and scaled no Deployment but its tenants’ own, and no Secret value left its Secret', async () => {
  // The admitted TaskQueues, reconciled: the operator ran, read and scaled.
  await eventually(
    'legit-target scaled to 2 (backlog 7, 5 per replica)',
    async () => (await a.replicas('alice-target')) === 2,
    30_000,
  ).catch(withLog);
  await eventually(
    'legit-worker Ready',
    async () => condition(await a.get('taskqueue', 'legit-worker'), 'Ready')?.status === 'True',
  ).catch(withLog);
  await eventually('legit-worker-workers, applied by the operator', () =>
    a.get('deployment', 'legit-worker-workers'),
  ).catch(withLog);
  const slip = await eventually('not-a-url refused with a condition', async () => {
    const tq = await a.get('taskqueue', 'not-a-url');
    const reachable = condition(tq, 'BrokerReachable');
    return reachable?.status === 'False' && reachable;
  }).catch(withLog);
  assert.match(slip.message, /Secret db key password \(spec\.broker\.redis\.urlFrom\) is not a redis:\/\//);

  // Nothing read: of the namespaces the corpus aimed at, the operator asked only for the Secrets of team-a
  // that its admitted TaskQueues name. (Other namespaces are other tests': this operator watches them all.)
  const requests = await auditedRequests(operator.username);
  const aimedAt = (e: AuditEvent) => [teamA, teamB, 'kube-system'].includes(e.objectRef?.namespace ?? '');
  const secretReads = requests.filter((e) => e.objectRef?.resource === 'secrets' && aimedAt(e));
  assert.ok(
    secretReads.some((e) => e.verb === 'get' && e.objectRef?.namespace === teamA && e.objectRef.name === 'redis'),
    `the audit log shows the operator's reads (it read: ${secretReads.map(describeRequest).join(', ') || 'nothing'})`,
  );
  for (const e of secretReads) {
    assert.ok(
      e.objectRef?.namespace === teamA && ['redis', 'db'].includes(e.objectRef.name ?? ''),
      `the operator read only team-a's Secrets its TaskQueues named: ${describeRequest(e)}`,
    );
  }
  // Nothing scaled: the operator's /scale patches went to the admitted TaskQueues' Deployments only.
  const scaled = requests.filter((e) => e.objectRef?.subresource === 'scale' && e.verb === 'patch' && aimedAt(e));
  assert.ok(
    scaled.some((e) => e.objectRef?.name === 'alice-target'),
    'the audit log shows the scale-up',
  );
  for (const e of scaled) {
    assert.ok(
      e.objectRef?.namespace === teamA &&
        ['alice-target', 'legit-worker-workers', 'not-a-url-workers'].includes(e.objectRef.name ?? ''),
      `scaled only what the tenants may scale: ${describeRequest(e)}`,
    );
  }
  assert.equal(await a.replicas('web'), 3, "team-a's web is untouched");
  assert.equal(await a.replicas('bob-target'), 1);
  assert.equal(await inNamespace(teamB).replicas('web'), 2, "team-b's web is untouched");
  assert.equal(foreignConnections, 0, 'nobody connected to the foreign endpoint');
  const ours = operator
    .output()
    .split('\n')
    .filter((line) => line.includes(teamA) || line.includes(teamB));
  assert.ok(ours.length > 0, 'the operator logged about the corpus');
  for (const line of ours) {
    assert.doesNotMatch(
      line,
      /forbidden|denied request/i,
      'the operator kept within its RBAC and its admission policy',
    );
  }

  // No value in any status, Event or log line.
  const everything = [
    await kubectl(['get', 'taskqueues', '-n', teamA, '-o', 'json']),
    await kubectl(['get', 'events', '-n', teamA, '-o', 'json']),
    await kubectl(['get', 'events', '-n', teamB, '-o', 'json']),
    await kubectl(['get', 'events', '-n', system, '-o', 'json']),
    operator.output(),
  ].join('\n');
  for (const [what, value] of Object.entries(values)) {
    assert.equal(everything.includes(value), false, `the ${what} Secret's value is in a status, an Event or the log`);
  }
});
