/**
 * Sparing busy pods on a scale-down, from fresh in-flight counts: Control.report makes every worker of a
 * queue write its heartbeat at once, and the operator ranks the pods with pod-deletion-cost from those
 * heartbeats, not from the last periodic ones (which lag by up to an interval). Real workers, a real
 * Redis, the real API server and controller manager; the pods do not run (no kubelet), so the workers
 * run in this process under the pods' names, as they would in them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { Taskfleet, Worker } from 'taskfleet';
import { silentLogger } from '../../../worker/src/observe/logger.ts';
import { eventually } from '../../support/eventually.ts';
import { condition, type Json, kubectl } from '../../support/kube.ts';
import { operatorKubeconfig, startOperator } from '../../support/operator.ts';
import { useRedis } from '../../support/stack.ts';

const namespace = `busy-${randomUUID().slice(0, 8)}`;
const prefix = `busy-${randomUUID().slice(0, 8)}`;
const redisUrl = (await useRedis()).url;
const HOUR = 3_600_000;

/** An app on the queue whose `hold` task runs until released; its workers are stopped when the file ends. */
function holdingApp(queue: string) {
  const app = new Taskfleet({ broker: redisUrl, backend: redisUrl, prefix, defaultQueue: queue });
  const release = Promise.withResolvers<void>();
  after(async () => {
    release.resolve();
    await app.close();
  });
  const hold = app.task('hold', async () => {
    await release.promise;
    return null;
  });
  // Heartbeats at start only (the interval is an hour): any later one was asked for.
  const worker = async (hostname: string) => {
    const w = new Worker(app, { hostname, concurrency: 1, prefetch: 0, logger: silentLogger, heartbeatInterval: HOUR });
    await w.start();
    after(() => w.stop({ graceMs: 100 }));
    return w;
  };
  return { app, hold, worker, release: () => release.resolve() };
}

test('Control.report: every worker of the queue writes its heartbeat at once and says so; others are left alone', async () => {
  const queue = `report-${randomUUID().slice(0, 6)}`;
  const { app, hold, worker } = holdingApp(queue);
  const other = holdingApp(`other-${randomUUID().slice(0, 6)}`);
  const [a, b] = [await worker('pod-a'), await worker('pod-b')];
  const elsewhere = await other.worker('pod-c');
  await app.send(hold, [], {});
  await eventually('a worker running the call', () => a.active + b.active === 1);
  const before = await app.control.workers();
  assert.ok(
    before.every((w) => w.active.length === 0),
    'the periodic heartbeats, written at start, show no call',
  );
  // A worker that died without leaving: its heartbeat has not expired, and it will never answer.
  const ghost = { ...(before.find((w) => w.id === a.id) as Json), id: `ghost-${randomUUID()}`, hostname: 'pod-gone' };
  await app.control.beat(ghost as never, HOUR);

  const { workers, answered } = await app.control.report(queue, { timeoutMs: 2000 });
  assert.deepEqual([...answered].sort(), [a.id, b.id].sort(), 'both workers of the queue answered, the ghost not');
  assert.deepEqual(workers.map((w) => w.hostname).sort(), ['pod-a', 'pod-b', 'pod-gone'], 'only the queue’s');
  const busy = workers.find((w) => w.active.length === 1);
  assert.equal(busy?.id, a.active === 1 ? a.id : b.id, 'the fresh heartbeat shows the call running now');
  assert.ok(busy?.report, 'it names the request it answered');
  const untouched = (await other.app.control.workers()).find((w) => w.id === elsewhere.id);
  assert.equal(untouched?.report, undefined, 'a worker of another queue was not asked');
  await app.control.leave(ghost.id);
});

test('scale-down spares the pods busy now, not those busy at their last heartbeat', async () => {
  const kubeconfig = await operatorKubeconfig(namespace);
  startOperator(kubeconfig, namespace, 'operator');
  const queue = `ranked-${randomUUID().slice(0, 6)}`;
  const spec = (paused: boolean) => ({
    queue,
    broker: { redis: { url: redisUrl, prefix } },
    resultBackend: { redis: { url: redisUrl, prefix } },
    worker: {
      concurrency: 1,
      template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } },
    },
    scaling: {
      pollIntervalSeconds: 1,
      targetBacklogPerReplica: 100,
      scaleDown: { stabilizationSeconds: 0 },
      paused,
    },
  });
  const apply = (paused: boolean) =>
    kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'taskfleet.dev/v1alpha1',
        kind: 'TaskQueue',
        metadata: { name: 'ranked', namespace },
        spec: spec(paused),
      }),
    });
  const { app, hold, worker } = holdingApp(queue);
  const pods = async () =>
    (
      JSON.parse(await kubectl(['get', 'pods', '-n', namespace, '-l', 'taskfleet.dev/queue=ranked', '-o', 'json']))
        .items as Json[]
    ).filter((p) => !p.metadata.deletionTimestamp);
  const replicas = async () =>
    JSON.parse(await kubectl(['get', 'deployment', 'ranked-workers', '-n', namespace, '-o', 'json'])).spec.replicas;

  await apply(false);
  await app.sendBulk(
    hold,
    Array.from({ length: 400 }, () => []),
    {},
  );
  await eventually('4 replicas', async () => (await replicas().catch(() => 0)) === 4, 30_000);
  const names = await eventually('4 pods', async () => {
    const list = await pods();
    return list.length === 4 && list.map((p) => p.metadata.name as string);
  });
  // Held at 4 while the scene is set: the scale-down comes when the spec says so.
  await apply(true);
  await eventually('the Paused condition', async () => {
    const tq = JSON.parse(await kubectl(['get', 'taskqueue', 'ranked', '-n', namespace, '-o', 'json']));
    return condition(tq, 'Paused')?.status === 'True';
  });
  await app.broker.purge(queue);

  // Three pods run a worker (the fourth has none yet); two of them take the two calls.
  const workers: Worker[] = [];
  for (const name of names.slice(0, 3)) workers.push(await worker(name));
  await app.sendBulk(hold, [[], []], {});
  await eventually('two workers busy', () => workers.filter((w) => w.active === 1).length === 2);
  const idle = workers.find((w) => w.active === 0) as Worker;
  const busyPods = names.filter((_, i) => workers[i]?.active === 1);
  // What a lagging heartbeat says: the idle worker was running a call when it last wrote one (it has
  // finished since), and the busy ones were idle when they last wrote theirs (at start).
  const last = (await app.control.workers()).find((w) => w.id === idle.id);
  assert.ok(last, 'the idle worker’s heartbeat');
  await app.control.beat(
    { ...last, active: [{ id: randomUUID(), task: 'hold', startedAt: Date.now() - 5000, attempt: 1 }] },
    HOUR,
  );

  // Two calls in flight: the operator scales 4 → 1 and must keep a pod whose worker runs a call now.
  await apply(false);
  await eventually('1 replica', async () => (await replicas()) === 1, 30_000);
  const remaining = await eventually(
    'the ReplicaSet to delete 3 pods',
    async () => {
      const list = await pods();
      return list.length === 1 && list;
    },
    30_000,
  );
  const kept = remaining[0]?.metadata.name;
  assert.ok(busyPods.includes(kept), `kept ${kept}; busy now were ${busyPods.join(', ')}`);
  assert.equal(remaining[0]?.metadata.annotations?.['controller.kubernetes.io/pod-deletion-cost'], '1');
});
