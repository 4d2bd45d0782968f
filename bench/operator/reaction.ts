/**
 * Reaction time: how long from a burst of work landing in the broker to the worker Deployment's
 * spec.replicas changing, as a Kubernetes watch on the Deployment reports it. One TaskQueue polled every
 * second, at zero replicas and an empty queue before each spike.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Taskfleet } from 'taskfleet';
import { type Cluster, createNamespace, type OperatorProcess, watchForever } from './cluster.ts';
import { memory, quantile, scrape, total } from './measure.ts';

export interface ReactionOptions {
  spikes: number;
  /** Calls per spike. */
  spikeSize: number;
  pollIntervalSeconds: number;
}

export interface ReactionResult {
  spikes: number;
  spikeSize: number;
  pollIntervalSeconds: number;
  /** Enqueue returned → spec.replicas changed, ms, one per spike. */
  latenciesMs: number[];
  /** Spikes whose scale-up was seen before applyBulk returned (counted as 0 ms). */
  early: number;
  /** The first replica count of each spike (0 → n). */
  firstReplicas: number[];
  /** How long applyBulk of one spike took, ms (median). */
  enqueueMs: number;
  /** One reconcile of this queue, ms (mean over the run, from the operator's histogram). */
  reconcileMs: number;
  /** One broker probe, ms (mean). */
  probeMs: number;
  /** Kubernetes API requests per reconcile (from taskfleet_operator_api_requests_total). */
  requestsPerReconcile: number;
  /** The same, by verb and resource. */
  requestsByKind: Record<string, number>;
  reconciles: number;
  /** RSS of the operator with this one TaskQueue: its floor. */
  rss: number;
}

interface DeploymentLike {
  metadata: { name: string; resourceVersion?: string };
  spec?: { replicas?: number };
}

export async function measureReaction(
  cluster: Cluster,
  operator: OperatorProcess,
  options: ReactionOptions,
  log: (line: string) => void,
): Promise<ReactionResult> {
  const namespace = 'bench-reaction';
  const prefix = 'bench';
  const queue = `spike-${randomUUID().slice(0, 8)}`;
  await createNamespace(cluster, namespace);

  // Every change of spec.replicas, stamped when the watch delivers it.
  const changes: { at: number; replicas: number }[] = [];
  let replicas: number | undefined;
  let wake: (() => void) | undefined;
  const watch = watchForever<DeploymentLike>(
    cluster.adminConfig,
    `/apis/apps/v1/namespaces/${namespace}/deployments`,
    { fieldSelector: 'metadata.name=spike-workers' },
    (type, deployment) => {
      const at = performance.now();
      const next = type === 'DELETED' ? undefined : (deployment.spec?.replicas ?? 0);
      if (next === replicas) return;
      replicas = next;
      if (next !== undefined) changes.push({ at, replicas: next });
      wake?.();
    },
  );
  const until = async (what: string, check: () => boolean, timeoutMs = 60_000) => {
    const deadline = performance.now() + timeoutMs;
    while (!check()) {
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`reaction: timed out waiting for ${what} (see ${operator.logFile})`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  };

  const app = new Taskfleet({ broker: cluster.redis.url, prefix });
  const noop = app.task('noop', () => null);
  const args = Array.from({ length: options.spikeSize }, () => [] as []);
  try {
    await cluster.admin.post(`/apis/taskfleet.dev/v1alpha1/namespaces/${namespace}/taskqueues`, {
      apiVersion: 'taskfleet.dev/v1alpha1',
      kind: 'TaskQueue',
      metadata: { name: 'spike', namespace },
      spec: {
        queue,
        broker: { redis: { url: cluster.redis.url, prefix } },
        worker: { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } },
        scaling: {
          minReplicas: 0,
          maxReplicas: 20,
          pollIntervalSeconds: options.pollIntervalSeconds,
          targetBacklogPerReplica: 100,
          idleSecondsBeforeZero: 1,
          scaleDown: { stabilizationSeconds: 0 },
        },
      },
    });
    // A new Deployment starts at 1 replica; the idle queue then goes to 0.
    await until('the worker Deployment at 0 replicas', () => replicas === 0);
    const before = (await scrape(operator.metricsUrl)).samples;

    const latenciesMs: number[] = [];
    const firstReplicas: number[] = [];
    const enqueueMs: number[] = [];
    let early = 0;
    for (let i = 0; i < options.spikes; i++) {
      await until('0 replicas between spikes', () => replicas === 0);
      // A random phase against the operator's poll timer, or every spike would land just after a poll.
      await sleep(Math.random() * options.pollIntervalSeconds * 1000);
      const seen = changes.length;
      const started = performance.now();
      await noop.applyBulk(args, { queue });
      const enqueued = performance.now();
      enqueueMs.push(enqueued - started);
      await until('the scale-up', () => changes.slice(seen).some((c) => c.replicas > 0));
      const change = changes.slice(seen).find((c) => c.replicas > 0)!;
      if (change.at < enqueued) early++;
      latenciesMs.push(Math.max(0, change.at - enqueued));
      firstReplicas.push(change.replicas);
      await app.broker.purge(queue);
      if ((i + 1) % 10 === 0 || i + 1 === options.spikes) {
        log(`reaction: ${i + 1}/${options.spikes} spikes, p50 so far ${quantile(latenciesMs, 0.5).toFixed(0)} ms`);
      }
    }
    await until('0 replicas after the last spike', () => replicas === 0);
    const after = (await scrape(operator.metricsUrl)).samples;
    const delta = (name: string, where: Record<string, string> = {}) =>
      total(after, name, where) - total(before, name, where);
    const reconciles = delta('taskfleet_reconcile_duration_seconds_count');
    const requestsByKind: Record<string, number> = {};
    for (const s of after.get('taskfleet_operator_api_requests_total') ?? []) {
      const kind = `${s.labels.verb} ${s.labels.resource}`;
      const previous = total(before, 'taskfleet_operator_api_requests_total', s.labels);
      if (s.value - previous > 0) requestsByKind[kind] = (s.value - previous) / reconciles;
    }
    // The Lease is renewed on its own timer, not per reconcile.
    const leaseRequests = delta('taskfleet_operator_api_requests_total', { resource: 'leases' });
    return {
      spikes: options.spikes,
      spikeSize: options.spikeSize,
      pollIntervalSeconds: options.pollIntervalSeconds,
      latenciesMs,
      early,
      firstReplicas,
      enqueueMs: quantile(enqueueMs, 0.5),
      reconcileMs: (delta('taskfleet_reconcile_duration_seconds_sum') / reconciles) * 1000,
      probeMs: (delta('taskfleet_probe_duration_seconds_sum') / delta('taskfleet_probe_duration_seconds_count')) * 1000,
      requestsPerReconcile: (delta('taskfleet_operator_api_requests_total') - leaseRequests) / reconciles,
      requestsByKind,
      reconciles,
      rss: memory(operator.pid)?.rss ?? 0,
    };
  } finally {
    watch.stop();
    await app.close();
    await cluster.admin
      .request('DELETE', `/apis/taskfleet.dev/v1alpha1/namespaces/${namespace}/taskqueues/spike`)
      .catch(() => {});
  }
}
