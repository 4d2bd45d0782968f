import { hostname } from 'node:os';
import {
  type Informer,
  type KubeConfig,
  type KubernetesListObject,
  type KubernetesObject,
  makeInformer,
  type ObjectCache,
} from '@kubernetes/client-node';
import { createLogger, type Logger } from 'taskfleet';
import { GROUP, KIND, PLURAL, type TaskQueue, VERSION } from '../api/types.ts';
import { type Deployment, driftHash, Reconciler } from '../controller/reconciler.ts';
import { ProbePool } from '../probes/probe.ts';
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
  logger?: Logger;
}

/** The label every Deployment the operator manages carries: its informer watches only these. */
export const MANAGED_SELECTOR = 'app.kubernetes.io/managed-by=taskfleet';

type Cached<T extends KubernetesObject> = Informer<T> & ObjectCache<T>;

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
  #informer: Cached<TaskQueue> | undefined;
  #deployments: Cached<Deployment> | undefined;
  /** namespace/name → driftHash of the cached version of a managed Deployment. */
  readonly #drift = new Map<string, string>();
  #elector: LeaderElector | undefined;
  #synced = false;
  #stopping = false;

  constructor(config: KubeConfig, options: OperatorOptions) {
    this.#config = config;
    this.#options = options;
    this.identity = options.identity ?? hostname();
    this.log = (options.logger ?? createLogger()).child({ component: 'operator', identity: this.identity });
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
      },
      ...(options.resyncMs !== undefined ? { resyncMs: options.resyncMs } : {}),
      probes: this.#probes,
      metrics: this.metrics,
      identity: this.identity,
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
    const path = `/apis/${GROUP}/${VERSION}/${PLURAL}`;
    this.#informer = this.#cached<TaskQueue>('TaskQueue', path);
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
    this.#deployments = this.#cached<Deployment>('Deployment', '/apis/apps/v1/deployments', MANAGED_SELECTOR);
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
    await Promise.all([this.#informer.start(), this.#deployments.start()]);
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

  /**
   * An informer (list, then watch) on `path`, restarted a second after a failure. Cached objects drop
   * their managedFields, which nothing here reads and which are most of a Deployment's size.
   */
  #cached<T extends KubernetesObject>(what: string, path: string, labelSelector?: string): Cached<T> {
    const query = labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : '';
    const informer = makeInformer<T>(
      this.#config,
      path,
      () => this.kube.get<KubernetesListObject<T>>(`${path}${query}`),
      labelSelector,
    );
    const slim = (object: T) => {
      if (object.metadata) delete object.metadata.managedFields;
    };
    informer.on('add', slim);
    informer.on('update', slim);
    informer.on('error', (error) => {
      if (this.#stopping) return;
      this.log.warn(`${what} watch failed; restarting it`, { error: (error as Error)?.message });
      setTimeout(() => void informer.start().catch(() => {}), 1000).unref();
    });
    return informer;
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
    await Promise.all([this.#informer?.stop(), this.#deployments?.stop()]);
    await this.#reconciler.close();
    await this.#probes.close();
    this.kube.close();
  }
}
