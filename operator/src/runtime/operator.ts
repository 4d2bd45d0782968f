import { hostname } from 'node:os';
import type { KubeConfig, KubernetesObject, V1ResourceRequirements } from '@kubernetes/client-node';
import { createLogger, type Logger } from 'taskfleet';
import { GROUP, KIND, PLURAL, type TaskQueue, VERSION } from '../api/types.ts';
import { type Deployment, driftHash } from '../controller/drift.ts';
import type { ScalerRef } from '../controller/ownership.ts';
import { Reconciler } from '../controller/reconciler.ts';
import { scrubbingLogger } from '../controller/scrub.ts';
import { ProbePool } from '../probes/probe.ts';
import { type InformerOptions, Informers } from './informers.ts';
import { KubeApiError, KubeClient } from './kube-client.ts';
import { LeaderElector } from './leader.ts';
import { OperatorMetrics } from './metrics.ts';
import { WorkQueue } from './work-queue.ts';

export interface OperatorOptions {
  /** Namespace of the leader-election Lease. */
  namespace: string;
  /** @defaultValue the hostname (the pod's name) */
  identity?: string;
  /** @defaultValue true */
  leaderElection?: boolean;
  leaseDurationMs?: number;
  retryPeriodMs?: number;
  /** Reconciles run at once. @defaultValue 16 */
  workers?: number;
  /** Re-apply an unchanged managed Deployment at least this often. @defaultValue 600_000 */
  resyncMs?: number;
  /** Broker probes in flight at once. @defaultValue 32 */
  probeConcurrency?: number;
  /**
   * Watch TaskQueues (and the objects they use) in these namespaces only, with one informer each, so that
   * namespaced Roles suffice (`--watch-namespaces`). @defaultValue [] (every namespace)
   */
  watchNamespaces?: readonly string[];
  /** Read Secrets to probe brokers (`--read-secrets`). @defaultValue true */
  readSecrets?: boolean;
  /** Resources of worker containers that set none (`--worker-resources`). @defaultValue DEFAULT_WORKER_RESOURCES */
  workerResources?: V1ResourceRequirements;
  logger?: Logger;
}

/** The label every Deployment the operator manages carries: its informer watches only these. */
export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=taskfleet';

/** What the operator caches of an HPA or a ScaledObject: only what it scales. */
interface Scaler {
  metadata: { name: string; namespace?: string; resourceVersion?: string };
  spec?: { scaleTargetRef?: { apiVersion?: string; kind?: string; name?: string } };
}

/**
 * The operator: a TaskQueue informer feeding one work queue, `workers` reconcile loops, and leader
 * election so that of several replicas exactly one acts. A second informer caches the Deployments it
 * manages, so that a reconcile of an unchanged queue reads everything from memory and sends nothing to
 * the API server. A follower keeps its informers warm, so it takes over within a lease duration.
 */
export class Operator {
  readonly metrics = new OperatorMetrics();
  readonly identity: string;
  readonly kube: KubeClient;
  readonly log: Logger;
  readonly #config: KubeConfig;
  readonly #options: OperatorOptions;
  readonly #probes: ProbePool;
  readonly #reconciler: Reconciler;
  #queue: WorkQueue | undefined;
  #loops: Promise<void>[] = [];
  #informer: Informers<TaskQueue> | undefined;
  #deployments: Informers<Deployment> | undefined;
  #hpas: Informers<Scaler> | undefined;
  #scaledObjects: Informers<Scaler> | undefined;
  /** namespace/name → driftHash of the cached version of a managed Deployment. */
  readonly #drift = new Map<string, string>();
  #elector: LeaderElector | undefined;
  #synced = false;
  #stopping = false;

  constructor(config: KubeConfig, options: OperatorOptions) {
    this.#config = config;
    this.#options = options;
    this.identity = options.identity ?? hostname();
    // Every line passes the scrubber (credentials in URLs masked); a reconcile's lines also mask the values
    // of the Secrets it read (Reconciler).
    this.log = scrubbingLogger(
      (options.logger ?? createLogger()).child({ component: 'operator', identity: this.identity }),
    );
    this.kube = new KubeClient(config, {
      onRequest: (verb, resource) => this.metrics.apiRequests.inc({ verb, resource }),
    });
    this.#probes = new ProbePool({ concurrency: options.probeConcurrency ?? 32 });
    this.#reconciler = new Reconciler({
      kube: this.kube,
      cache: {
        taskQueue: (namespace, name) => this.#informer?.get(name, namespace),
        deployment: (namespace, name) => {
          const deployment = this.#deployments?.get(name, namespace);
          const drift = this.#drift.get(`${namespace}/${name}`);
          return deployment && drift ? { deployment, drift } : undefined;
        },
        taskQueues: (namespace) => this.#informer?.list(namespace) ?? [],
        scalers: (namespace) => [
          ...scalerRefs('HorizontalPodAutoscaler', this.#hpas?.list(namespace)),
          ...scalerRefs('ScaledObject', this.#scaledObjects?.list(namespace)),
        ],
      },
      ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
      probes: this.#probes,
      metrics: this.metrics,
      identity: this.identity,
      ...(options.readSecrets === false ? { readSecrets: false } : {}),
      ...(options.workerResources ? { workerResources: options.workerResources } : {}),
      log: (msg, fields) => this.log.info(msg, fields),
    });
  }

  /** Ready: the informers have listed TaskQueues and Deployments (leader or follower alike). */
  get ready(): boolean {
    return this.#synced;
  }

  get leading(): boolean {
    return this.#queue !== undefined;
  }

  async start(): Promise<void> {
    this.#informer = this.#cached<TaskQueue>({ what: 'TaskQueue', group: GROUP, version: VERSION, resource: PLURAL });
    const key = (tq: TaskQueue) => `${tq.metadata.namespace}/${tq.metadata.name}`;
    const enqueue = (tq: TaskQueue) => this.#queue?.add(key(tq));
    // Only spec changes (a new generation) wake a reconcile early: our own status writes must not, or a
    // busy queue would be re-probed in a loop instead of every poll interval.
    const generations = new Map<string, number | undefined>();
    this.#informer.on('add', (tq) => {
      generations.set(key(tq), tq.metadata.generation);
      enqueue(tq);
    });
    this.#informer.on('update', (tq) => {
      if (generations.get(key(tq)) === tq.metadata.generation) return;
      generations.set(key(tq), tq.metadata.generation);
      enqueue(tq);
    });
    this.#informer.on('delete', (tq) => {
      generations.delete(key(tq));
      enqueue(tq);
    });
    // A managed Deployment that is deleted is recreated at once, not at the owner's next poll. Other
    // changes (its status, mostly) wake nothing: the owner's next poll sees them in the cache.
    this.#deployments = this.#cached<Deployment>({
      what: 'Deployment',
      group: 'apps',
      version: 'v1',
      resource: 'deployments',
      labelSelector: MANAGED_SELECTOR,
    });
    const cacheKey = (d: Deployment) => `${d.metadata.namespace}/${d.metadata.name}`;
    const slim = (deployment: Deployment) => {
      this.#drift.set(cacheKey(deployment), driftHash(deployment));
      // A reconcile reads a cached Deployment's identity, replicas, selector and status, and the drift
      // hash taken above: the pod template and annotations (most of its size) need not stay in memory.
      delete (deployment.spec as { template?: unknown } | undefined)?.template;
      delete (deployment.metadata as { annotations?: unknown }).annotations;
    };
    this.#deployments.on('add', slim);
    this.#deployments.on('update', slim);
    this.#deployments.on('delete', (deployment) => {
      this.#drift.delete(cacheKey(deployment));
      const owner = deployment.metadata.ownerReferences?.find((o) => o.controller && o.kind === KIND);
      if (owner) this.#queue?.add(`${deployment.metadata.namespace}/${owner.name}`);
    });
    // Who else scales a Deployment, so that a scaleTargetRef another autoscaler drives is refused. KEDA may
    // not be installed: its informer then stays empty and looks again now and then.
    const slimScaler = (scaler: Scaler) => {
      scaler.spec = { ...(scaler.spec?.scaleTargetRef ? { scaleTargetRef: scaler.spec.scaleTargetRef } : {}) };
      delete (scaler as { status?: unknown }).status;
      delete (scaler.metadata as { annotations?: unknown }).annotations;
    };
    this.#hpas = this.#cached<Scaler>({
      what: 'HorizontalPodAutoscaler',
      group: 'autoscaling',
      version: 'v2',
      resource: 'horizontalpodautoscalers',
      slim: slimScaler,
    });
    this.#scaledObjects = this.#cached<Scaler>({
      what: 'ScaledObject (keda.sh)',
      group: 'keda.sh',
      version: 'v1alpha1',
      resource: 'scaledobjects',
      optional: true,
      slim: slimScaler,
    });
    await Promise.all([
      this.#informer.start(),
      this.#deployments.start(),
      this.#hpas.start(),
      this.#scaledObjects.start(),
    ]);
    this.#synced = true;
    if (this.#options.leaderElection === false) {
      this.#lead();
      return;
    }
    this.#elector = new LeaderElector(this.kube, {
      namespace: this.#options.namespace,
      identity: this.identity,
      ...(this.#options.leaseDurationMs !== undefined ? { leaseDurationMs: this.#options.leaseDurationMs } : {}),
      ...(this.#options.retryPeriodMs !== undefined ? { retryPeriodMs: this.#options.retryPeriodMs } : {}),
      onStartedLeading: () => this.#lead(),
      onStoppedLeading: () => void this.#follow(),
      log: (msg, fields) => this.log.info(msg, fields),
    });
    this.#elector.start();
  }

  /** Informers of one resource: cluster-wide, or one per namespace of `watchNamespaces`. */
  #cached<T extends KubernetesObject>(options: Omit<InformerOptions<T>, 'log' | 'stopping'>): Informers<T> {
    return new Informers<T>(this.#config, this.kube, this.#options.watchNamespaces ?? [], {
      ...options,
      log: (level, msg, fields) => this.log[level](msg, fields),
      stopping: () => this.#stopping,
    });
  }

  /** Starts acting: every known TaskQueue is reconciled now, then on each change and poll. */
  #lead(): void {
    if (this.#queue) return;
    // A namespace's share of the loops is a quarter of them: four tenants can use them all at once.
    const queue = new WorkQueue({ perNamespace: Math.max(1, Math.ceil((this.#options.workers ?? 16) / 4)) });
    this.#queue = queue;
    this.metrics.leader.set(1);
    for (const tq of this.#informer?.list() ?? []) queue.add(`${tq.metadata.namespace}/${tq.metadata.name}`);
    this.#loops = Array.from({ length: this.#options.workers ?? 16 }, () => this.#work(queue));
  }

  /** Stops acting (lost the lease): the loops drain and end; the informer stays warm. */
  async #follow(): Promise<void> {
    const queue = this.#queue;
    if (!queue) return;
    this.#queue = undefined;
    this.metrics.leader.set(0);
    queue.close();
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  async #work(queue: WorkQueue): Promise<void> {
    for (;;) {
      const key = await queue.get();
      if (key === undefined) return;
      const end = this.metrics.reconcileDuration.startTimer();
      try {
        const { requeueAfterMs } = await this.#reconciler.reconcile(key);
        queue.forget(key);
        if (requeueAfterMs !== undefined) queue.addAfter(key, requeueAfterMs);
        else queue.remove(key);
      } catch (error) {
        const delay = queue.addRateLimited(key);
        if (error instanceof KubeApiError && error.code === 409) {
          // A write decided on a cached object that has moved on: run again on the newer one.
          this.metrics.reconcileConflicts.inc();
          this.log.debug('cache behind the API server; reconciling again', { key, retryInMs: delay });
        } else {
          this.metrics.reconcileErrors.inc();
          this.log.warn('reconcile failed; retrying', { key, retryInMs: delay, error: (error as Error).message });
        }
      } finally {
        end();
        queue.done(key);
      }
    }
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#elector?.stop();
    await this.#follow();
    await Promise.all([
      this.#informer?.stop(),
      this.#deployments?.stop(),
      this.#hpas?.stop(),
      this.#scaledObjects?.stop(),
    ]);
    await this.#reconciler.close();
    await this.#probes.close();
    this.kube.close();
  }
}

function scalerRefs(kind: ScalerRef['kind'], scalers: readonly Scaler[] | undefined): ScalerRef[] {
  return (scalers ?? []).map((s) => ({ kind, name: s.metadata.name, target: s.spec?.scaleTargetRef }));
}
