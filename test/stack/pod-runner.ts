/**
 * A stand-in kubelet for the end-to-end tests and the demo. The stack's control plane has no scheduler
 * and no kubelet: this binds the pods of the namespaces it is given to one Node object, runs each pod's
 * first container as a local process (a real `taskfleet worker` or `taskfleet-operator`), and keeps the
 * kubelet's side of the contract:
 * - the pod's environment, with `valueFrom` (Secrets, ConfigMaps, fields) and `$(VAR)` resolved, Secret
 *   and ConfigMap volumes written to files, and the paths that point into them rewritten;
 * - ports remapped, so many pods listen side by side (TASKFLEET_METRICS_PORT);
 * - status Running, and Ready from the readiness probe (`/readyz`), written to the pod's status;
 * - a container that exits is restarted, with a back-off, and its restart counted;
 * - a pod being deleted gets SIGTERM, then SIGKILL after its grace period, and is removed.
 * Its processes die with it (setpriv --pdeathsig). Images are not pulled: `resolve` says what to run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { V1ConfigMap, V1Container, V1EnvVar, V1Pod, V1PodList, V1Secret } from '@kubernetes/client-node';
import { KubeConfig, Watch } from '@kubernetes/client-node';
import { KubeApiError, KubeClient, microTime } from '../../operator/src/runtime/kube-client.ts';
import { freePort } from './process.ts';

const repo = new URL('../../', import.meta.url).pathname;

/** What to run for a container: a local command line, its working directory and extra environment. */
export interface LocalCommand {
  command: string;
  args: string[];
  cwd?: string;
  env?: Record<string, string>;
}

export interface PodRunnerOptions {
  /** The admin kubeconfig file of the stack. */
  kubeconfig: string;
  /** Only pods of these namespaces are bound and run. */
  namespaces: readonly string[];
  /** Where pod logs, volumes and kubeconfigs go. */
  dir: string;
  /** @defaultValue 'taskfleet-local' */
  node?: string;
  /** Maps a container to a local command; the default runs Taskfleet's own binaries from this checkout. */
  resolve?: (container: V1Container, pod: V1Pod) => LocalCommand;
  /** Paths in the container's command line mapped to local directories (e.g. '/app' → examples/tutorial). */
  paths?: Record<string, string>;
  /** Each change of a pod's lifecycle, for the demo's log and the tests' counts. */
  onEvent?: (event: PodEvent) => void;
  /**
   * Read each ready pod's in-flight gauge this often, to know since when a pod has been idle (the
   * `others` of a terminating event). Unset: not sampled.
   */
  inFlightSampleMs?: number;
}

/** Another pod of the namespace at the moment one is told to stop, and staying (not being deleted). */
export interface StayingPod {
  pod: string;
  /** Calls in flight, read at the same moment as the stopping pod's. */
  inFlight: number;
  /** Epoch ms of the first of the samples in a row that saw it idle (with inFlightSampleMs); undefined: busy. */
  idleSince: number | undefined;
  /** Its controller.kubernetes.io/pod-deletion-cost annotation then. */
  deletionCost: string | undefined;
}

export type PodEvent =
  | { kind: 'started'; pod: string; namespace: string; pid: number; port: number; restart: number }
  | { kind: 'ready'; pod: string; namespace: string; ready: boolean }
  | { kind: 'exited'; pod: string; namespace: string; code: number | null; signal: string | null }
  | { kind: 'deleted'; pod: string; namespace: string; graceful: boolean }
  /**
   * A pod told to stop, with the calls it was running then (a Taskfleet worker's in-flight gauge), and
   * the ready pods of its namespace that stay, read at the same moment.
   */
  | {
      kind: 'terminating';
      pod: string;
      namespace: string;
      inFlight: number;
      /** Epoch ms of the first of the samples in a row that saw it busy (with inFlightSampleMs). */
      busySince: number | undefined;
      deletionCost: string | undefined;
      others: StayingPod[];
    };

interface Running {
  pod: V1Pod;
  key: string;
  child: ChildProcess | undefined;
  port: number;
  ready: boolean;
  restarts: number;
  startedAt: string;
  deleting: boolean;
  backoffUntil: number;
  /** See StayingPod.idleSince. */
  idleSince: number | undefined;
  /** Likewise, of its busy samples. */
  busySince: number | undefined;
}

/**
 * Taskfleet's binaries, run from this checkout's sources: a command `taskfleet …` or `taskfleet-operator …`,
 * or no command at all, which runs the image's entrypoint (`taskfleet worker` for a worker image,
 * `taskfleet-operator` for an operator image) with the container's args.
 */
export function taskfleetCommand(container: V1Container, paths: Record<string, string> = {}): LocalCommand {
  const mapPath = (arg: string) => {
    for (const [from, to] of Object.entries(paths)) {
      if (arg === from || arg.startsWith(`${from}/`)) return to + arg.slice(from.length);
    }
    return arg;
  };
  const worker = [join(repo, 'worker/src/cli/main.ts')];
  const operator = [join(repo, 'operator/src/main.ts')];
  const args = (container.args ?? []).map(mapPath);
  const node = (script: string[], rest: string[]) => ({
    command: process.execPath,
    args: [...script, ...rest],
    cwd: repo,
  });
  if (!container.command || container.command.length === 0) {
    return /operator/.test(container.image ?? '') ? node(operator, args) : node(worker, ['worker', ...args]);
  }
  const [first = '', ...rest] = [...container.command.map(mapPath), ...args];
  const name = first.split('/').pop();
  if (name === 'taskfleet') return node(worker, rest);
  if (name === 'taskfleet-operator') return node(operator, rest);
  return { command: first, args: rest, cwd: repo };
}

export class PodRunner {
  readonly #options: PodRunnerOptions;
  readonly #node: string;
  readonly #client: KubeClient;
  readonly #config: KubeConfig;
  readonly #watches: AbortController[] = [];
  readonly #running = new Map<string, Running>();
  #stopped = false;
  #loop: Promise<void> | undefined;
  #sampler: Promise<void> | undefined;
  #heartbeat: NodeJS.Timeout | undefined;

  constructor(options: PodRunnerOptions) {
    this.#options = options;
    this.#node = options.node ?? 'taskfleet-local';
    const config = new KubeConfig();
    config.loadFromFile(options.kubeconfig);
    this.#config = config;
    this.#client = new KubeClient(config);
  }

  /** The pods running now: name → pid and metrics port. */
  get pods(): { name: string; namespace: string; pid: number | undefined; port: number; ready: boolean }[] {
    return [...this.#running.values()].map((r) => ({
      name: r.pod.metadata?.name ?? '',
      namespace: r.pod.metadata?.namespace ?? '',
      pid: r.child?.pid,
      port: r.port,
      ready: r.ready,
    }));
  }

  async start(): Promise<void> {
    await mkdir(this.#options.dir, { recursive: true });
    await this.#registerNode();
    this.#heartbeat = setInterval(() => void this.#renewNode().catch(() => {}), 10_000);
    this.#heartbeat.unref();
    this.#loop = this.#run();
    for (const namespace of this.#options.namespaces) await this.#watchDeletions(namespace);
    if (this.#options.inFlightSampleMs !== undefined) this.#sampler = this.#sample(this.#options.inFlightSampleMs);
  }

  /** Kills a pod's process with `signal`, as a crash would; it is restarted like any exited container. */
  kill(name: string, signal: NodeJS.Signals = 'SIGKILL'): boolean {
    const running = [...this.#running.values()].find((r) => r.pod.metadata?.name === name);
    return running?.child?.kill(signal) ?? false;
  }

  /** Stops every process at once (SIGKILL) and forgets the pods; the objects stay in the API server. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearInterval(this.#heartbeat);
    for (const watch of this.#watches.splice(0)) watch.abort();
    await Promise.all([this.#loop, this.#sampler]);
    await Promise.all(
      [...this.#running.values()].map(async (r) => {
        if (r.child && r.child.exitCode === null && r.child.signalCode === null) {
          r.child.kill('SIGKILL');
          await once(r.child, 'exit');
        }
      }),
    );
    this.#running.clear();
    this.#client.close();
  }

  async #registerNode(): Promise<void> {
    const node = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name: this.#node, labels: { 'kubernetes.io/hostname': this.#node, 'kubernetes.io/os': 'linux' } },
    };
    try {
      await this.#client.post('/api/v1/nodes', node);
    } catch (error) {
      if (!(error instanceof KubeApiError && error.code === 409)) throw error;
    }
    await this.#renewNode();
  }

  /** Node status Ready and the node Lease renewed: the node lifecycle controller's signs of life. */
  async #renewNode(): Promise<void> {
    const now = new Date().toISOString();
    await this.#client.patch(
      `/api/v1/nodes/${this.#node}/status`,
      {
        status: {
          conditions: [
            {
              type: 'Ready',
              status: 'True',
              reason: 'KubeletReady',
              message: 'taskfleet pod runner',
              lastHeartbeatTime: now,
              lastTransitionTime: now,
            },
          ],
          capacity: { cpu: '64', memory: '256Gi', pods: '1000' },
          allocatable: { cpu: '64', memory: '256Gi', pods: '1000' },
          addresses: [{ type: 'InternalIP', address: '127.0.0.1' }],
        },
      },
      'strategic',
    );
    const lease = `/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/${this.#node}`;
    const body = {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: { name: this.#node, namespace: 'kube-node-lease' },
      spec: { holderIdentity: this.#node, leaseDurationSeconds: 40, renewTime: microTime(new Date()) },
    };
    try {
      await this.#client.patch(lease, { spec: body.spec }, 'merge');
    } catch (error) {
      if (!(error instanceof KubeApiError && error.code === 404)) throw error;
      await this.#client.post('/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases', body);
    }
  }

  async #run(): Promise<void> {
    while (!this.#stopped) {
      try {
        await this.#tick();
      } catch {
        // The API server away for a moment (a test restarting something): try again.
      }
      await sleep(250);
    }
  }

  /**
   * Tells a pod to stop as soon as its deletion is seen, as a kubelet watching its pods does, rather than
   * at the next tick (which may be slow: it probes every pod), so that what a terminating event reports
   * is what held when the pod was deleted. The tick still catches any deletion the watch missed.
   */
  async #watchDeletions(namespace: string): Promise<void> {
    if (this.#stopped) return;
    const restart = () => {
      if (!this.#stopped) setTimeout(() => void this.#watchDeletions(namespace).catch(restart), 500).unref();
    };
    const controller = await new Watch(this.#config).watch(
      `/api/v1/namespaces/${namespace}/pods`,
      {},
      (phase: string, pod: V1Pod) => {
        const running = this.#running.get(`${namespace}/${pod.metadata?.name}`);
        if (phase !== 'MODIFIED' || !pod.metadata?.deletionTimestamp || !running) return;
        void this.#terminate(pod, running).catch(() => {});
      },
      restart,
    );
    this.#watches.push(controller);
  }

  /** Keeps each ready pod's idleSince from its in-flight gauge, read every `everyMs`. */
  async #sample(everyMs: number): Promise<void> {
    while (!this.#stopped) {
      const at = Date.now();
      await Promise.all(
        [...this.#running.values()].map(async (r) => {
          if (!r.child || !r.ready) {
            r.idleSince = undefined;
            r.busySince = undefined;
            return;
          }
          const idle = (await inFlightOf(r.port)) === 0;
          r.idleSince = idle ? (r.idleSince ?? at) : undefined;
          r.busySince = idle ? undefined : (r.busySince ?? at);
        }),
      );
      await sleep(Math.max(0, everyMs - (Date.now() - at)));
    }
  }

  async #tick(): Promise<void> {
    const seen = new Set<string>();
    for (const namespace of this.#options.namespaces) {
      const list = await this.#client.get<V1PodList>(`/api/v1/namespaces/${namespace}/pods`);
      for (const pod of list.items) {
        const key = `${namespace}/${pod.metadata?.name}`;
        seen.add(key);
        if (!pod.spec?.nodeName) {
          await this.#bind(pod).catch(() => {});
          continue;
        }
        if (pod.spec.nodeName !== this.#node) continue;
        const running = this.#running.get(key);
        if (pod.metadata?.deletionTimestamp) {
          await this.#terminate(pod, running);
          continue;
        }
        if (!running) await this.#launch(pod, key, 0);
        else if (!running.child && Date.now() >= running.backoffUntil) await this.#launch(pod, key, running.restarts);
        else if (running.child) await this.#probe(running);
      }
    }
    // Deleted from the API server without us (force deletion): stop their processes.
    for (const [key, running] of this.#running) {
      if (!seen.has(key)) {
        running.child?.kill('SIGKILL');
        this.#running.delete(key);
      }
    }
  }

  async #bind(pod: V1Pod): Promise<void> {
    const { name, namespace } = pod.metadata ?? {};
    await this.#client.post(`/api/v1/namespaces/${namespace}/pods/${name}/binding`, {
      apiVersion: 'v1',
      kind: 'Binding',
      metadata: { name, namespace },
      target: { apiVersion: 'v1', kind: 'Node', name: this.#node },
    });
  }

  async #launch(pod: V1Pod, key: string, restarts: number): Promise<void> {
    const container = pod.spec?.containers[0] as V1Container;
    const name = pod.metadata?.name as string;
    const namespace = pod.metadata?.namespace as string;
    const podDir = join(this.#options.dir, 'pods', namespace, name);
    await mkdir(podDir, { recursive: true });
    const mounts = await this.#volumes(pod, container, podDir);
    const env = await this.#env(pod, container, mounts);
    const port = this.#running.get(key)?.port ?? (await freePort());
    const local = (this.#options.resolve ?? ((c) => taskfleetCommand(c, this.#options.paths)))(container, pod);
    const kubeconfig = await this.#serviceAccountKubeconfig(pod, podDir);
    const child = spawn(
      'setpriv',
      [
        '--pdeathsig',
        'KILL',
        '--',
        local.command,
        ...local.args.map((a) => (a.startsWith(repo) ? a : rewrite(a, mounts))),
      ],
      {
        cwd: local.cwd ?? repo,
        env: {
          PATH: process.env.PATH,
          HOME: process.env.HOME,
          ...env,
          ...local.env,
          // This checkout's sources, not a stale dist/, whatever else the pod asks of Node.
          NODE_OPTIONS: `${env.NODE_OPTIONS ?? ''} --conditions=source`.trim(),
          TASKFLEET_METRICS_PORT: String(port),
          HOSTNAME: name,
          ...(kubeconfig ? { KUBECONFIG: kubeconfig } : {}),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const log = createWriteStream(join(podDir, 'container.log'), { flags: 'a' });
    child.stdout?.pipe(log, { end: false });
    child.stderr?.pipe(log, { end: false });
    const running: Running = {
      pod,
      key,
      child,
      port,
      ready: false,
      restarts,
      startedAt: new Date().toISOString(),
      deleting: false,
      backoffUntil: 0,
      idleSince: undefined,
      busySince: undefined,
    };
    this.#running.set(key, running);
    this.#options.onEvent?.({ kind: 'started', pod: name, namespace, pid: child.pid ?? 0, port, restart: restarts });
    child.once('exit', (code, signal) => {
      this.#options.onEvent?.({ kind: 'exited', pod: name, namespace, code, signal });
      if (this.#running.get(key) !== running) return;
      running.child = undefined;
      running.ready = false;
      running.restarts++;
      // CrashLoopBackOff, shortened: 1 s, 2 s, 4 s, … up to 10 s.
      running.backoffUntil = Date.now() + Math.min(10_000, 1000 * 2 ** Math.min(4, running.restarts - 1));
      void this.#writeStatus(running).catch(() => {});
    });
    await this.#writeStatus(running);
  }

  /** Writes the Secret and ConfigMap volumes the container mounts; returns mount path → local dir. */
  async #volumes(pod: V1Pod, container: V1Container, podDir: string): Promise<Map<string, string>> {
    const mounts = new Map<string, string>();
    const namespace = pod.metadata?.namespace as string;
    for (const mount of container.volumeMounts ?? []) {
      const volume = pod.spec?.volumes?.find((v) => v.name === mount.name);
      const local = join(podDir, 'volumes', mount.name);
      await mkdir(local, { recursive: true });
      const data: Record<string, string> = {};
      if (volume?.secret?.secretName) {
        const secret = await this.#client.get<V1Secret>(
          `/api/v1/namespaces/${namespace}/secrets/${volume.secret.secretName}`,
        );
        for (const [k, v] of Object.entries(secret.data ?? {})) data[k] = Buffer.from(v, 'base64').toString('utf8');
      } else if (volume?.configMap?.name) {
        const map = await this.#client.get<V1ConfigMap>(
          `/api/v1/namespaces/${namespace}/configmaps/${volume.configMap.name}`,
        );
        Object.assign(data, map.data ?? {});
      }
      for (const [k, v] of Object.entries(data)) await writeFile(join(local, k), v);
      mounts.set(mount.mountPath, mount.subPath ? join(local, mount.subPath) : local);
    }
    return mounts;
  }

  async #env(pod: V1Pod, container: V1Container, mounts: Map<string, string>): Promise<Record<string, string>> {
    const namespace = pod.metadata?.namespace as string;
    const env: Record<string, string> = {};
    const secretData = async (name: string) =>
      (await this.#client.get<V1Secret>(`/api/v1/namespaces/${namespace}/secrets/${name}`)).data ?? {};
    const mapData = async (name: string) =>
      (await this.#client.get<V1ConfigMap>(`/api/v1/namespaces/${namespace}/configmaps/${name}`)).data ?? {};
    for (const from of container.envFrom ?? []) {
      if (from.secretRef?.name) {
        for (const [k, v] of Object.entries(await secretData(from.secretRef.name)))
          env[`${from.prefix ?? ''}${k}`] = decode(v);
      } else if (from.configMapRef?.name) {
        for (const [k, v] of Object.entries(await mapData(from.configMapRef.name))) env[`${from.prefix ?? ''}${k}`] = v;
      }
    }
    for (const variable of container.env ?? [])
      env[variable.name] = await this.#value(pod, variable, env, secretData, mapData);
    for (const [k, v] of Object.entries(env)) env[k] = rewrite(v, mounts);
    return env;
  }

  async #value(
    pod: V1Pod,
    variable: V1EnvVar,
    env: Record<string, string>,
    secretData: (name: string) => Promise<Record<string, string>>,
    mapData: (name: string) => Promise<Record<string, string>>,
  ): Promise<string> {
    if (variable.value !== undefined)
      return variable.value.replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, n: string) => env[n] ?? m);
    const from = variable.valueFrom;
    if (from?.secretKeyRef)
      return decode((await secretData(from.secretKeyRef.name as string))[from.secretKeyRef.key] ?? '');
    if (from?.configMapKeyRef)
      return (await mapData(from.configMapKeyRef.name as string))[from.configMapKeyRef.key] ?? '';
    if (from?.fieldRef) {
      const fields: Record<string, string | undefined> = {
        'metadata.name': pod.metadata?.name,
        'metadata.namespace': pod.metadata?.namespace,
        'metadata.uid': pod.metadata?.uid,
        'spec.nodeName': this.#node,
        'spec.serviceAccountName': pod.spec?.serviceAccountName,
        'status.podIP': '127.0.0.1',
        'status.hostIP': '127.0.0.1',
      };
      return fields[from.fieldRef.fieldPath] ?? '';
    }
    return '';
  }

  /** A kubeconfig with a token of the pod's ServiceAccount: what in-cluster config would give it. */
  async #serviceAccountKubeconfig(pod: V1Pod, podDir: string): Promise<string | undefined> {
    const account = pod.spec?.serviceAccountName;
    const namespace = pod.metadata?.namespace as string;
    if (!account || pod.spec?.automountServiceAccountToken === false) return undefined;
    const review = await this.#client.post<{ status: { token: string } }>(
      `/api/v1/namespaces/${namespace}/serviceaccounts/${account}/token`,
      { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenRequest', spec: { expirationSeconds: 86_400 } },
    );
    const admin = new KubeConfig();
    admin.loadFromFile(this.#options.kubeconfig);
    const cluster = admin.getCurrentCluster();
    if (!cluster) return undefined;
    const config = new KubeConfig();
    config.loadFromOptions({
      clusters: [cluster],
      users: [{ name: account, token: review.status.token }],
      contexts: [{ name: 'pod', cluster: cluster.name, user: account, namespace }],
      currentContext: 'pod',
    });
    const file = join(podDir, 'kubeconfig');
    await writeFile(file, config.exportConfig());
    return file;
  }

  /** Readiness from the container's probe (its /readyz on the remapped port); status written on change. */
  async #probe(running: Running): Promise<void> {
    const container = running.pod.spec?.containers[0];
    const path = container?.readinessProbe?.httpGet?.path ?? '/readyz';
    let ready = false;
    try {
      const response = await fetch(`http://127.0.0.1:${running.port}${path}`, { signal: AbortSignal.timeout(1000) });
      ready = response.ok;
    } catch {}
    if (ready !== running.ready) {
      running.ready = ready;
      const { name = '', namespace = '' } = running.pod.metadata ?? {};
      this.#options.onEvent?.({ kind: 'ready', pod: name, namespace, ready });
      await this.#writeStatus(running);
    }
  }

  async #writeStatus(running: Running): Promise<void> {
    const { name, namespace } = running.pod.metadata ?? {};
    const container = running.pod.spec?.containers[0];
    const now = new Date().toISOString();
    const condition = (type: string, value: boolean) => ({
      type,
      status: value ? 'True' : 'False',
      lastTransitionTime: now,
    });
    await this.#client.patch(
      `/api/v1/namespaces/${namespace}/pods/${name}/status`,
      {
        status: {
          phase: 'Running',
          hostIP: '127.0.0.1',
          podIP: '127.0.0.1',
          podIPs: [{ ip: '127.0.0.1' }],
          startTime: running.startedAt,
          conditions: [
            condition('PodScheduled', true),
            condition('Initialized', true),
            condition('ContainersReady', running.ready),
            condition('Ready', running.ready),
          ],
          containerStatuses: [
            {
              name: container?.name,
              image: container?.image,
              imageID: '',
              containerID: running.child?.pid ? `local://${running.child.pid}` : undefined,
              ready: running.ready,
              started: running.child !== undefined,
              restartCount: running.restarts,
              state: running.child
                ? { running: { startedAt: running.startedAt } }
                : { waiting: { reason: 'CrashLoopBackOff', message: 'the process exited; restarting' } },
            },
          ],
        },
      },
      'merge',
    );
  }

  /**
   * The ready pods of the namespace, but `except`, that are not being deleted, with their calls in flight
   * now. Deletion is read from the API server, not from this runner's last list: the ReplicaSet deletes
   * the pods of one scale-down together, and a sibling may have gone after the list was taken.
   */
  async #staying(
    namespace: string,
    except: string,
  ): Promise<{ others: StayingPod[]; deletionCost: string | undefined }> {
    let list: V1PodList;
    try {
      list = await this.#client.get<V1PodList>(`/api/v1/namespaces/${namespace}/pods`);
    } catch {
      return { others: [], deletionCost: undefined };
    }
    const cost = (name: string) =>
      list.items.find((p) => p.metadata?.name === name)?.metadata?.annotations?.[
        'controller.kubernetes.io/pod-deletion-cost'
      ];
    const deleting = new Set(list.items.filter((p) => p.metadata?.deletionTimestamp).map((p) => p.metadata?.name));
    const staying = [...this.#running.values()].filter((r) => {
      const name = r.pod.metadata?.name ?? '';
      return r.pod.metadata?.namespace === namespace && name !== except && r.child && r.ready && !deleting.has(name);
    });
    const others = await Promise.all(
      staying.map(async (r) => ({
        pod: r.pod.metadata?.name ?? '',
        inFlight: await inFlightOf(r.port),
        idleSince: r.idleSince,
        deletionCost: cost(r.pod.metadata?.name ?? ''),
      })),
    );
    return { others, deletionCost: cost(except) };
  }

  /** The kubelet's half of a graceful deletion: SIGTERM, the grace period, SIGKILL, then remove the pod. */
  async #terminate(pod: V1Pod, running: Running | undefined): Promise<void> {
    const { name = '', namespace = '' } = pod.metadata ?? {};
    if (running?.deleting) return;
    if (running) running.deleting = true;
    const graceful = running?.child !== undefined;
    void (async () => {
      const child = running?.child;
      if (running && child && child.exitCode === null && child.signalCode === null) {
        const [inFlight, { others, deletionCost }] = await Promise.all([
          inFlightOf(running.port),
          this.#staying(namespace, name),
        ]);
        const { busySince } = running;
        this.#options.onEvent?.({
          kind: 'terminating',
          pod: name,
          namespace,
          inFlight,
          busySince,
          deletionCost,
          others,
        });
        const exited = once(child, 'exit');
        child.kill('SIGTERM');
        const grace = (pod.metadata?.deletionGracePeriodSeconds ?? 30) * 1000;
        const timer = setTimeout(() => child.kill('SIGKILL'), grace);
        await exited;
        clearTimeout(timer);
      }
      await this.#client
        .request('DELETE', `/api/v1/namespaces/${namespace}/pods/${name}`, undefined, undefined, {
          gracePeriodSeconds: '0',
        })
        .catch(() => {});
      if (running) this.#running.delete(running.key);
      this.#options.onEvent?.({ kind: 'deleted', pod: name, namespace, graceful });
    })();
  }
}

/** The sum of a worker's taskfleet_tasks_in_flight gauge; 0 when it does not answer. */
export async function inFlightOf(port: number): Promise<number> {
  try {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`, { signal: AbortSignal.timeout(1000) })).text();
    let sum = 0;
    for (const line of text.split('\n'))
      if (line.startsWith('taskfleet_tasks_in_flight')) sum += Number(line.split(' ').pop());
    return sum;
  } catch {
    return 0;
  }
}

function decode(base64: string): string {
  return Buffer.from(base64, 'base64').toString('utf8');
}

/**
 * A value pointing into a mounted volume, pointed at the volume's local copy. (Not this checkout's own
 * paths, which `resolve` chose: a volume mounted at /tmp must not capture a checkout under /tmp.)
 */
function rewrite(value: string, mounts: Map<string, string>): string {
  for (const [from, to] of mounts) {
    if (value === from || value.startsWith(`${from}/`)) return to + value.slice(from.length);
  }
  return value;
}
