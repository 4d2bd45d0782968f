/**
 * One end-to-end fleet: a namespace with the chart-installed operator, a TaskQueue whose workers run as
 * real processes on the pod runner, a producer app, and a timeline of what the operator and the
 * Deployment said every half second. Call startFleet at a test's top level or inside it; everything it
 * starts is stopped and removed when the test file ends.
 */

import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { KubeConfig, makeInformer, type V1Deployment, type V1DeploymentList } from '@kubernetes/client-node';
import { type Task, Taskfleet } from 'taskfleet';
import { KubeClient } from '../../../operator/src/runtime/kube-client.ts';
import { type PodEvent, PodRunner } from '../../stack/pod-runner.ts';
import {
  type FleetSample,
  installChart,
  type Json,
  sampleFleet,
  taskQueueManifest,
  taskQueuePath,
  uninstallChart,
} from '../../stack/taskqueue.ts';
import { eventually } from '../../support/eventually.ts';
import { kubectl } from '../../support/kube.ts';
import { useHelm, useKafka, useKube, useRedis } from '../../support/stack.ts';

const fixtures = new URL('../fixtures/', import.meta.url).pathname;

export interface FleetOptions {
  broker: 'redis' | 'kafka';
  /** spec.scaling; fast defaults for tests are filled in. */
  scaling?: Json;
  /** Calls each worker runs at once. @defaultValue 8 */
  concurrency?: number;
  /** Kafka: partitions of the queue's topics. @defaultValue 8 */
  partitions?: number;
  /** A Redis URL of the fleet's own (one a test restarts); the stack's by default. */
  redisUrl?: string;
  /** Operator replicas. @defaultValue 2 */
  operators?: number;
  /** spec.worker.terminationGracePeriodSeconds. @defaultValue 20 */
  grace?: number;
  /** More environment for the worker container (TASKFLEET_VISIBILITY_TIMEOUT, …). */
  workerEnv?: Record<string, string>;
}

export interface Sample extends FleetSample {
  /** ms since the fleet started. */
  t: number;
  /** Ready and delayed together. */
  waiting: number;
  /** Worker pods the pod runner runs. */
  pods: number;
}

export interface Fleet {
  namespace: string;
  queue: string;
  prefix: string;
  app: Taskfleet;
  work: Task<[number], null>;
  runner: PodRunner;
  events: PodEvent[];
  timeline: Sample[];
  startedAt: number;
  /** The TaskQueue as the API server has it. */
  taskQueue(): Promise<Json>;
  /** Waits until a sample satisfies `predicate`; returns that sample. */
  until(what: string, predicate: (s: Sample) => boolean, timeoutMs?: number): Promise<Sample>;
  /** How many times each task id ran. */
  runs(): Promise<Map<string, number>>;
  /**
   * Worker pods deleted while running calls (by the pod runner's reading of their /metrics), and of
   * those, the avoidable ones: busy from before the operator read the in-flight counts until told to
   * stop, while another worker that stays sat idle all that time — a choice the scale-down got wrong. (A
   * worker that went idle, or busy, after the counts were read — in the moment between the decision and
   * the pod being told to stop — is not one it could have made.) `detail` describes each avoidable one.
   */
  busyDeletions(): Promise<{ busy: number; avoidable: number; detail: string[] }>;
}

export async function startFleet(name: string, options: FleetOptions): Promise<Fleet> {
  const namespace = `e2e-${name}-${randomUUID().slice(0, 6)}`;
  const prefix = `e2e-${randomUUID().slice(0, 8)}`;
  const queue = name;
  const redisUrl = options.redisUrl ?? (await useRedis()).url;
  const kube = await useKube();
  const helm = await useHelm();
  const startedAt = Date.now();

  await kubectl(['create', 'namespace', namespace]);
  after(() => kubectl(['delete', 'namespace', namespace, '--wait=false']).catch(() => {}));

  const events: PodEvent[] = [];
  const deletions = { busy: 0, avoidable: 0, detail: [] as string[] };
  const isWorker = (pod: string) => !pod.includes('operator');
  /** When the workers' Deployment was scaled down (its spec.replicas fell), by a watch on it. */
  const scaleDowns: number[] = [];
  let control: Taskfleet['control'] | undefined;
  const judged: Promise<void>[] = [];
  /**
   * When the operator read the in-flight counts it ranked the pods by: the last time a worker of the
   * queue answered its report request (heartbeats say so), else when the Deployment was scaled down,
   * else now. Later is stricter: more pods count as idle since then.
   */
  const decidedAt = async (now: number) => {
    const answered = ((await control?.workers().catch(() => [])) ?? [])
      .filter((w) => w.queue === queue && w.reportAt !== undefined && w.reportAt <= now)
      .map((w) => w.reportAt as number);
    return answered.length > 0 ? Math.max(...answered) : (scaleDowns.findLast((t) => t <= now) ?? now);
  };
  const onEvent = (e: PodEvent) => {
    events.push(e);
    if (e.kind !== 'terminating' || !isWorker(e.pod) || e.inFlight === 0) return;
    deletions.busy++;
    // Busy from before the decision until now, while a worker that stays sat idle all that time? Then
    // this one need not have gone.
    const now = Date.now();
    judged.push(
      decidedAt(now).then((decided) => {
        if (e.busySince === undefined || e.busySince > decided) return;
        const idle = e.others.filter(
          (o) => isWorker(o.pod) && o.inFlight === 0 && o.idleSince !== undefined && o.idleSince <= decided,
        );
        if (idle.length === 0) return;
        deletions.avoidable++;
        const ago = (t: number) => `${now - t} ms ago`;
        deletions.detail.push(
          `${e.pod} (${e.inFlight} in flight, busy since ${ago(e.busySince)}, cost ${e.deletionCost}) stopped while ${idle.map((o) => `${o.pod} (idle since ${ago(o.idleSince as number)}, cost ${o.deletionCost})`).join(', ')} stayed; counts read ${ago(decided)}`,
        );
      }),
    );
  };
  const runner = new PodRunner({
    kubeconfig: kube.kubeconfig,
    namespaces: [namespace],
    dir: await mkdtemp(join(tmpdir(), `e2e-${name}-`)),
    paths: { '/app': fixtures },
    onEvent,
    inFlightSampleMs: 100,
  });
  await runner.start();
  after(() => runner.stop());

  // The operator, as users install it; its pods run on the pod runner under the chart's ServiceAccount.
  const helmTarget = { bin: helm.bin, env: helm.env, kubeconfig: kube.kubeconfig };
  const release = {
    release: namespace,
    namespace,
    values: { replicaCount: options.operators ?? 2, 'leaderElection.leaseDurationSeconds': 4 },
  };
  await installChart(helmTarget, release);
  after(() => uninstallChart(helmTarget, release).catch(() => {}));

  const broker: Json =
    options.broker === 'redis'
      ? { redis: { url: redisUrl, prefix } }
      : { kafka: { brokers: (await useKafka()).brokers, prefix, partitions: options.partitions ?? 8 } };
  const manifest = taskQueueManifest({
    name,
    namespace,
    queue,
    broker,
    resultBackend: { redis: { url: redisUrl, prefix } },
    image: 'ghcr.io/taskfleet/worker:dev',
    app: '/app/e2e.tasks.ts',
    concurrency: options.concurrency ?? 8,
    terminationGracePeriodSeconds: options.grace ?? 20,
    ...(options.workerEnv ? { env: options.workerEnv } : {}),
    scaling: {
      pollIntervalSeconds: 1,
      minReplicas: 0,
      maxReplicas: 6,
      targetBacklogPerReplica: 100,
      idleSecondsBeforeZero: 5,
      ...options.scaling,
      scaleDown: { stabilizationSeconds: 5, ...options.scaling?.scaleDown },
    },
  });
  await kubectl(['apply', '-f', '-'], { input: JSON.stringify(manifest) });

  const brokerUrl =
    options.broker === 'redis'
      ? redisUrl
      : `kafka://${(await useKafka()).brokers.join(',')}?partitions=${options.partitions ?? 8}`;
  const app = new Taskfleet({ broker: brokerUrl, backend: redisUrl, prefix, defaultQueue: queue });
  after(() => app.close());
  const work = app.task('work', (_ctx, _ms: number) => null);
  control = app.control;

  const config = new KubeConfig();
  config.loadFromFile(kube.kubeconfig);
  const client = new KubeClient(config);
  const deploymentsPath = `/apis/apps/v1/namespaces/${namespace}/deployments`;
  const deployments = makeInformer<V1Deployment>(config, deploymentsPath, () =>
    client.get<V1DeploymentList>(deploymentsPath),
  );
  let replicas: number | undefined;
  const onDeployment = (d: V1Deployment) => {
    if (d.metadata?.name !== `${name}-workers`) return;
    const next = d.spec?.replicas ?? 0;
    if (replicas !== undefined && next < replicas) scaleDowns.push(Date.now());
    replicas = next;
  };
  deployments.on('add', onDeployment);
  deployments.on('update', onDeployment);
  await deployments.start();
  after(() => deployments.stop());
  const taskQueue = () => client.get<Json>(taskQueuePath(namespace, name));
  const timeline: Sample[] = [];
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      try {
        const sample = await sampleFleet(client, namespace, name);
        timeline.push({
          ...sample,
          t: Date.now() - startedAt,
          waiting: sample.ready + sample.delayed,
          pods: runner.pods.filter((p) => p.namespace === namespace && !p.name.includes('operator')).length,
        });
      } catch {}
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
  })();
  after(async () => {
    sampling = false;
    await sampler;
    client.close();
  });

  // The operator is up when it has written the TaskQueue's status.
  await eventually(
    'the chart-installed operator to reconcile the TaskQueue',
    async () => (await taskQueue()).status?.observedGeneration,
    90_000,
  );

  return {
    namespace,
    queue,
    prefix,
    app,
    work,
    runner,
    events,
    timeline,
    startedAt,
    taskQueue,
    until: (what, predicate, timeoutMs = 120_000) =>
      eventually(
        what,
        async () => {
          const last = timeline.at(-1);
          return last && predicate(last) ? last : undefined;
        },
        timeoutMs,
      ),
    async runs() {
      const hash = await app.control.redis.hgetall(`${prefix}:runs`);
      return new Map(Object.entries(hash).map(([id, n]) => [id, Number(n)]));
    },
    async busyDeletions() {
      await Promise.all(judged);
      return { ...deletions, detail: [...deletions.detail] };
    },
  };
}

/** Sends `count` calls of `work(ms)` in bulk; returns their ids. */
export async function burst(fleet: Fleet, count: number, ms: number): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i += 1000) {
    const results = await fleet.work.applyBulk(
      Array.from({ length: Math.min(1000, count - i) }, () => [ms] as [number]),
    );
    ids.push(...results.map((r) => r.id));
  }
  return ids;
}

/** Task ids not recorded SUCCESS in the result backend. */
export async function lost(fleet: Fleet, ids: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (let i = 0; i < ids.length; i += 500) {
    const chunk = ids.slice(i, i + 500);
    const records = await Promise.all(chunk.map((id) => fleet.app.backend.get(id)));
    records.forEach((r, j) => {
      if (r?.state !== 'SUCCESS') missing.push(chunk[j] as string);
    });
  }
  return missing;
}

/** Waits until every id is SUCCESS, or `timeoutMs` passes; returns those that are not. */
export async function drained(fleet: Fleet, ids: readonly string[], timeoutMs = 180_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let missing = [...ids];
  while (missing.length > 0 && Date.now() < deadline) {
    missing = await lost(fleet, missing);
    if (missing.length > 0) await new Promise((resolve) => setTimeout(resolve, 1000));
  }
  return missing;
}

/** Seconds, one decimal. */
export const seconds = (ms: number) => Math.round(ms / 100) / 10;
