/**
 * Where the demo runs. By default on the local stack: Redis, a Kubernetes control plane and Helm as local
 * processes (spawnStack, owned through a pipe, so they end with this process however it ends), with the
 * pod runner standing in for a kubelet. If KUBECONFIG points at a cluster that answers, there instead:
 * the chart and the TaskQueue go into a namespace of their own, with a Redis beside them, and are removed
 * at the end and on Ctrl-C. TASKFLEET_DEMO_LOCAL=1 keeps the demo local whatever KUBECONFIG says.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeApiError, KubeClient } from '../operator/src/runtime/kube-client.ts';
import { PodRunner } from '../test/stack/pod-runner.ts';
import { stackDirPrefix } from '../test/stack/stack.ts';
import { type HelmTarget, type Json, uninstallChart } from '../test/stack/taskqueue.ts';
import { cachePath } from '../test/stack/versions.ts';
import { type OwnedStack, spawnStack } from '../test/support/stack.ts';

const demoDir = new URL('.', import.meta.url).pathname.replace(/\/$/, '');
const chartVersion = '0.1.0'; // charts/taskfleet appVersion: the image tags the chart pulls by default
const FIELD_MANAGER = 'taskfleet-demo';

/** Where the tasks module is in the worker container: a ConfigMap volume there, this folder locally. */
export const TASKS_MOUNT = '/app/demo';

export interface DemoCluster {
  kind: 'local' | 'cluster';
  /** Where the demo runs, one line. */
  where: string;
  client: KubeClient;
  helm: HelmTarget;
  namespace: string;
  release: string;
  workerImage: string;
  /** --set values of the chart. */
  chartValues: Record<string, string>;
  /** The Redis URL in the TaskQueue (what the operator and the workers use). */
  fleetRedisUrl: string;
  /** The Redis URL this process sends tasks to. */
  producerRedisUrl: string;
  /** When the fleet's operator does not show up: what to look at. */
  diagnose(): Promise<string>;
  /** Stops and removes what the demo started. */
  close(): Promise<void>;
}

export type Log = (line: string) => void;

/** The cluster KUBECONFIG points at, if the demo should use it; otherwise why not (to say so). */
export async function chooseCluster(): Promise<{ use: KubeConfig; describe: string } | { skip?: string }> {
  const kubeconfig = process.env.KUBECONFIG;
  if (!kubeconfig) return {};
  if (process.env.TASKFLEET_DEMO_LOCAL === '1') {
    return { skip: 'TASKFLEET_DEMO_LOCAL=1: running on the local stack, not on the cluster KUBECONFIG points at' };
  }
  if (kubeconfig.split(':').some((file) => file.startsWith(join(tmpdir(), stackDirPrefix)))) {
    return {
      skip: `KUBECONFIG points at a Taskfleet test stack (${kubeconfig}), which has no kubelet: the demo starts a local stack of its own`,
    };
  }
  const config = new KubeConfig();
  try {
    config.loadFromDefault();
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('it names no current cluster');
    const client = new KubeClient(config);
    try {
      const version = await Promise.race([
        client.get<{ gitVersion: string }>('/version'),
        sleep(5000).then(() => {
          throw new Error(`${cluster.server} did not answer within 5 s`);
        }),
      ]);
      return {
        use: config,
        describe: `cluster ${config.getCurrentContext()} (${cluster.server}, Kubernetes ${version.gitVersion})`,
      };
    } finally {
      client.close();
    }
  } catch (error) {
    return {
      skip: `KUBECONFIG=${kubeconfig} is set, but its cluster cannot be used (${(error as Error).message}): running on the local stack instead`,
    };
  }
}

/** The local stack, with the pod runner running the namespace's pods as local processes. */
export async function localCluster(log: Log): Promise<DemoCluster> {
  const namespace = 'taskfleet-demo';
  log('starting the local stack: Redis, a Kubernetes control plane (etcd, kube-apiserver, controller manager), Helm');
  const started = Date.now();
  const stack: OwnedStack = await spawnStack(['redis', 'kube', 'helm']);
  const { kube, redis, helm } = stack.info;
  if (!kube || !redis || !helm) throw new Error('the stack started without Redis, Kubernetes or Helm');
  log(
    `stack up in ${((Date.now() - started) / 1000).toFixed(1)} s: Kubernetes ${kube.version}, Redis ${redis.version}, Helm ${helm.version}; files in ${stack.info.dir}`,
  );
  const config = new KubeConfig();
  config.loadFromFile(kube.kubeconfig);
  const client = new KubeClient(config);
  const runner = new PodRunner({
    kubeconfig: kube.kubeconfig,
    namespaces: [namespace],
    dir: join(stack.info.dir, 'demo-pods'),
    paths: { [TASKS_MOUNT]: demoDir },
  });
  await runner.start();
  log(
    `pods of namespace ${namespace} run as local processes (the pod runner stands in for a kubelet); their logs: ${join(stack.info.dir, 'demo-pods', 'pods', namespace)}`,
  );
  return {
    kind: 'local',
    where: `local stack (Kubernetes ${kube.version}, Redis ${redis.version})`,
    client,
    helm: { bin: helm.bin, env: helm.env, kubeconfig: kube.kubeconfig },
    namespace,
    release: 'taskfleet',
    workerImage: `ghcr.io/taskfleet/worker:${chartVersion}`,
    chartValues: {},
    fleetRedisUrl: redis.url,
    producerRedisUrl: redis.url,
    diagnose: async () => `pod logs are in ${join(stack.info.dir, 'demo-pods', 'pods', namespace)}`,
    async close() {
      // Pods first (they would restart against a vanishing API server), then the stack: closing its
      // pipe makes the supervisor stop every component and remove its directory.
      await runner.stop();
      client.close();
      await stack.stop();
    },
  };
}

/** A cluster of the user's: a namespace of the demo's own (unique: `taskfleet-demo-<hex>`), with a Redis in it, reached through a port-forward. */
export async function realCluster(
  config: KubeConfig,
  where: string,
  namespace: string,
  log: Log,
  signal: AbortSignal,
): Promise<DemoCluster> {
  const release = namespace; // cluster-wide names (the operator's ClusterRole) derive from it: unique too
  const workerImage = process.env.TASKFLEET_DEMO_IMAGE || `ghcr.io/taskfleet/worker:${chartVersion}`;
  const operatorImage =
    process.env.TASKFLEET_DEMO_OPERATOR_IMAGE || `ghcr.io/taskfleet/taskfleet-operator:${chartVersion}`;
  const redisImage = process.env.TASKFLEET_DEMO_REDIS_IMAGE || 'redis:7-alpine';
  const kubeconfig = process.env.KUBECONFIG as string;
  const client = new KubeClient(config);
  const helmBin = tool(join(cachePath('helm'), 'bin', 'helm'), 'helm');
  const kubectl = tool(join(cachePath('kube'), 'bin', 'kubectl'), 'kubectl');
  log(
    `KUBECONFIG points at ${where}: the demo runs there, not on the local stack (TASKFLEET_DEMO_LOCAL=1 to stay local).`,
  );
  log(
    `It creates namespace ${namespace}, with Redis (${redisImage}), the chart (release ${release}; operator image ${operatorImage}) and a TaskQueue whose workers run ${workerImage} with the demo's tasks from a ConfigMap.`,
  );
  log(
    'These images must be available to the cluster: build them from images/ and push or load them, then set TASKFLEET_DEMO_IMAGE, TASKFLEET_DEMO_OPERATOR_IMAGE (and TASKFLEET_DEMO_REDIS_IMAGE) to their names.',
  );
  log(
    `At the end and on Ctrl-C the release and the namespace are deleted; the TaskQueue CRD stays (Helm never deletes CRDs: kubectl delete crd taskqueues.taskfleet.dev).`,
  );

  const helm: HelmTarget = { bin: helmBin, kubeconfig };
  let forward: ChildProcess | undefined;
  let closed = false;
  const cluster: DemoCluster = {
    kind: 'cluster',
    where,
    client,
    helm,
    namespace,
    release,
    workerImage,
    chartValues: imageValues(operatorImage),
    fleetRedisUrl: `redis://demo-redis.${namespace}.svc:6379/0`,
    producerRedisUrl: '',
    diagnose: async () => {
      const pods = await client.get<Json>(`/api/v1/namespaces/${namespace}/pods`).catch(() => ({ items: [] }));
      const states = (pods.items as Json[]).map((p) => `${p.metadata.name} ${describePod(p)}`);
      return `pods in ${namespace}: ${states.join('; ') || 'none'}. Are the images available to the cluster? (kubectl -n ${namespace} describe pods)`;
    },
    async close() {
      if (closed) return;
      closed = true;
      forward?.kill();
      log(`removing the demo from the cluster: helm uninstall ${release}, then namespace ${namespace}`);
      await uninstallChart(helm, { release, namespace }).catch((error: Error) => {
        if (!/not found/.test(error.message)) log(`  ${error.message}`);
      });
      await client
        .request('DELETE', `/api/v1/namespaces/${namespace}`)
        .then(() => log(`  namespace ${namespace} is being deleted (the cluster finishes that in the background)`))
        .catch((error: Error) => {
          if (!(error instanceof KubeApiError && error.code === 404)) log(`  ${error.message}`);
        });
      client.close();
    },
  };
  try {
    await apply(client, `/api/v1/namespaces/${namespace}`, {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: namespace },
    });
    await startRedis(client, namespace, redisImage);
    log(`waiting for Redis (${redisImage}) to be ready in ${namespace}…`);
    await waitForRedis(client, namespace, cluster, signal);
    const port = await new Promise<number>((resolve, reject) => {
      forward = spawn(kubectl, ['port-forward', '-n', namespace, 'svc/demo-redis', ':6379', '--address', '127.0.0.1'], {
        env: { ...process.env, KUBECONFIG: kubeconfig },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      const lines = createInterface({ input: forward.stdout as NodeJS.ReadableStream });
      lines.on('line', (line) => {
        const match = /Forwarding from 127\.0\.0\.1:(\d+)/.exec(line);
        if (match) resolve(Number(match[1]));
      });
      let said = '';
      forward.stderr?.on('data', (chunk: Buffer) => {
        said += chunk.toString();
      });
      void once(forward, 'exit').then(() => reject(new Error(`kubectl port-forward to Redis ended: ${said.trim()}`)));
      setTimeout(() => reject(new Error('kubectl port-forward to Redis did not start within 30 s')), 30_000).unref();
    });
    cluster.producerRedisUrl = `redis://127.0.0.1:${port}/0`;
    log(`sending tasks through kubectl port-forward svc/demo-redis (127.0.0.1:${port})`);
    return cluster;
  } catch (error) {
    await cluster.close();
    throw error;
  }
}

/** A Redis for the fleet: one pod and a Service, nothing persisted, as locked down as the workers. */
async function startRedis(client: KubeClient, namespace: string, image: string): Promise<void> {
  const labels = { 'app.kubernetes.io/name': 'demo-redis', 'app.kubernetes.io/part-of': 'taskfleet-demo' };
  await apply(client, `/apis/apps/v1/namespaces/${namespace}/deployments/demo-redis`, {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: 'demo-redis', namespace, labels },
    spec: {
      replicas: 1,
      selector: { matchLabels: labels },
      template: {
        metadata: { labels },
        spec: {
          // The redis user of the official image.
          securityContext: {
            runAsNonRoot: true,
            runAsUser: 999,
            runAsGroup: 1000,
            seccompProfile: { type: 'RuntimeDefault' },
          },
          containers: [
            {
              name: 'redis',
              image,
              args: ['--save', '', '--appendonly', 'no'],
              ports: [{ name: 'redis', containerPort: 6379 }],
              readinessProbe: { tcpSocket: { port: 6379 }, periodSeconds: 2 },
              resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { memory: '256Mi' } },
              securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
            },
          ],
        },
      },
    },
  });
  await apply(client, `/api/v1/namespaces/${namespace}/services/demo-redis`, {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name: 'demo-redis', namespace, labels },
    spec: { selector: labels, ports: [{ name: 'redis', port: 6379, targetPort: 6379 }] },
  });
}

async function waitForRedis(
  client: KubeClient,
  namespace: string,
  cluster: DemoCluster,
  signal: AbortSignal,
): Promise<void> {
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline) {
    const deployment = await client.find<Json>(`/apis/apps/v1/namespaces/${namespace}/deployments/demo-redis`);
    if ((deployment?.status?.readyReplicas ?? 0) >= 1) return;
    await sleep(1000, undefined, { signal });
  }
  throw new Error(`Redis did not become ready within 3 minutes. ${await cluster.diagnose()}`);
}

/** Server-side apply, as `kubectl apply --server-side` would. */
export async function apply(client: KubeClient, path: string, body: Json): Promise<void> {
  await client.apply(path, body, FIELD_MANAGER);
}

/** `--set` values for an operator image given as `repo:tag` or `repo@sha256:…`. */
export function imageValues(image: string): Record<string, string> {
  const at = image.indexOf('@');
  if (at > 0) return { 'image.repository': image.slice(0, at), 'image.digest': image.slice(at + 1) };
  const colon = image.lastIndexOf(':');
  if (colon > image.lastIndexOf('/'))
    return { 'image.repository': image.slice(0, colon), 'image.tag': image.slice(colon + 1) };
  return { 'image.repository': image };
}

function describePod(pod: Json): string {
  const waiting = pod.status?.containerStatuses?.find((c: Json) => c.state?.waiting)?.state?.waiting;
  if (waiting) return `${waiting.reason}${waiting.message ? ` (${waiting.message})` : ''}`;
  return pod.status?.phase ?? 'Unknown';
}

/** The stack's build of a tool (a known version; `make demo` builds it), else the one on PATH. */
function tool(built: string, name: string): string {
  return existsSync(built) ? built : name;
}
