/**
 * The operator benchmark's world: a private stack (Redis + etcd, kube-apiserver, kube-controller-manager)
 * started through the project's helper, the CRDs installed, a ServiceAccount bound to charts/taskfleet/files/rbac-rules.yaml,
 * and the operator itself as a child process, as it runs in a cluster (leader election on).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { openSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { KubeApiError, KubeClient } from '../../operator/src/runtime/kube-client.ts';
import type { KubeEndpoint } from '../../test/stack/kube.ts';
import { freePort } from '../../test/stack/process.ts';
import type { RedisEndpoint } from '../../test/stack/redis.ts';
import { installCrdsInto } from '../../test/support/crds.ts';
import { kubectlWith } from '../../test/support/kube.ts';
import { operatorAccountKubeconfig } from '../../test/support/operator-account.ts';
import { type OwnedStack, spawnStack } from '../../test/support/stack.ts';
import { deployedEnv, operatorMain } from './deployed.ts';

/** The namespace the operator runs in (its ServiceAccount and Lease). */
export const OPERATOR_NAMESPACE = 'taskfleet-system';

export interface Cluster {
  stack: OwnedStack;
  kube: KubeEndpoint;
  redis: RedisEndpoint;
  /** Admin credentials: what the benchmark itself uses to create objects and watch them. */
  adminConfig: KubeConfig;
  admin: KubeClient;
  /** A kubeconfig whose user is the operator's ServiceAccount, bound to exactly charts/taskfleet/files/rbac-rules.yaml. */
  operatorKubeconfig: string;
  /** Process ids of the stack's components, by name (kube-apiserver, etcd, redis, …). */
  pids: Record<string, number>;
  kubectl(args: readonly string[], input?: string): Promise<string>;
  stop(): Promise<void>;
}

export async function startCluster(log: (line: string) => void): Promise<Cluster> {
  const started = performance.now();
  const stack = await spawnStack(['redis', 'kube']);
  const { kube, redis } = stack.info;
  if (!kube || !redis) throw new Error('the stack started without kube or redis');
  log(`stack up in ${((performance.now() - started) / 1000).toFixed(1)} s: ${stack.info.dir}`);
  const kubectl = (args: readonly string[], input?: string) =>
    kubectlWith(kube, args, input === undefined ? {} : { input });
  await installCrdsInto(kube);

  await kubectl(['create', 'namespace', OPERATOR_NAMESPACE]);
  const operatorKubeconfig = await operatorAccountKubeconfig(kube, OPERATOR_NAMESPACE, {
    clusterRoleBinding: 'taskfleet-operator',
    file: join(stack.info.dir, 'operator-bench.kubeconfig'),
    duration: '6h',
  });
  const adminConfig = new KubeConfig();
  adminConfig.loadFromFile(kube.kubeconfig);
  return {
    stack,
    kube,
    redis,
    adminConfig,
    admin: new KubeClient(adminConfig),
    operatorKubeconfig,
    pids: Object.fromEntries(stack.info.processes.map((p) => [p.name, p.pid])),
    kubectl,
    stop: () => stack.stop(),
  };
}

/** Creates a namespace (admin), ignoring "already exists". */
export async function createNamespace(cluster: Cluster, name: string): Promise<void> {
  try {
    await cluster.admin.post('/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name } });
  } catch (error) {
    if (!(error instanceof KubeApiError && error.code === 409)) throw error;
  }
}

/** Runs `work` over `items` with at most `concurrency` in flight. */
export async function inParallel<T>(
  items: readonly T[],
  concurrency: number,
  work: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(concurrency, items.length) }, async () => {
      while (next < items.length) {
        const index = next++;
        await work(items[index] as T, index);
      }
    }),
  );
}

export interface OperatorProcess {
  child: ChildProcess;
  /** Its NODE_OPTIONS: Node's flags, as the chart's `nodeOptions` passes them ('' for Node's defaults). */
  nodeOptions: string;
  pid: number;
  identity: string;
  metricsUrl: string;
  logFile: string;
  /** SIGTERM (the operator releases its lease), then waits for the exit. */
  stop(): Promise<void>;
}

/**
 * Starts the compiled operator (`operator/dist/main.js`) as a process of its own, as the Helm chart runs
 * it: ServiceAccount credentials, leader election on, metrics served, Node's flags in NODE_OPTIONS.
 * Resolves once it is ready (informers synced) and leads. `setpriv --pdeathsig KILL` ends it if the
 * benchmark dies.
 */
export async function startOperator(
  cluster: Cluster,
  identity: string,
  nodeOptions = '',
  env: Record<string, string> = {},
): Promise<OperatorProcess> {
  const port = await freePort();
  const logFile = join(cluster.stack.info.dir, `operator-${identity}.log`);
  const out = openSync(logFile, 'a');
  const child = spawn(
    'setpriv',
    [
      '--pdeathsig',
      'KILL',
      '--',
      process.execPath,
      operatorMain,
      '--kubeconfig',
      cluster.operatorKubeconfig,
      '--namespace',
      OPERATOR_NAMESPACE,
      '--identity',
      identity,
      '--metrics-port',
      String(port),
      '--leader-elect',
      'true',
    ],
    {
      env: deployedEnv(nodeOptions, { TASKFLEET_LOG_LEVEL: 'info', ...env }),
      stdio: ['ignore', out, out],
    },
  );
  if (child.pid === undefined) throw new Error('could not start the operator');
  const exited = once(child, 'exit');
  const metricsUrl = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the operator exited with ${child.exitCode}; see ${logFile}`);
    const leading = await fetch(`${metricsUrl}/metrics`)
      .then((r) => r.text())
      .then((text) => /^taskfleet_operator_leader 1$/m.test(text))
      .catch(() => false);
    if (leading) break;
    if (Date.now() > deadline) throw new Error(`the operator did not lead within 120 s; see ${logFile}`);
    await sleep(50);
  }
  return {
    child,
    nodeOptions,
    pid: child.pid,
    identity,
    metricsUrl,
    logFile,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        await exited;
      }
    },
  };
}

interface Watched {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
}

/**
 * A Kubernetes watch that survives the client's 30 s inactivity timeout and the server's own closes:
 * it reconnects from the last resourceVersion it saw, so no event is lost or replayed.
 */
export function watchForever<T extends Watched>(
  config: KubeConfig,
  path: string,
  query: Record<string, string>,
  onEvent: (type: string, object: T) => void,
): { stop(): void } {
  const watch = new Watch(config);
  let resourceVersion: string | undefined;
  let stopped = false;
  let controller: AbortController | undefined;
  const connect = async () => {
    if (stopped) return;
    controller = await watch.watch(
      path,
      { ...query, allowWatchBookmarks: 'true', ...(resourceVersion ? { resourceVersion } : {}) },
      (type, object: T) => {
        if (object?.metadata?.resourceVersion) resourceVersion = object.metadata.resourceVersion;
        if (type === 'ERROR') {
          resourceVersion = undefined; // 410 Gone: start over with a fresh list of events
          return;
        }
        if (type !== 'BOOKMARK') onEvent(type, object);
      },
      () => {
        if (!stopped) setTimeout(() => void connect(), 100);
      },
    );
  };
  void connect();
  return {
    stop() {
      stopped = true;
      controller?.abort();
    },
  };
}
