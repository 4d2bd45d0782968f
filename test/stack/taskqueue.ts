/**
 * A Taskfleet fleet on a cluster, the parts the end-to-end tests and the demo share: the chart installed
 * with Helm, a TaskQueue whose workers run a tasks module, and one look at what the operator and the
 * worker Deployment say about it. Nothing here knows which cluster it is (the local stack or a real one):
 * callers pass the Helm binary, the kubeconfig and a client.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import type { KubeClient } from '../../operator/src/runtime/kube-client.ts';

const run = promisify(execFile);

export const chartDir = new URL('../../charts/taskfleet', import.meta.url).pathname;
export const taskQueueApi = 'taskfleet.dev/v1alpha1';

// biome-ignore lint/suspicious/noExplicitAny: the API server's JSON, read field by field
export type Json = Record<string, any>;

/** How to run Helm against a cluster. */
export interface HelmTarget {
  bin: string;
  /** Helm's own variables (the stack keeps its cache, config and data in the stack directory). */
  env?: Record<string, string>;
  /** The KUBECONFIG value (a file, or a list of files) for the cluster. */
  kubeconfig: string;
}

/** Runs Helm; returns stdout, or throws with everything Helm said. */
export async function helm(target: HelmTarget, args: readonly string[]): Promise<string> {
  try {
    const env = { ...process.env, ...target.env, KUBECONFIG: target.kubeconfig };
    return (await run(target.bin, args, { env })).stdout;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    const said = [stdout?.trim(), stderr?.trim()].filter(Boolean).join('\n');
    throw new Error(`helm ${args.join(' ')}: ${said || (error as Error).message}`);
  }
}

export interface ChartRelease {
  release: string;
  namespace: string;
  /** `--set key=value` pairs. */
  values?: Record<string, string | number | boolean>;
}

/** The `helm install` command line for the chart in this checkout; it returns without waiting for pods. */
export function installArgs({ release, namespace, values = {} }: ChartRelease): string[] {
  return [
    'install',
    release,
    chartDir,
    '--namespace',
    namespace,
    ...Object.entries(values).flatMap(([key, value]) => ['--set', `${key}=${value}`]),
    '--wait=false',
  ];
}

export async function installChart(target: HelmTarget, release: ChartRelease): Promise<void> {
  await helm(target, installArgs(release));
}

export async function uninstallChart(target: HelmTarget, { release, namespace }: ChartRelease): Promise<void> {
  await helm(target, ['uninstall', release, '--namespace', namespace]);
}

export interface TaskQueueOptions {
  name: string;
  namespace: string;
  /** spec.queue; the TaskQueue's name when unset. */
  queue?: string;
  /** spec.broker, e.g. `{ redis: { url, prefix } }`. */
  broker: Json;
  /** spec.resultBackend; none by default (results are not stored). */
  resultBackend?: Json;
  /** The worker container's image, and the tasks module it runs (a path inside the container). */
  image: string;
  app: string;
  /** @defaultValue 8 */
  concurrency?: number;
  /** @defaultValue 20 */
  terminationGracePeriodSeconds?: number;
  /** spec.scaling, as given. */
  scaling: Json;
  /** More variables for the worker container. */
  env?: Record<string, string>;
  /** Volumes of the worker pod, and where the worker container mounts them. */
  volumes?: Json[];
  volumeMounts?: Json[];
}

/** A TaskQueue whose managed worker Deployment runs `taskfleet worker --app <app>` in `image`. */
export function taskQueueManifest(o: TaskQueueOptions): Json {
  const container: Json = { name: 'worker', image: o.image, args: ['--app', o.app] };
  if (o.env) container.env = Object.entries(o.env).map(([name, value]) => ({ name, value }));
  if (o.volumeMounts) container.volumeMounts = o.volumeMounts;
  return {
    apiVersion: taskQueueApi,
    kind: 'TaskQueue',
    metadata: { name: o.name, namespace: o.namespace },
    spec: {
      ...(o.queue ? { queue: o.queue } : {}),
      broker: o.broker,
      ...(o.resultBackend ? { resultBackend: o.resultBackend } : {}),
      worker: {
        concurrency: o.concurrency ?? 8,
        terminationGracePeriodSeconds: o.terminationGracePeriodSeconds ?? 20,
        template: { spec: { containers: [container], ...(o.volumes ? { volumes: o.volumes } : {}) } },
      },
      scaling: o.scaling,
    },
  };
}

export const taskQueuePath = (namespace: string, name: string) =>
  `/apis/${taskQueueApi}/namespaces/${namespace}/taskqueues/${name}`;

/** What the operator and the worker Deployment said at one moment. */
export interface FleetSample {
  /** The backlog at the operator's last probe: calls waiting now, waiting for later, delivered and unfinished. */
  ready: number;
  delayed: number;
  inFlight: number;
  /** Calls enqueued and finished per second, as the operator measured them at the broker. */
  arrival: number;
  completion: number;
  /** Replicas the operator's last decision asked for. */
  desired: number;
  /** The worker Deployment's spec.replicas and its ready replicas. */
  replicas: number;
  readyReplicas: number;
  /** Why the operator last changed the replicas, in its words. */
  lastScaleReason?: string;
  /** The spec generation the operator's status reflects; absent until it has reconciled once. */
  observedGeneration?: number;
}

/** One look at a TaskQueue's status and its worker Deployment (`<name>-workers`), read in parallel. */
export async function sampleFleet(client: KubeClient, namespace: string, name: string): Promise<FleetSample> {
  const [tq, deployment] = await Promise.all([
    client.get<Json>(taskQueuePath(namespace, name)),
    client.find<Json>(`/apis/apps/v1/namespaces/${namespace}/deployments/${name}-workers`),
  ]);
  const status = tq.status ?? {};
  return {
    ready: status.backlog?.ready ?? 0,
    delayed: status.backlog?.delayed ?? 0,
    inFlight: status.backlog?.inFlight ?? 0,
    arrival: status.rates?.arrival ?? 0,
    completion: status.rates?.completion ?? 0,
    desired: status.desiredReplicas ?? 0,
    replicas: deployment?.spec?.replicas ?? 0,
    readyReplicas: deployment?.status?.readyReplicas ?? 0,
    ...(status.lastScaleReason ? { lastScaleReason: status.lastScaleReason as string } : {}),
    ...(status.observedGeneration !== undefined ? { observedGeneration: status.observedGeneration as number } : {}),
  };
}

/** A worker pod as a person would describe it. */
export interface WorkerPod {
  name: string;
  /** ready, starting, terminating, pending, or the container's waiting reason (ImagePullBackOff, …). */
  state: string;
  restarts: number;
  /** When the pod was created (ms since the epoch). */
  createdAt: number;
}

/** The worker pods of a TaskQueue, oldest first. */
export async function workerPods(client: KubeClient, namespace: string, name: string): Promise<WorkerPod[]> {
  const selector = encodeURIComponent(`app.kubernetes.io/instance=${name},app.kubernetes.io/name=taskfleet-worker`);
  const list = await client.get<Json>(`/api/v1/namespaces/${namespace}/pods?labelSelector=${selector}`);
  return (list.items as Json[])
    .map((pod) => ({
      name: pod.metadata.name as string,
      state: podState(pod),
      restarts: pod.status?.containerStatuses?.[0]?.restartCount ?? 0,
      createdAt: Date.parse(pod.metadata.creationTimestamp),
    }))
    .sort((a, b) => a.createdAt - b.createdAt || a.name.localeCompare(b.name));
}

export function podState(pod: Json): string {
  if (pod.metadata?.deletionTimestamp) return 'terminating';
  const status = pod.status ?? {};
  if (status.phase === 'Succeeded' || status.phase === 'Failed') return status.phase.toLowerCase();
  const waiting = status.containerStatuses?.[0]?.state?.waiting?.reason;
  if (waiting) return waiting;
  if (!pod.spec?.nodeName) return 'pending';
  const ready = (status.conditions as Json[] | undefined)?.find((c) => c.type === 'Ready')?.status === 'True';
  if (ready) return 'ready';
  return status.phase === 'Running' ? 'starting' : 'pending';
}
