/**
 * The operator against the real control plane and a real Redis, running as its own process with a
 * ServiceAccount bound to the chart's RBAC rules: a TaskQueue gets its Deployment, a backlog makes the
 * replicas rise, an idle queue goes to zero, bad inputs become conditions and Events, deleting the
 * TaskQueue removes the Deployment but not the broker's data, and a killed leader is replaced.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { Taskfleet } from 'taskfleet';
import { eventually } from '../../support/eventually.ts';
import { condition, inNamespace, type Json, kubectl } from '../../support/kube.ts';
import { type OperatorProcess, operatorKubeconfig, startOperator } from '../../support/operator.ts';
import { useRedis } from '../../support/stack.ts';

const namespace = `op-${randomUUID().slice(0, 8)}`;
const prefix = `op-${randomUUID().slice(0, 8)}`;
let redisUrl: string;
let kubeconfig: string;
let leader: OperatorProcess;
let app: Taskfleet;

const { get, replicas, events, applyTaskQueue: applyQueue } = inNamespace(namespace);

const worker = { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } };

// Set up at the top level, not in before(): after() hooks registered by the helpers then belong to
// the file, and run when every test is done.
redisUrl = (await useRedis()).url;
kubeconfig = await operatorKubeconfig(namespace);
leader = startOperator(kubeconfig, namespace, 'operator-a', { TASKFLEET_LEASE_DURATION: '4000' });
app = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix });
after(() => app.close());

test('a TaskQueue gets a Deployment it owns; a backlog scales it up, an idle queue scales it to zero', async () => {
  const queue = `emails-${randomUUID().slice(0, 6)}`;
  await applyQueue('emails', {
    queue,
    broker: { redis: { url: redisUrl, prefix } },
    resultBackend: { redis: { url: redisUrl, prefix } },
    worker,
    scaling: {
      pollIntervalSeconds: 1,
      targetBacklogPerReplica: 100,
      idleSecondsBeforeZero: 2,
      scaleDown: { stabilizationSeconds: 1 },
    },
  });
  const deployment = await eventually('the worker Deployment', () => get('deployment', 'emails-workers'), 60_000);
  assert.equal(deployment.metadata.ownerReferences?.[0]?.kind, 'TaskQueue');
  assert.equal(deployment.metadata.ownerReferences?.[0]?.name, 'emails');
  const env = Object.fromEntries(
    (deployment.spec.template.spec.containers[0].env as Json[]).map((e) => [e.name, e.value]),
  );
  assert.equal(env.TASKFLEET_QUEUE, queue);
  assert.equal(env.TASKFLEET_BROKER, redisUrl);

  const noop = app.task('noop', () => null);
  await noop.applyBulk(
    Array.from({ length: 450 }, () => []),
    { queue },
  );
  await eventually(
    '5 replicas for a backlog of 450 at 100 per replica',
    async () => (await replicas('emails-workers')) === 5,
    30_000,
  );

  const tq = await eventually('the status to show the backlog', async () => {
    const tq = await get('taskqueue', 'emails');
    return tq?.status?.backlog?.ready === 450 && tq?.status?.desiredReplicas === 5 && tq;
  });
  assert.equal(condition(tq, 'Ready')?.status, 'True');
  assert.equal(condition(tq, 'Active')?.status, 'True');
  assert.equal(condition(tq, 'BrokerReachable')?.status, 'True');
  assert.match(tq.status.lastScaleReason, /^scaled 1 → 5: /);
  assert.ok(
    (await events('emails')).some((e) => /^Scaled: scaled 1 → 5: .*450/.test(e)),
    (await events('emails')).join('\n'),
  );
  const row = (await kubectl(['get', 'taskqueue', 'emails', '-n', namespace, '--no-headers'])).trim().split(/\s+/);
  assert.deepEqual(row.slice(0, 5), ['emails', 'redis', '450', '0', '5']);

  await app.broker.purge(queue);
  await eventually('zero replicas once idle', async () => (await replicas('emails-workers')) === 0, 30_000);
  const idle = await get('taskqueue', 'emails');
  assert.equal(condition(idle, 'Active')?.status, 'False');
  await eventually('a Scaled event for the way down', async () =>
    (await events('emails')).some((e) => /^Scaled: scaled \d+ → 0: /.test(e)),
  );
});

test('a missing Secret becomes a condition and an Event; the operator keeps the replicas and keeps running', async () => {
  await applyQueue('secretless', {
    broker: { redis: { urlFrom: { secretKeyRef: { name: 'no-such-secret', key: 'url' } } } },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  const tq = await eventually('BrokerReachable=False', async () => {
    const tq = await get('taskqueue', 'secretless');
    return condition(tq, 'BrokerReachable')?.status === 'False' && tq;
  });
  assert.equal(condition(tq, 'BrokerReachable')?.reason, 'SecretNotFound');
  assert.match(condition(tq, 'BrokerReachable')?.message, /Secret no-such-secret .* does not exist/);
  assert.ok((await events('secretless')).some((e) => e.startsWith('SecretNotFound: ')));
  assert.equal(await replicas('secretless-workers'), 1, 'the replicas it had');
  assert.equal(leader.child.exitCode, null, `the operator exited:\n${leader.output()}`);
});

test('fallback replicas while the broker is unreachable — from zero too', async () => {
  const spec = {
    queue: `idle-${randomUUID().slice(0, 6)}`,
    broker: { redis: { url: redisUrl, prefix } },
    worker,
    scaling: {
      pollIntervalSeconds: 1,
      idleSecondsBeforeZero: 1,
      scaleDown: { stabilizationSeconds: 0 },
      fallback: { replicas: 3, afterFailures: 2 },
    },
  };
  await applyQueue('unreachable', spec);
  await eventually('an idle queue at zero', async () => (await replicas('unreachable-workers')) === 0, 30_000);
  // Now the broker goes away: KEDA would stay at zero; the fallback brings workers up.
  await applyQueue('unreachable', { ...spec, broker: { redis: { url: 'redis://127.0.0.1:1', prefix } } });
  await eventually('3 fallback replicas', async () => (await replicas('unreachable-workers')) === 3, 30_000).catch(
    (error) => {
      throw new Error(`${error.message}\noperator output:\n${leader.output().slice(-3000)}`);
    },
  );
  const tq = await get('taskqueue', 'unreachable');
  assert.equal(condition(tq, 'Fallback')?.status, 'True');
  assert.equal(condition(tq, 'Ready')?.status, 'False');
  assert.equal(condition(tq, 'BrokerReachable')?.status, 'False');
});

test('deleting a TaskQueue deletes its Deployment and leaves the broker data alone', async () => {
  const queue = `keep-${randomUUID().slice(0, 6)}`;
  await applyQueue('doomed', {
    queue,
    broker: { redis: { url: redisUrl, prefix } },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  await eventually('its Deployment', () => get('deployment', 'doomed-workers'), 30_000);
  const noop = app.tasks.get('noop') ?? app.task('noop', () => null);
  await app.send(noop, [], { queue });
  await kubectl(['delete', 'taskqueue', 'doomed', '-n', namespace]);
  await eventually(
    'the garbage collector to delete the Deployment',
    async () => (await get('deployment', 'doomed-workers')) === undefined,
    60_000,
  );
  const redis = new Redis(redisUrl);
  try {
    assert.equal(await redis.xlen(`{${prefix}:${queue}}:lane:1`), 1, 'the queued call is still in the broker');
  } finally {
    redis.disconnect();
  }
});

test('two operators: one acts; kill -9 the leader and the other takes over after one lease duration', async () => {
  const follower = startOperator(kubeconfig, namespace, 'operator-b', { TASKFLEET_LEASE_DURATION: '4000' });
  const lease = async () =>
    (JSON.parse(await kubectl(['get', 'lease', 'taskfleet-operator', '-n', namespace, '-o', 'json'])) as Json).spec;
  const before = await lease();
  assert.equal(before.holderIdentity, 'operator-a');
  leader.child.kill('SIGKILL');
  const after = await eventually(
    'operator-b to hold the lease',
    async () => {
      const spec = await lease();
      return spec.holderIdentity === 'operator-b' && spec;
    },
    30_000,
  );
  // Judged on the Lease's own timestamps, not on this test's polling. The follower takes over once it has
  // seen no renewal for a whole lease duration by its own clock (never sooner: clocks need not agree).
  // It notices a renewal up to one retry period (a quarter of the lease, 1 s here) after it happens, and
  // notices the expiry up to one retry later; the leader may also have renewed once between our read
  // and the kill. So: lease ≤ gap ≤ lease + 3 retries (+ request latency).
  const gapMs = Date.parse(after.acquireTime) - Date.parse(before.renewTime);
  console.log(
    `failover: operator-b acquired the lease ${gapMs} ms after operator-a's last renewal we saw (lease 4000 ms, retry 1000 ms)`,
  );
  assert.ok(gapMs >= 4000, `taken over before the lease expired: ${gapMs} ms`);
  assert.ok(gapMs <= 4000 + 3 * 1000 + 500, `taken over too late: ${gapMs} ms`);
  assert.equal(after.leaseTransitions, (before.leaseTransitions ?? 0) + 1);
  await applyQueue('after-failover', {
    broker: { redis: { url: redisUrl, prefix } },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  await eventually('the new leader to reconcile', () => get('deployment', 'after-failover-workers'), 30_000);
  assert.equal(follower.child.exitCode, null);
});
