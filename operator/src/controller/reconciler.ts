import { Control, TaskfleetError } from 'taskfleet';
import type { TaskQueue, TaskQueueStatus } from '../api/types.ts';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from '../api/types.ts';
import { type BrokerReading, type BrokerTarget, type ProbePool, ratesBetween } from '../probes/probe.ts';
import { KubeApiError, type KubeClient } from '../runtime/kube-client.ts';
import type { OperatorMetrics } from '../runtime/metrics.ts';
import { decide, EMPTY_HISTORY, type History, type Observation } from '../scaling/policy.ts';
import { buildWorkerDeployment, FIELD_MANAGER, workerDeploymentName } from './deployment.ts';
import { TaskQueueSpecError } from './errors.ts';
import { sameStatus, setCondition } from './status.ts';

/** A problem only the user can fix (a missing Secret, an unsupported broker): a condition, not a retry loop. */
class BrokerConfigError extends TaskfleetError {
  override name = 'BrokerConfigError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('BROKER_CONFIG', message);
    this.reason = reason;
  }
}

export const POD_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';
const SCALER_FIELD_MANAGER = 'taskfleet-scaler';

interface Deployment {
  metadata: { name: string; namespace: string; uid?: string };
  spec?: { replicas?: number; selector?: { matchLabels?: Record<string, string> } };
  status?: { replicas?: number; readyReplicas?: number };
}

interface QueueState {
  history: History;
  reading?: BrokerReading;
  /** Last event per reason, so a steady error is reported once, not every poll. */
  events: Map<string, { message: string; at: number }>;
}

export interface ReconcilerOptions {
  kube: KubeClient;
  probes: ProbePool;
  metrics: OperatorMetrics;
  /** Who writes the Events. */
  identity: string;
  now?: () => number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** What to do with the key afterwards: poll again after `requeueAfterMs`, or wait for a change. */
export interface Result {
  requeueAfterMs?: number;
}

/**
 * Reconciles one TaskQueue: level-based, from its namespace/name alone. It reads the world (the
 * TaskQueue, its Deployment, its broker), converges it (applies the Deployment, sets /scale), and
 * reports (status, conditions, Events, metrics). Errors that a retry may fix are thrown (the work queue
 * retries with backoff); what only the user can fix becomes a condition and an Event.
 */
export class Reconciler {
  readonly #kube: KubeClient;
  readonly #probes: ProbePool;
  readonly #metrics: OperatorMetrics;
  readonly #identity: string;
  readonly #now: () => number;
  readonly #log: (msg: string, fields?: Record<string, unknown>) => void;
  readonly #state = new Map<string, QueueState>();
  readonly #controls = new Map<string, Control>();

  constructor(options: ReconcilerOptions) {
    this.#kube = options.kube;
    this.#probes = options.probes;
    this.#metrics = options.metrics;
    this.#identity = options.identity;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
  }

  async reconcile(key: string): Promise<Result> {
    const [namespace, name] = key.split('/') as [string, string];
    const tq = await this.#kube.find<TaskQueue>(`/apis/${GROUP}/${VERSION}/namespaces/${namespace}/${PLURAL}/${name}`);
    if (!tq || (tq.metadata as { deletionTimestamp?: string }).deletionTimestamp) {
      // Its Deployment goes with it (owner reference); broker data is never touched.
      this.#state.delete(key);
      this.#metrics.forget(namespace, name);
      return {};
    }
    const state: QueueState = this.#state.get(key) ?? { history: EMPTY_HISTORY, events: new Map() };
    this.#state.set(key, state);
    const now = this.#now();
    const pollMs = (tq.spec.scaling?.pollIntervalSeconds ?? 2) * 1000;
    const generation = tq.metadata.generation;
    let conditions = tq.status?.conditions ?? [];
    const condition = (...args: Parameters<typeof setCondition> extends [unknown, ...infer R] ? R : never) => {
      conditions = setCondition(conditions, ...args);
    };
    const at = new Date(now);

    // 1. The Deployment: applied (managed) or found (scaleTargetRef).
    let deployment: Deployment | undefined;
    try {
      deployment = await this.#target(tq);
    } catch (error) {
      if (!(error instanceof TaskQueueSpecError)) throw error;
      condition('Ready', 'False', 'InvalidSpec', error.message, generation, at);
      await this.#event(tq, state, 'Warning', 'InvalidSpec', error.message);
      await this.#writeStatus(tq, { ...tq.status, observedGeneration: generation, conditions });
      return {}; // terminal until the spec changes (the informer requeues it then)
    }
    if (!deployment) {
      const message = `Deployment ${tq.spec.scaleTargetRef?.name} (scaleTargetRef) does not exist in ${namespace}`;
      condition('Ready', 'False', 'TargetNotFound', message, generation, at);
      await this.#event(tq, state, 'Warning', 'TargetNotFound', message);
      await this.#writeStatus(tq, { ...tq.status, observedGeneration: generation, conditions });
      return { requeueAfterMs: pollMs };
    }
    const current = deployment.spec?.replicas ?? 0;
    const ready = deployment.status?.readyReplicas ?? 0;

    // 2. The broker: what is waiting, what is running, how fast it comes and goes.
    let observation: Observation;
    let reading: BrokerReading | undefined;
    const probeStarted = performance.now();
    try {
      const target = await this.#brokerTarget(tq);
      reading = await this.#probes.read(target);
      this.#metrics.probeDuration.observe({ broker: target.kind }, (performance.now() - probeStarted) / 1000);
      const { backlog } = reading;
      const rates = ratesBetween(state.reading, reading);
      state.reading = reading;
      observation = {
        ok: true,
        backlog: { ready: backlog.ready, delayed: backlog.due, inFlight: backlog.inFlight },
        rates,
        currentReplicas: current,
        readyReplicas: ready,
      };
      condition(
        'BrokerReachable',
        'True',
        'Probed',
        `${backlog.ready} ready, ${backlog.delayed} delayed, ${backlog.inFlight} in flight`,
        generation,
        at,
      );
    } catch (error) {
      const message = (error as Error).message;
      this.#metrics.probeErrors.inc({ namespace, taskqueue: name });
      observation = { ok: false, error: message, currentReplicas: current };
      const reason = error instanceof BrokerConfigError ? error.reason : 'ProbeFailed';
      condition('BrokerReachable', 'False', reason, message, generation, at);
      await this.#event(tq, state, 'Warning', reason, message);
    }

    // 3. The decision (pure), then the one write that changes replicas: /scale.
    const decision = decide(tq.spec.scaling, observation, state.history, now);
    state.history = decision.history;
    let lastScale: { time: string; reason: string } | undefined;
    if (decision.replicas !== current) {
      if (decision.replicas < current && tq.spec.scaling?.spareBusyWorkers !== false) {
        await this.#markBusyPods(tq, deployment).catch((error) =>
          this.#log('could not rank pods by in-flight calls', { key, error: (error as Error).message }),
        );
      }
      await this.#kube.patch(
        `/apis/apps/v1/namespaces/${namespace}/deployments/${deployment.metadata.name}/scale`,
        { spec: { replicas: decision.replicas } },
        'merge',
        { fieldManager: SCALER_FIELD_MANAGER },
      );
      const message = decision.reason; // "scaled 2 → 8: backlog 4,000 over target 500 per replica"

      lastScale = { time: at.toISOString(), reason: message };
      this.#metrics.scaleEvents.inc({
        namespace,
        taskqueue: name,
        direction: decision.replicas > current ? 'up' : 'down',
      });
      await this.#event(tq, state, 'Normal', 'Scaled', message, true);
      this.#log('scaled', { key, from: current, to: decision.replicas, reason: decision.reason });
    }

    // 4. What a user reads: status, conditions, metrics.
    condition(
      'Ready',
      observation.ok ? 'True' : 'False',
      observation.ok ? 'Scaling' : 'BrokerUnreachable',
      decision.reason,
      generation,
      at,
    );
    if (observation.ok) {
      condition(
        'Active',
        decision.active ? 'True' : 'False',
        decision.active ? 'Backlog' : 'Idle',
        decision.active ? 'the queue has work' : 'the queue is idle',
        generation,
        at,
      );
    } else {
      condition('Active', 'Unknown', 'BrokerUnreachable', 'the broker could not be probed', generation, at);
    }
    condition(
      'ScalingLimited',
      decision.limitedBy ? 'True' : 'False',
      decision.limitedBy ? limitReason(decision.limitedBy) : 'WithinLimits',
      decision.reason,
      generation,
      at,
    );
    condition(
      'Fallback',
      decision.fallback ? 'True' : 'False',
      decision.fallback ? 'ProbesFailing' : 'Probing',
      decision.fallback ? decision.reason : 'probes succeed',
      generation,
      at,
    );
    condition(
      'Paused',
      tq.spec.scaling?.paused ? 'True' : 'False',
      tq.spec.scaling?.paused ? 'Paused' : 'Running',
      tq.spec.scaling?.paused ? 'spec.scaling.paused is true' : 'scaling is on',
      generation,
      at,
    );
    const backlog = observation.ok ? observation.backlog : undefined;
    const status: TaskQueueStatus = {
      observedGeneration: generation,
      conditions,
      ...(reading
        ? {
            backlog: {
              ready: reading.backlog.ready,
              delayed: reading.backlog.delayed,
              inFlight: reading.backlog.inFlight,
            },
          }
        : tq.status?.backlog
          ? { backlog: tq.status.backlog }
          : {}),
      rates: {
        ...(observation.ok && observation.rates?.arrival !== undefined ? { arrival: observation.rates.arrival } : {}),
        ...(observation.ok && observation.rates?.completion !== undefined
          ? { completion: observation.rates.completion }
          : {}),
        ...(decision.perReplicaRate !== undefined ? { perReplica: decision.perReplicaRate } : {}),
      },
      replicas: deployment.status?.replicas ?? 0,
      readyReplicas: ready,
      desiredReplicas: decision.replicas,
      ...(lastScale
        ? { lastScaleTime: lastScale.time, lastScaleReason: lastScale.reason }
        : {
            ...(tq.status?.lastScaleTime ? { lastScaleTime: tq.status.lastScaleTime } : {}),
            ...(tq.status?.lastScaleReason ? { lastScaleReason: tq.status.lastScaleReason } : {}),
          }),
      brokerKind: 'redis',
      ...(backlog
        ? { backlogTotal: backlog.ready + backlog.delayed + backlog.inFlight }
        : tq.status?.backlogTotal !== undefined
          ? { backlogTotal: tq.status.backlogTotal }
          : {}),
    };
    await this.#writeStatus(tq, status);
    const labels = { namespace, taskqueue: name };
    if (backlog) {
      this.#metrics.backlog.set({ ...labels, kind: 'ready' }, backlog.ready);
      this.#metrics.backlog.set({ ...labels, kind: 'delayed' }, backlog.delayed);
      this.#metrics.backlog.set({ ...labels, kind: 'in_flight' }, backlog.inFlight);
    }
    if (status.rates?.arrival !== undefined) this.#metrics.arrivalRate.set(labels, status.rates.arrival);
    if (status.rates?.completion !== undefined) this.#metrics.completionRate.set(labels, status.rates.completion);
    this.#metrics.desiredReplicas.set(labels, decision.replicas);
    this.#metrics.currentReplicas.set(labels, deployment.status?.replicas ?? 0);
    this.#metrics.lastReconcile.set(labels, now / 1000);
    return { requeueAfterMs: pollMs };
  }

  /** Applies the managed Deployment (server-side apply, never replicas), or reads the scale target. */
  async #target(tq: TaskQueue): Promise<Deployment | undefined> {
    const namespace = tq.metadata.namespace as string;
    const deployments = `/apis/apps/v1/namespaces/${namespace}/deployments`;
    if (tq.spec.worker) {
      const desired = buildWorkerDeployment(tq);
      return this.#kube.apply<Deployment>(
        `${deployments}/${workerDeploymentName(tq.metadata.name)}`,
        desired,
        FIELD_MANAGER,
      );
    }
    return this.#kube.find<Deployment>(`${deployments}/${tq.spec.scaleTargetRef?.name}`);
  }

  /** The broker's URL: inline, or read from the Secret the spec names. */
  async #brokerTarget(tq: TaskQueue): Promise<BrokerTarget> {
    const redis = tq.spec.broker.redis;
    if (!redis)
      throw new BrokerConfigError(
        'UnsupportedBroker',
        'spec.broker has no redis: this operator version probes Redis brokers',
      );
    const url = await this.#secretOrValue(tq, redis.url, redis.urlFrom, 'spec.broker.redis');
    return { kind: 'redis', url, prefix: redis.prefix ?? 'tf', queue: tq.spec.queue ?? tq.metadata.name };
  }

  async #secretOrValue(
    tq: TaskQueue,
    value: string | undefined,
    from: { secretKeyRef: { name: string; key: string } } | undefined,
    field: string,
  ): Promise<string> {
    if (value !== undefined) return value;
    if (!from) throw new BrokerConfigError('InvalidSpec', `${field} has neither url nor urlFrom`);
    const { name, key } = from.secretKeyRef;
    const secret = await this.#kube.find<{ data?: Record<string, string> }>(
      `/api/v1/namespaces/${tq.metadata.namespace}/secrets/${name}`,
    );
    if (!secret) throw new BrokerConfigError('SecretNotFound', `Secret ${name} (${field}.urlFrom) does not exist`);
    const encoded = secret.data?.[key];
    if (encoded === undefined)
      throw new BrokerConfigError('SecretNotFound', `Secret ${name} has no key ${key} (${field}.urlFrom)`);
    return Buffer.from(encoded, 'base64').toString('utf8');
  }

  /**
   * Before a scale-down, tells the ReplicaSet controller which pods are busy: pod-deletion-cost = the
   * calls each pod is running (from worker heartbeats), so idle pods are removed first.
   */
  async #markBusyPods(tq: TaskQueue, deployment: Deployment): Promise<void> {
    const backend = tq.spec.resultBackend?.redis;
    const labels = deployment.spec?.selector?.matchLabels;
    if (!backend || !labels) return; // no heartbeats without a result backend: nothing to rank by
    const url = await this.#secretOrValue(tq, backend.url, backend.urlFrom, 'spec.resultBackend.redis');
    const control = this.#control(url, backend.prefix ?? 'tf');
    const busy = new Map((await control.workers()).map((w) => [w.hostname, w.active.length]));
    const selector = Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const pods = await this.#kube.get<{
      items: { metadata: { name: string; annotations?: Record<string, string> } }[];
    }>(`/api/v1/namespaces/${tq.metadata.namespace}/pods?labelSelector=${encodeURIComponent(selector)}`);
    await Promise.all(
      pods.items.map(async (pod) => {
        const cost = String(busy.get(pod.metadata.name) ?? 0);
        if (pod.metadata.annotations?.[POD_DELETION_COST] === cost) return;
        await this.#kube.patch(
          `/api/v1/namespaces/${tq.metadata.namespace}/pods/${pod.metadata.name}`,
          { metadata: { annotations: { [POD_DELETION_COST]: cost } } },
          'merge',
        );
      }),
    );
  }

  #control(url: string, prefix: string): Control {
    const key = `${url}\u0000${prefix}`;
    let control = this.#controls.get(key);
    if (!control) {
      control = Control.connect(url, prefix);
      this.#controls.set(key, control);
    }
    return control;
  }

  async #writeStatus(tq: TaskQueue, status: TaskQueueStatus): Promise<void> {
    if (sameStatus(tq.status, status)) return;
    await this.#kube.patch(
      `/apis/${GROUP}/${VERSION}/namespaces/${tq.metadata.namespace}/${PLURAL}/${tq.metadata.name}/status`,
      { status },
      'merge',
    );
  }

  /** Records an Event; a repeated identical warning is recorded once every 5 minutes at most. */
  async #event(
    tq: TaskQueue,
    state: QueueState,
    type: 'Normal' | 'Warning',
    reason: string,
    message: string,
    always = false,
  ) {
    const now = this.#now();
    const last = state.events.get(reason);
    if (!always && last && last.message === message && now - last.at < 300_000) return;
    state.events.set(reason, { message, at: now });
    const time = new Date(now).toISOString();
    try {
      await this.#kube.post(`/api/v1/namespaces/${tq.metadata.namespace}/events`, {
        apiVersion: 'v1',
        kind: 'Event',
        metadata: { generateName: `${tq.metadata.name}.`, namespace: tq.metadata.namespace },
        involvedObject: {
          apiVersion: API_VERSION,
          kind: KIND,
          name: tq.metadata.name,
          namespace: tq.metadata.namespace,
          uid: tq.metadata.uid,
        },
        type,
        reason,
        message,
        source: { component: 'taskfleet-operator' },
        reportingComponent: 'taskfleet.dev/operator',
        reportingInstance: this.#identity,
        firstTimestamp: time,
        lastTimestamp: time,
        count: 1,
      });
    } catch (error) {
      if (!(error instanceof KubeApiError)) throw error;
      this.#log('could not record an event', { reason, error: error.message });
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#controls.values()].map((c) => c.close()));
  }
}

function limitReason(limit: string): string {
  return (
    {
      max: 'TooManyReplicas',
      min: 'TooFewReplicas',
      partitions: 'PartitionCount',
      scaleUpPolicy: 'ScaleUpLimit',
      scaleDownPolicy: 'ScaleDownLimit',
      stabilization: 'Stabilizing',
    }[limit] ?? 'Limited'
  );
}
