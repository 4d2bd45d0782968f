/**
 * Capacity: one operator, thousands of TaskQueues against the real API server. How long until every
 * TaskQueue has been evaluated once after a start; how stale any queue's last evaluation gets in the
 * steady state; how many API requests per second that costs; the operator's memory and CPU.
 *
 * Two compiled operator processes run one after the other over the same TaskQueues: the first as the
 * Helm chart runs it, with the chart's `nodeOptions` (cold start: no Deployments yet), the second,
 * started when the first is stopped, with Node's defaults (warm start: everything exists), to show what
 * the flags are worth. Each gets a steady window.
 */
import { makeInformer } from '@kubernetes/client-node';
import { Taskfleet } from 'taskfleet';
import { type Cluster, createNamespace, inParallel, type OperatorProcess, startOperator } from './cluster.ts';
import { cpuSeconds, grouped, memory, parsePrometheus, quantile, type Samples, scrape, total } from './measure.ts';

export interface CapacityOptions {
  queues: number;
  namespaces: number;
  /** Every n-th queue has a backlog. */
  busyEvery: number;
  /** This many of the busy queues also get a steady trickle of new calls during the steady windows. */
  trickleQueues: number;
  /** Calls per second per trickle queue. */
  trickleRate: number;
  steadySeconds: number;
  /** The second operator's steady window. */
  warmSteadySeconds: number;
  idleSecondsBeforeZero: number;
  /** NODE_OPTIONS of the first operator: the chart's `nodeOptions` (the second runs with Node's defaults). */
  nodeOptions: string;
  /**
   * Runs before this change (bench/operator/baseline.json) had no `nodeOptions`: their first operator ran
   * with Node's defaults and their second with these flags.
   */
  memoryFlags?: string[];
}

export interface ProcessUse {
  name: string;
  /** CPU seconds per second of wall time (1 = one core busy). */
  cores: number;
}

export interface SteadyResult {
  seconds: number;
  reconcilesPerSecond: number;
  /** queues / reconciles per second: the mean time between two evaluations of one queue. */
  meanCycleSeconds: number;
  /** Age of a queue's last evaluation (now − taskfleet_queue_last_reconcile_timestamp_seconds), sampled every second. */
  ageP50: number;
  ageP99: number;
  ageMax: number;
  /** Share of (queue, sample) pairs whose age was ≤ 5 s. */
  withinGoal: number;
  samples: number;
  apiRequestsPerSecond: number;
  apiByKind: [string, number][];
  /** The API server's own count of every client's requests, per second (watches excluded). */
  apiserverRequestsPerSecond: number;
  /** The API server's count of requests on taskqueues (only the operator sends those here). */
  apiserverTaskQueueRequestsPerSecond: number;
  operatorTaskQueueRequestsPerSecond: number;
  statusWritesPerSecond: number;
  scalesPerSecond: number;
  reconcileMs: number;
  reconcileErrors: number;
  /** Reconciles run again because a write met a newer object than the cache had (409), per second. */
  conflictsPerSecond: number;
  /** Queues seen older than 5 s at least once, and how many of those have a backlog. */
  staleQueues: number;
  staleBusy: number;
  cpu: ProcessUse[];
  /** Operator RSS at the end of the window, and its peak since the process started. */
  rss: number;
  rssPeak: number;
  scrapeMs: number;
  scrapeBytes: number;
}

export interface CapacityResult {
  options: CapacityOptions;
  pollIntervalSeconds: number;
  busy: number;
  /** Creating the TaskQueues with parallel POSTs. */
  createSeconds: number;
  cold: {
    /** Operator process start → it leads (informers synced). */
    leadSeconds: number;
    /** Operator process start → half, and all, of the TaskQueues have a status. */
    halfSeconds: number;
    allSeconds: number;
    /** Until every idle queue is at 0 and every busy one scaled, pods included. */
    settledSeconds: number;
    /** The oldest evaluation seen (every 2 s) between the first statuses and the settling. */
    transitionAgeMax?: number;
    requests: number;
    /** Operator RSS when every TaskQueue had its first status. */
    rss: number;
  };
  /** The first operator (the chart's `nodeOptions`; in runs with `memoryFlags`, Node's defaults). */
  steady: SteadyResult;
  warm: {
    /** SIGTERM of the first operator → the second leads. */
    leadSeconds: number;
    /** Second operator start → every queue evaluated once (the gauge exists for all). */
    allSeconds: number;
    requests: number;
  };
  /** The second operator (Node's defaults; in runs with `memoryFlags`, those flags) in its steady window. */
  warmSteady: SteadyResult;
}

interface TaskQueueLike {
  metadata: { name: string; namespace?: string };
  status?: { observedGeneration?: number; desiredReplicas?: number; replicas?: number };
}

const POLL_SECONDS = 2; // the TaskQueue default
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function measureCapacity(
  cluster: Cluster,
  options: CapacityOptions,
  log: (line: string) => void,
): Promise<CapacityResult> {
  const prefix = 'cap';
  const namespaces = Array.from({ length: options.namespaces }, (_, i) => `bench-cap-${i}`);
  for (const ns of namespaces) await createNamespace(cluster, ns);
  const queues = Array.from({ length: options.queues }, (_, i) => {
    const busy = i % options.busyEvery === 0;
    return {
      namespace: namespaces[i % namespaces.length] as string,
      name: `q-${String(i).padStart(5, '0')}`,
      queue: `cap-${i}`,
      busy,
      // 100 … 1,000 waiting: 1 … 10 replicas at the default 100 per replica.
      backlog: busy ? ((i / options.busyEvery) % 10) * 100 + 100 : 0,
    };
  });
  const key = (q: { namespace: string; name: string }) => `${q.namespace}/${q.name}`;
  const wanted = new Set(queues.map(key));
  const busyQueues = queues.filter((q) => q.busy);
  const busyKeys = new Set(busyQueues.map(key));
  const trickle = busyQueues.slice(0, options.trickleQueues);

  const app = new Taskfleet({ broker: cluster.redis.url, prefix });
  const noop = app.task('noop', () => null);
  for (const q of busyQueues) {
    await noop.applyBulk(
      Array.from({ length: q.backlog }, () => [] as []),
      { queue: q.queue },
    );
  }

  const createStarted = performance.now();
  await inParallel(queues, 32, async (q) => {
    await cluster.admin.post(`/apis/taskfleet.dev/v1alpha1/namespaces/${q.namespace}/taskqueues`, {
      apiVersion: 'taskfleet.dev/v1alpha1',
      kind: 'TaskQueue',
      metadata: { name: q.name, namespace: q.namespace },
      spec: {
        queue: q.queue,
        broker: { redis: { url: cluster.redis.url, prefix } },
        worker: { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } },
        scaling: { idleSecondsBeforeZero: options.idleSecondsBeforeZero },
      },
    });
  });
  const createSeconds = (performance.now() - createStarted) / 1000;
  log(`capacity: ${queues.length} TaskQueues created in ${createSeconds.toFixed(1)} s (${busyQueues.length} busy)`);

  // The benchmark's own view of the TaskQueues (admin informer): when each first gets a status.
  const firstStatus = new Map<string, number>();
  const desired = new Map<string, number>();
  const replicas = new Map<string, number>();
  let t0 = 0;
  const informer = makeInformer<TaskQueueLike>(cluster.adminConfig, '/apis/taskfleet.dev/v1alpha1/taskqueues', () =>
    cluster.admin.get('/apis/taskfleet.dev/v1alpha1/taskqueues'),
  );
  const seen = (tq: TaskQueueLike) => {
    const k = `${tq.metadata.namespace}/${tq.metadata.name}`;
    if (!wanted.has(k) || !tq.status?.observedGeneration) return;
    if (!firstStatus.has(k)) firstStatus.set(k, performance.now() - t0);
    if (tq.status.desiredReplicas !== undefined) desired.set(k, tq.status.desiredReplicas);
    if (tq.status.replicas !== undefined) replicas.set(k, tq.status.replicas);
  };
  informer.on('add', seen);
  informer.on('update', seen);
  let watching = true;
  informer.on('error', (error) => {
    if (!watching) return;
    log(`capacity: the benchmark's TaskQueue watch failed (${(error as Error)?.message}); restarting it`);
    setTimeout(() => void informer.start().catch(() => {}), 1000);
  });
  await informer.start();

  const waitFor = async (what: string, check: () => boolean, timeoutMs: number) => {
    const deadline = performance.now() + timeoutMs;
    while (!check()) {
      if (performance.now() > deadline) throw new Error(`capacity: timed out waiting for ${what}`);
      await sleep(100);
    }
  };

  // A trickle of new calls on a few busy queues during the steady windows: their status changes every poll.
  let trickleTimer: NodeJS.Timeout | undefined;
  const startTrickle = () => {
    trickleTimer = setInterval(() => {
      for (const q of trickle) void noop.applyBulk([[]], { queue: q.queue }).catch(() => {});
    }, 1000 / options.trickleRate);
  };
  const stopTrickle = () => {
    clearInterval(trickleTimer);
    trickleTimer = undefined;
  };

  /** One steady window: ages from the operator's gauge every second, deltas of its counters, CPU of everyone. */
  const steadyWindow = async (operator: OperatorProcess, seconds: number): Promise<SteadyResult> => {
    const cpuPids: Record<string, number> = {
      operator: operator.pid,
      'kube-apiserver': cluster.pids['kube-apiserver'] as number,
      etcd: cluster.pids.etcd as number,
      'kube-controller-manager': cluster.pids['kube-controller-manager'] as number,
      redis: cluster.pids.redis as number,
      benchmark: process.pid,
    };
    const cpuBefore = Object.fromEntries(Object.entries(cpuPids).map(([n, p]) => [n, cpuSeconds(p) ?? 0]));
    const apiBefore = parsePrometheus(await cluster.admin.get<string>('/metrics'));
    const first = await scrape(operator.metricsUrl);
    const started = performance.now();
    const ages: number[] = [];
    const stale = new Set<string>();
    let samples = 0;
    let scrapeMs = 0;
    let scrapeBytes = 0;
    let last = first;
    while (performance.now() - started < seconds * 1000) {
      await sleep(1000);
      last = await scrape(operator.metricsUrl);
      const now = Date.now() / 1000;
      samples++;
      scrapeMs += last.ms;
      scrapeBytes = last.bytes;
      for (const s of last.samples.get('taskfleet_queue_last_reconcile_timestamp_seconds') ?? []) {
        const k = `${s.labels.namespace}/${s.labels.taskqueue}`;
        if (!wanted.has(k)) continue;
        ages.push(now - s.value);
        if (now - s.value > 5) stale.add(k);
      }
    }
    const windowSeconds = (performance.now() - started) / 1000;
    const apiAfter = parsePrometheus(await cluster.admin.get<string>('/metrics'));
    const cpu = Object.entries(cpuPids).map(([name, p]) => ({
      name,
      cores: ((cpuSeconds(p) ?? 0) - (cpuBefore[name] ?? 0)) / windowSeconds,
    }));
    const d = (name: string, where: Record<string, string> = {}) =>
      total(last.samples, name, where) - total(first.samples, name, where);
    const reconciles = d('taskfleet_reconcile_duration_seconds_count');
    const byKindAfter = grouped(last.samples, 'taskfleet_operator_api_requests_total', ['verb', 'resource']);
    const byKindBefore = grouped(first.samples, 'taskfleet_operator_api_requests_total', ['verb', 'resource']);
    const apiByKind = [...byKindAfter]
      .map(([k, v]) => [k, (v - (byKindBefore.get(k) ?? 0)) / windowSeconds] as [string, number])
      .filter(([, v]) => v > 0)
      .sort((a, b) => b[1] - a[1]);
    const apiserverCount = (s: Samples, where: Record<string, string>) =>
      (s.get('apiserver_request_total') ?? [])
        .filter((x) => x.labels.verb !== 'WATCH' && Object.entries(where).every(([k, v]) => x.labels[k] === v))
        .reduce((sum, x) => sum + x.value, 0);
    const mem = memory(operator.pid);
    const result: SteadyResult = {
      seconds: windowSeconds,
      reconcilesPerSecond: reconciles / windowSeconds,
      meanCycleSeconds: queues.length / (reconciles / windowSeconds),
      ageP50: quantile(ages, 0.5),
      ageP99: quantile(ages, 0.99),
      ageMax: Math.max(...ages),
      withinGoal: ages.filter((a) => a <= 5).length / ages.length,
      samples,
      apiRequestsPerSecond: d('taskfleet_operator_api_requests_total') / windowSeconds,
      apiByKind,
      apiserverRequestsPerSecond: (apiserverCount(apiAfter, {}) - apiserverCount(apiBefore, {})) / windowSeconds,
      apiserverTaskQueueRequestsPerSecond:
        (apiserverCount(apiAfter, { resource: 'taskqueues' }) - apiserverCount(apiBefore, { resource: 'taskqueues' })) /
        windowSeconds,
      operatorTaskQueueRequestsPerSecond:
        (d('taskfleet_operator_api_requests_total', { resource: 'taskqueues' }) +
          d('taskfleet_operator_api_requests_total', { resource: 'taskqueues/status' })) /
        windowSeconds,
      statusWritesPerSecond:
        d('taskfleet_operator_api_requests_total', { resource: 'taskqueues/status' }) / windowSeconds,
      scalesPerSecond: d('taskfleet_scale_events_total') / windowSeconds,
      reconcileMs: (d('taskfleet_reconcile_duration_seconds_sum') / reconciles) * 1000,
      reconcileErrors: d('taskfleet_reconcile_errors_total'),
      conflictsPerSecond: d('taskfleet_reconcile_conflicts_total') / windowSeconds,
      staleQueues: stale.size,
      staleBusy: [...stale].filter((k) => busyKeys.has(k)).length,
      cpu,
      rss: mem?.rss ?? 0,
      rssPeak: mem?.peak ?? 0,
      scrapeMs: scrapeMs / Math.max(1, samples),
      scrapeBytes,
    };
    log(
      `capacity: steady (${operator.nodeOptions || 'Node defaults'}): ${result.reconcilesPerSecond.toFixed(0)} reconciles/s, age p99 ${result.ageP99.toFixed(1)} s, max ${result.ageMax.toFixed(1)} s (${result.staleQueues} queues > 5 s, ${result.staleBusy} busy), ${result.conflictsPerSecond.toFixed(1)} conflicts/s, ${result.apiRequestsPerSecond.toFixed(1)} API requests/s, RSS ${(result.rss / 2 ** 20).toFixed(0)} MiB (peak ${(result.rssPeak / 2 ** 20).toFixed(0)} MiB)`,
    );
    return result;
  };

  let operator: OperatorProcess | undefined;
  try {
    // Cold start, as `helm install` starts it: the TaskQueues exist, their Deployments do not.
    t0 = performance.now();
    operator = await startOperator(cluster, 'bench-a', options.nodeOptions);
    const leadSeconds = (performance.now() - t0) / 1000;
    log(`capacity: operator leads after ${leadSeconds.toFixed(1)} s`);
    let reported = 0;
    await waitFor(
      `a status on all ${queues.length} TaskQueues`,
      () => {
        if (firstStatus.size - reported >= queues.length / 4) {
          reported = firstStatus.size;
          log(`capacity: ${firstStatus.size}/${queues.length} TaskQueues have a status`);
        }
        return firstStatus.size === queues.length;
      },
      900_000,
    );
    const times = [...firstStatus.values()];
    const allSeconds = Math.max(...times) / 1000;
    const halfSeconds = quantile(times, 0.5) / 1000;
    const coldRss = memory(operator.pid)?.rss ?? 0;
    log(`capacity: every TaskQueue has a status ${allSeconds.toFixed(1)} s after the operator started`);
    const coldRequests = total((await scrape(operator.metricsUrl)).samples, 'taskfleet_operator_api_requests_total');
    // Settled: idle queues at 0, busy ones scaled, and the controller manager done with the pods (the
    // Deployments' status.replicas, which the operator copies into the TaskQueue status, caught up).
    const settled = () =>
      queues.every((q) => {
        const d = desired.get(key(q));
        return (q.busy ? d !== undefined && d > 0 : d === 0) && replicas.get(key(q)) === d;
      });
    // Meanwhile (the mass scale-down to zero, the controller manager deleting pods), how stale do queues get?
    let transitionAgeMax = 0;
    const settleDeadline = performance.now() + (options.idleSecondsBeforeZero + 900) * 1000;
    while (!settled()) {
      if (performance.now() > settleDeadline) throw new Error('capacity: timed out waiting for the fleet to settle');
      const { samples: s } = await scrape(operator.metricsUrl);
      const now = Date.now() / 1000;
      for (const x of s.get('taskfleet_queue_last_reconcile_timestamp_seconds') ?? []) {
        if (wanted.has(`${x.labels.namespace}/${x.labels.taskqueue}`)) {
          transitionAgeMax = Math.max(transitionAgeMax, now - x.value);
        }
      }
      await sleep(2000);
    }
    const settledSeconds = (performance.now() - t0) / 1000;
    log(
      `capacity: settled ${settledSeconds.toFixed(1)} s after the start; oldest evaluation meanwhile ${transitionAgeMax.toFixed(1)} s`,
    );

    startTrickle();
    await sleep(2000);
    const steady = await steadyWindow(operator, options.steadySeconds);

    // Warm restart: a new leader over TaskQueues and Deployments that all exist, with Node's defaults.
    const stopping = performance.now();
    await operator.stop();
    const t1 = performance.now();
    operator = await startOperator(cluster, 'bench-b');
    const warmLead = (performance.now() - stopping) / 1000;
    let warmAll = 0;
    let warmRequests = 0;
    for (;;) {
      const { samples: s } = await scrape(operator.metricsUrl);
      const stamps = (s.get('taskfleet_queue_last_reconcile_timestamp_seconds') ?? []).filter((x) =>
        wanted.has(`${x.labels.namespace}/${x.labels.taskqueue}`),
      );
      if (stamps.length === queues.length) {
        warmAll = (performance.now() - t1) / 1000;
        warmRequests = total(s, 'taskfleet_operator_api_requests_total');
        break;
      }
      if (performance.now() - t1 > 900_000) throw new Error('capacity: the restarted operator never evaluated all');
      await sleep(250);
    }
    log(`capacity: warm restart: every queue evaluated ${warmAll.toFixed(1)} s after the new operator started`);
    await sleep(5000); // past the restart's own burst (rates are unknown for one poll, so statuses change)
    const warmSteady = await steadyWindow(operator, options.warmSteadySeconds);
    stopTrickle();
    return {
      options,
      pollIntervalSeconds: POLL_SECONDS,
      busy: busyQueues.length,
      createSeconds,
      cold: {
        leadSeconds,
        halfSeconds,
        allSeconds,
        settledSeconds,
        transitionAgeMax,
        requests: coldRequests,
        rss: coldRss,
      },
      steady,
      warm: { leadSeconds: warmLead, allSeconds: warmAll, requests: warmRequests },
      warmSteady,
    };
  } finally {
    stopTrickle();
    await operator?.stop();
    watching = false;
    await informer.stop();
    await app.close();
  }
}
