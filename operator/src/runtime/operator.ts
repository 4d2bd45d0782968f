import { hostname } from 'node:os';
import { type KubeConfig, type KubernetesListObject, makeInformer } from '@kubernetes/client-node';
import { createLogger, type Logger } from 'taskfleet';
import { GROUP, PLURAL, type TaskQueue, VERSION } from '../api/types.ts';
import { Reconciler } from '../controller/reconciler.ts';
import { ProbePool } from '../probes/probe.ts';
import { KubeClient } from './kube-client.ts';
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
  /** Broker probes in flight at once. @defaultValue 32 */
  probeConcurrency?: number;
  logger?: Logger;
}

/**
 * The operator: a TaskQueue informer feeding one work queue, `workers` reconcile loops, and leader
 * election so that of several replicas exactly one acts. A follower keeps its informer warm, so it
 * takes over within a lease duration.
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
  #informer: ReturnType<typeof makeInformer<TaskQueue>> | undefined;
  #elector: LeaderElector | undefined;
  #synced = false;

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
      probes: this.#probes,
      metrics: this.metrics,
      identity: this.identity,
      log: (msg, fields) => this.log.info(msg, fields),
    });
  }

  /** Ready: the informer has listed TaskQueues (leader or follower alike). */
  get ready(): boolean {
    return this.#synced;
  }

  get leading(): boolean {
    return this.#queue !== undefined;
  }

  async start(): Promise<void> {
    const path = `/apis/${GROUP}/${VERSION}/${PLURAL}`;
    this.#informer = makeInformer<TaskQueue>(this.#config, path, () =>
      this.kube.get<KubernetesListObject<TaskQueue>>(path),
    );
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
    this.#informer.on('error', (error) => {
      this.log.warn('TaskQueue watch failed; restarting it', { error: (error as Error)?.message });
      setTimeout(() => void this.#informer?.start().catch(() => {}), 1000).unref();
    });
    await this.#informer.start();
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

  /** Starts acting: every known TaskQueue is reconciled now, then on each change and poll. */
  #lead(): void {
    if (this.#queue) return;
    const queue = new WorkQueue();
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
        this.metrics.reconcileErrors.inc();
        const delay = queue.addRateLimited(key);
        this.log.warn('reconcile failed; retrying', { key, retryInMs: delay, error: (error as Error).message });
      } finally {
        end();
        queue.done(key);
      }
    }
  }

  async stop(): Promise<void> {
    await this.#elector?.stop();
    await this.#follow();
    await this.#informer?.stop();
    await this.#reconciler.close();
    await this.#probes.close();
  }
}
