import type { V1ResourceRequirements } from '@kubernetes/client-node';
import {
  ConfigError,
  Control,
  parseSchedule,
  type RedisBroker,
  RedisScheduleStore,
  Scheduler,
  TaskfleetError,
} from 'taskfleet';
import { DEFAULT_PREFIX } from '../api/defaults.ts';
import type { Condition, ConditionType, SecretKeySelector, TaskQueue, TaskQueueStatus } from '../api/types.ts';
import { API_VERSION, GROUP, KIND, PLURAL, VERSION } from '../api/types.ts';
import {
  type BrokerReading,
  type BrokerTarget,
  type KafkaTarget,
  ProbeFailedError,
  type ProbePool,
  type RedisTarget,
  ratesBetween,
  scalingBacklog,
} from '../probes/probe.ts';
import { KubeApiError, type KubeClient } from '../runtime/kube-client.ts';
import { apiPath } from '../runtime/kube-path.ts';
import type { OperatorMetrics } from '../runtime/metrics.ts';
import { decide, EMPTY_HISTORY, type History, type Observation } from '../scaling/policy.ts';
import { hashOf } from './canonical.ts';
import { buildWorkerDeployment, FIELD_MANAGER, workerDeploymentName } from './deployment.ts';
import { TaskQueueSpecError } from './errors.ts';
import { managedNameConflict, type ScalerRef, scaleTargetOwner, targetOwnedMessage } from './ownership.ts';
import { Scrubber } from './scrub.ts';
import { credentialProblem, pemProblem, redisUrlProblem } from './secret-values.ts';
import { invalidName } from './spec-names.ts';
import { type ConditionUpdate, sameStatus, setConditions } from './status.ts';

/** A problem only the user can fix (a missing Secret, an unsupported broker): a condition, not a retry loop. */
class BrokerConfigError extends TaskfleetError {
  override name = 'BrokerConfigError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('BROKER_CONFIG', message);
    this.reason = reason;
  }
}

/**
 * A Deployment the operator may not scale or apply, because another owns it: reason `TargetOwned` (a
 * scaleTargetRef driven by an HPA, a ScaledObject or another TaskQueue) or `DeploymentConflict` (the
 * managed name taken by a Deployment this TaskQueue does not control). A condition, never a retry loop.
 */
class TargetRefusedError extends TaskfleetError {
  override name = 'TargetRefusedError';
  readonly reason: 'TargetOwned' | 'DeploymentConflict';
  constructor(reason: 'TargetOwned' | 'DeploymentConflict', message: string) {
    super('TARGET_REFUSED', message);
    this.reason = reason;
  }
}

export const POD_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';
const SCALER_FIELD_MANAGER = 'taskfleet-scaler';

export interface Deployment {
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  };
  spec?: { replicas?: number; selector?: { matchLabels?: Record<string, string> } };
  status?: { replicas?: number; readyReplicas?: number };
}

/**
 * What the informers last delivered: every TaskQueue, and every Deployment the operator manages (label
 * app.kubernetes.io/managed-by=taskfleet). Reading these instead of the API server is what lets one
 * operator poll thousands of queues; writes carry the resourceVersion they were decided on, so a cache
 * that is behind makes a write fail with a conflict (retried), never overwrite newer data.
 */
export interface ReconcilerCache {
  taskQueue(namespace: string, name: string): TaskQueue | undefined;
  /** A managed Deployment, and the {@link driftHash} of it taken before the cache slimmed it down. */
  deployment(namespace: string, name: string): { deployment: Deployment; drift: string } | undefined;
  /** The TaskQueues of a namespace (to find another that scales the same Deployment). */
  taskQueues(namespace: string): readonly TaskQueue[];
  /** The HorizontalPodAutoscalers and KEDA ScaledObjects of a namespace, by what they scale. */
  scalers(namespace: string): ScalerRef[];
}

/** The last server-side apply of a queue's Deployment: what was sent and what the server made of it. */
interface Applied {
  /** Hash of the object sent. */
  desired: string;
  /** Hash of the Deployment as it came back (see {@link driftHash}). */
  live: string;
  uid: string | undefined;
  at: number;
}

interface QueueState {
  history: History;
  /** The schedules of the generation they were built from. */
  scheduler?: { generation: number | undefined; target: string; broker: RedisBroker; scheduler: Scheduler };
  reading?: BrokerReading;
  /** Last event per reason, so a steady error is reported once, not every poll. */
  events: Map<string, { message: string; at: number }>;
  /** Hash of the Deployment built for one generation of the TaskQueue (a pure function of it). */
  built?: { uid: string | undefined; generation: number | undefined; hash: string };
  applied?: Applied;
}

export interface ReconcilerOptions {
  kube: KubeClient;
  cache: ReconcilerCache;
  /**
   * Re-apply a managed Deployment that seems unchanged at least this often (each queue at its own phase
   * within a further quarter of it), in case a change escaped the drift check. @defaultValue 600_000
   */
  resyncMs?: number;
  probes: ProbePool;
  metrics: OperatorMetrics;
  /** Who writes the Events. */
  identity: string;
  /**
   * Read Secrets to probe brokers (`--read-secrets`). false: the operator never reads a Secret; a queue
   * whose probe needs one reports BrokerReachable=False, reason SecretsNotRead. @defaultValue true
   */
  readSecrets?: boolean;
  /** Resources of worker containers that set none (`--worker-resources`). @defaultValue DEFAULT_WORKER_RESOURCES */
  workerResources?: V1ResourceRequirements;
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
  readonly #cache: ReconcilerCache;
  readonly #resyncMs: number;
  readonly #probes: ProbePool;
  readonly #metrics: OperatorMetrics;
  readonly #identity: string;
  readonly #readSecrets: boolean;
  readonly #workerResources: V1ResourceRequirements | undefined;
  readonly #now: () => number;
  readonly #log: (msg: string, fields?: Record<string, unknown>) => void;
  readonly #state = new Map<string, QueueState>();
  readonly #controls = new Map<string, Control>();
  /** namespace/name → the scrubber of the reconcile running for it (never two at once for one key). */
  readonly #scrubbers = new Map<string, Scrubber>();

  constructor(options: ReconcilerOptions) {
    this.#kube = options.kube;
    this.#cache = options.cache;
    this.#resyncMs = options.resyncMs ?? 600_000;
    this.#probes = options.probes;
    this.#metrics = options.metrics;
    this.#identity = options.identity;
    this.#readSecrets = options.readSecrets ?? true;
    this.#workerResources = options.workerResources;
    this.#now = options.now ?? Date.now;
    this.#log = options.log ?? (() => {});
  }

  /**
   * One reconcile, with its {@link Scrubber}: every value read from a Secret on the way is recorded in it,
   * and every condition, Event, log line and error leaving the reconcile is scrubbed by it.
   */
  async reconcile(key: string): Promise<Result> {
    const scrub = new Scrubber();
    this.#scrubbers.set(key, scrub);
    try {
      return await this.#reconcile(key, scrub);
    } catch (error) {
      throw scrub.error(error);
    } finally {
      this.#scrubbers.delete(key);
    }
  }

  /** The scrubber of the reconcile running for `tq` (a fresh one outside a reconcile). */
  #scrub(tq: TaskQueue): Scrubber {
    return this.#scrubbers.get(`${tq.metadata.namespace}/${tq.metadata.name}`) ?? new Scrubber();
  }

  /** A log line of a reconcile, scrubbed. */
  #say(tq: TaskQueue, msg: string, fields?: Record<string, unknown>): void {
    const scrub = this.#scrub(tq);
    this.#log(scrub.text(msg), scrub.fields(fields));
  }

  async #reconcile(key: string, scrub: Scrubber): Promise<Result> {
    const [namespace, name] = key.split('/') as [string, string];
    const tq = this.#cache.taskQueue(namespace, name);
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
    // Decided one by one, set together (so unchanged ones keep their transition times).
    const updates: ConditionUpdate[] = [];
    const condition = (type: ConditionType, status: Condition['status'], reason: string, message: string) => {
      updates.push({ type, status, reason, message: scrub.text(message) });
    };
    const at = new Date(now);
    const conditions = () => setConditions(tq.status?.conditions ?? [], updates, generation, at);

    // Names the current CRD refuses, on a TaskQueue admitted under an older one: nothing is read or sent
    // for it (no Secret, no Deployment), since the name would go into a request path.
    const badName = invalidName(tq);
    if (badName) {
      condition('Ready', 'False', 'InvalidSpec', badName.message);
      await this.#event(tq, state, 'Warning', 'InvalidSpec', badName.message);
      await this.#writeStatus(tq, { ...tq.status, observedGeneration: generation, conditions: conditions() });
      return {}; // terminal until the spec changes
    }

    // Admitted only under a CRD older than this operator (the API server refuses it now); say so and wait.
    if (tq.spec.broker.kafka && tq.spec.schedules?.length) {
      const message =
        'spec.schedules need a Redis broker: each tick is recorded and enqueued in one Redis transaction, which Kafka cannot join. Move the schedules to a TaskQueue on Redis, or remove them';
      condition('Ready', 'False', 'SchedulesNeedRedis', message);
      await this.#event(tq, state, 'Warning', 'SchedulesNeedRedis', message);
      await this.#writeStatus(tq, { ...tq.status, observedGeneration: generation, conditions: conditions() });
      return {};
    }

    // 1. The Deployment: applied (managed) or found (scaleTargetRef).
    let deployment: Deployment | undefined;
    try {
      deployment = await this.#target(key, tq, state, now);
    } catch (error) {
      if (error instanceof TargetRefusedError) {
        condition('Ready', 'False', error.reason, error.message);
        await this.#event(tq, state, 'Warning', error.reason, error.message);
        await this.#writeStatus(tq, { ...tq.status, observedGeneration: generation, conditions: conditions() });
        // The other owner may go away (an HPA deleted): look again every poll; nothing was written.
        return { requeueAfterMs: pollMs };
      }
      if (!(error instanceof TaskQueueSpecError)) throw error;
      condition('Ready', 'False', 'InvalidSpec', error.message);
      await this.#event(tq, state, 'Warning', 'InvalidSpec', error.message);
      await this.#writeStatus(tq, { ...tq.status, observedGeneration: generation, conditions: conditions() });
      return {}; // terminal until the spec changes (the informer requeues it then)
    }
    if (!deployment) {
      const message = `Deployment ${tq.spec.scaleTargetRef?.name} (scaleTargetRef) does not exist in ${namespace}`;
      condition('Ready', 'False', 'TargetNotFound', message);
      await this.#event(tq, state, 'Warning', 'TargetNotFound', message);
      await this.#writeStatus(tq, { ...tq.status, observedGeneration: generation, conditions: conditions() });
      return { requeueAfterMs: pollMs };
    }
    const current = deployment.spec?.replicas ?? 0;
    const ready = deployment.status?.readyReplicas ?? 0;

    // 2. The broker: what is waiting, what is running, how fast it comes and goes.
    let observation: Observation;
    let reading: BrokerReading | undefined;
    let target: BrokerTarget | undefined;
    const probeStarted = performance.now();
    try {
      target = await this.#brokerTarget(tq);
      // The namespace shares the probe slots fairly with the other tenants' TaskQueues.
      reading = await this.#probes.read(target, { namespace });
      this.#metrics.probeDuration.observe({ broker: target.kind }, (performance.now() - probeStarted) / 1000);
      const { backlog } = reading;
      const rates = ratesBetween(state.reading, reading);
      state.reading = reading;
      observation = {
        ok: true,
        backlog: scalingBacklog(target.kind, backlog),
        rates,
        currentReplicas: current,
        readyReplicas: ready,
        ...(backlog.partitions !== undefined ? { partitions: backlog.partitions } : {}),
        ...(tq.spec.broker.kafka?.allowIdleConsumers ? { allowIdleConsumers: true } : {}),
      };
      condition(
        'BrokerReachable',
        'True',
        'Probed',
        `${backlog.ready} ready, ${backlog.delayed} delayed, ${backlog.inFlight} in flight${backlog.partitions !== undefined ? `, ${backlog.partitions} partitions` : ''}`,
      );
    } catch (error) {
      // Client errors (ioredis, kafkajs) may quote what they were given: scrubbed before anything keeps
      // it (the decision's reason goes into status.lastScaleReason too).
      const message = scrub.text((error as Error).message);
      // A target backing off after failures is not probed: its last failure is reported again, and the
      // condition says when the next probe goes out. The Event names the failure only, so that a steady
      // failure is not an Event per probe.
      const detail = error instanceof ProbeFailedError ? scrub.text(error.detail) : message;
      if (!(error instanceof ProbeFailedError) || error.probed)
        this.#metrics.probeErrors.inc({ namespace, taskqueue: name });
      observation = { ok: false, error: detail, currentReplicas: current };
      const reason = error instanceof BrokerConfigError ? error.reason : 'ProbeFailed';
      condition('BrokerReachable', 'False', reason, message);
      await this.#event(tq, state, 'Warning', reason, detail);
    }

    // Periodic tasks fire from the leader's reconcile: at most every poll, and at the next tick if sooner.
    let schedules: Awaited<ReturnType<Reconciler['fireSchedules']>> | undefined;
    if (target?.kind === 'redis' && tq.spec.schedules?.length) {
      schedules = await this.fireSchedules(tq, state, target, now);
    }

    // 3. The decision (pure), then the one write that changes replicas: /scale.
    const decision = decide(tq.spec.scaling, observation, state.history, now);
    // The history takes a scale only once /scale has it: a patch refused (409: a Deployment just created
    // is updated by its controller within moments) would otherwise leave a scale event that never
    // happened, and the scale-up policy would hold the retry back by it for a whole period.
    if (decision.replicas === current) state.history = decision.history;
    let lastScale: { time: string; reason: string } | undefined;
    if (decision.replicas !== current) {
      // Without Secrets (--read-secrets=false), ranking needs an inline backend url: the heartbeats are there.
      const rankable = this.#readSecrets || tq.spec.resultBackend?.redis?.url !== undefined;
      if (decision.replicas < current && tq.spec.scaling?.spareBusyWorkers !== false && rankable) {
        await this.#markBusyPods(tq, deployment).catch((error) =>
          this.#say(tq, 'could not rank pods by in-flight calls', { key, error: (error as Error).message }),
        );
      }
      // Decided on this version of the Deployment: if it has moved on (the cache was behind), the API
      // server answers 409 and the reconcile runs again, rather than scaling twice on a stale count.
      await this.#kube.patch(
        apiPath({
          group: 'apps',
          version: 'v1',
          resource: 'deployments',
          namespace,
          name: deployment.metadata.name,
          subresource: 'scale',
        }),
        {
          metadata: { resourceVersion: deployment.metadata.resourceVersion },
          spec: { replicas: decision.replicas },
        },
        'merge',
        { fieldManager: SCALER_FIELD_MANAGER },
      );
      state.history = decision.history;
      const message = decision.reason; // "scaled 2 → 8: backlog 4,000 over target 500 per replica"

      lastScale = { time: at.toISOString(), reason: message };
      this.#metrics.scaleEvents.inc({
        namespace,
        taskqueue: name,
        direction: decision.replicas > current ? 'up' : 'down',
      });
      await this.#event(tq, state, 'Normal', 'Scaled', message, true);
      this.#say(tq, 'scaled', { key, from: current, to: decision.replicas, reason: decision.reason });
    }

    // 4. What a user reads: status, conditions, metrics.
    condition(
      'Ready',
      observation.ok ? 'True' : 'False',
      observation.ok ? 'Scaling' : 'BrokerUnreachable',
      decision.reason,
    );
    if (observation.ok) {
      condition(
        'Active',
        decision.active ? 'True' : 'False',
        decision.active ? 'Backlog' : 'Idle',
        decision.active ? 'the queue has work' : 'the queue is idle',
      );
    } else {
      condition('Active', 'Unknown', 'BrokerUnreachable', 'the broker could not be probed');
    }
    condition(
      'ScalingLimited',
      decision.limitedBy ? 'True' : 'False',
      decision.limitedBy ? limitReason(decision.limitedBy) : 'WithinLimits',
      decision.reason,
    );
    condition(
      'Fallback',
      decision.fallback ? 'True' : 'False',
      decision.fallback ? 'ProbesFailing' : 'Probing',
      decision.fallback ? decision.reason : 'probes succeed',
    );
    condition(
      'Paused',
      tq.spec.scaling?.paused ? 'True' : 'False',
      tq.spec.scaling?.paused ? 'Paused' : 'Running',
      tq.spec.scaling?.paused ? 'spec.scaling.paused is true' : 'scaling is on',
    );
    const backlog = observation.ok ? observation.backlog : undefined;
    const status: TaskQueueStatus = {
      observedGeneration: generation,
      conditions: conditions(),
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
      brokerKind: tq.spec.broker.kafka ? 'kafka' : 'redis',
      ...(schedules ? { schedules: schedules.status } : {}),
      ...(backlog
        ? { backlogTotal: backlog.ready + backlog.delayed + backlog.inFlight }
        : tq.status?.backlogTotal !== undefined
          ? { backlogTotal: tq.status.backlogTotal }
          : {}),
    };
    await this.#writeStatus(tq, status);
    this.#metrics.observeQueue(
      key,
      namespace,
      name,
      {
        ...(backlog ? { backlog } : {}),
        ...(status.rates?.arrival !== undefined ? { arrival: status.rates.arrival } : {}),
        ...(status.rates?.completion !== undefined ? { completion: status.rates.completion } : {}),
        desired: decision.replicas,
        current: deployment.status?.replicas ?? 0,
        ready: deployment.status?.readyReplicas ?? 0,
      },
      now,
    );
    const untilTick = schedules?.nextDueAt === undefined ? pollMs : Math.max(0, schedules.nextDueAt - this.#now());
    return { requeueAfterMs: Math.min(pollMs, untilTick) };
  }

  /**
   * Fires the TaskQueue's due schedule ticks through the same scheduler and idempotent fire script as
   * `taskfleet beat`: each (schedule, tick) is enqueued once, even if a new leader repeats a tick the
   * old one fired just before it died. Only the leader reconciles, so the Lease is the lease here.
   */
  async fireSchedules(tq: TaskQueue, state: QueueState, target: RedisTarget, now: number) {
    const generation = tq.metadata.generation;
    const where = `${target.url}\u0000${target.prefix}\u0000${target.queue}`;
    // The pool closes a connection left unused for a while: a scheduler built on a closed one is rebuilt.
    const broker = this.#probes.broker(target);
    if (
      !state.scheduler ||
      state.scheduler.generation !== generation ||
      state.scheduler.target !== where ||
      state.scheduler.broker !== broker
    ) {
      const parsed = [];
      for (const s of tq.spec.schedules ?? []) {
        const common = { task: s.task, args: s.args ?? [], missed: s.missed ?? ('fire-once' as const) };
        try {
          parsed.push(
            parseSchedule(
              s.name,
              s.cron !== undefined
                ? { ...common, cron: s.cron, timeZone: s.timeZone ?? 'UTC' }
                : { ...common, every: (s.everySeconds ?? 0) * 1000 },
              { where: `spec.schedules[${s.name}]` },
            ),
          );
        } catch (error) {
          if (!(error instanceof ConfigError)) throw error;
          await this.#event(tq, state, 'Warning', 'InvalidSchedule', error.message);
        }
      }
      state.scheduler = {
        generation,
        target: where,
        broker,
        scheduler: new Scheduler({
          schedules: parsed,
          store: new RedisScheduleStore(broker.redis, { prefix: target.prefix }),
          queueOf: () => target.queue,
          clock: this.#now,
        }),
      };
    }
    const { scheduler } = state.scheduler;
    const report = await scheduler.tick(now);
    for (const fire of report.fired) this.#say(tq, 'schedule fired', { schedule: fire.schedule, taskId: fire.taskId });
    const status = (await scheduler.status()).map((s) => ({
      name: s.name,
      ...(s.lastFire ? { lastFire: new Date(s.lastFire.tick).toISOString(), lastTaskId: s.lastFire.taskId } : {}),
      ...(s.nextFire !== undefined ? { nextFire: new Date(s.nextFire).toISOString() } : {}),
      fires: s.fires,
      missed: s.missed,
    }));
    return { status, nextDueAt: report.nextDueAt };
  }

  /**
   * The managed Deployment, applied with server-side apply (never replicas) when it needs to be: when
   * the object built from the TaskQueue changed since the last apply, when the Deployment is missing or
   * has changed in the cluster since (a drift or a deletion the informer saw), or after `resyncMs`.
   * Otherwise it is read from the informer's cache, and the reconcile sends nothing to the API server.
   * A `scaleTargetRef` Deployment is read with a GET.
   *
   * Neither is done for a Deployment another owns ({@link TargetRefusedError}): a scaleTargetRef that an
   * HPA, a ScaledObject or another TaskQueue drives, or a managed name taken by a Deployment this
   * TaskQueue does not control, which a forced apply would otherwise take over.
   */
  async #target(key: string, tq: TaskQueue, state: QueueState, now: number): Promise<Deployment | undefined> {
    const namespace = tq.metadata.namespace as string;
    const deployment = (name: string) =>
      apiPath({ group: 'apps', version: 'v1', resource: 'deployments', namespace, name });
    if (!tq.spec.worker) {
      const target = tq.spec.scaleTargetRef?.name as string;
      const others = { scalers: this.#cache.scalers(namespace), taskQueues: this.#cache.taskQueues(namespace) };
      // From the caches first: a target another autoscaler drives is refused without a request.
      let owner = scaleTargetOwner(tq, others);
      if (owner) throw new TargetRefusedError('TargetOwned', targetOwnedMessage(target, owner));
      const live = await this.#kube.find<Deployment>(deployment(target));
      owner = live && scaleTargetOwner(tq, { ...others, deployment: live });
      if (owner) throw new TargetRefusedError('TargetOwned', targetOwnedMessage(target, owner));
      return live;
    }
    const { uid, generation } = tq.metadata;
    const options = this.#workerResources ? { defaultResources: this.#workerResources } : {};
    // Built once per generation; only its hash is kept between polls (the object is built again to apply).
    let desired: unknown;
    let built = state.built;
    if (!built || built.uid !== uid || built.generation !== generation) {
      desired = buildWorkerDeployment(tq, options);
      built = { uid, generation, hash: hashOf(desired) };
      state.built = built;
    }
    const name = workerDeploymentName(tq.metadata.name);
    const cached = this.#cache.deployment(namespace, name);
    const live = cached?.deployment;
    const applied = state.applied;
    if (
      live &&
      applied &&
      !(live.metadata as { deletionTimestamp?: string }).deletionTimestamp &&
      applied.desired === built.hash &&
      applied.uid === live.metadata.uid &&
      applied.live === cached.drift &&
      now - applied.at < this.#resyncMs * (1 + phase(key) / 4)
    ) {
      return live;
    }
    desired ??= buildWorkerDeployment(tq, options);
    // The cache holds only Deployments labelled as managed: one it does not show as ours is read, so that a
    // user's Deployment of that name is never overwritten by the forced apply. (Created between this read
    // and the apply, it would be; docs/security.md says so.)
    const controlled = live?.metadata.ownerReferences?.some((o) => o.controller && o.uid === uid);
    const conflict = managedNameConflict(tq, controlled ? live : await this.#kube.find<Deployment>(deployment(name)));
    if (conflict) throw new TargetRefusedError('DeploymentConflict', conflict);
    const result = await this.#kube.apply<Deployment>(deployment(name), desired, FIELD_MANAGER);
    state.applied = { desired: built.hash, live: driftHash(result), uid: result.metadata.uid, at: now };
    return result;
  }

  /** Where the queue's broker is, with what the spec takes from Secrets read. */
  async #brokerTarget(tq: TaskQueue): Promise<BrokerTarget> {
    const queue = tq.spec.queue ?? tq.metadata.name;
    const { redis, kafka } = tq.spec.broker;
    if (kafka) return this.#kafkaTarget(tq, kafka, queue);
    if (!redis) {
      throw new BrokerConfigError(
        'UnsupportedBroker',
        'spec.broker names no broker this operator can probe: set spec.broker.redis or spec.broker.kafka',
      );
    }
    const url = await this.#secretOrValue(tq, redis.url, redis.urlFrom, 'spec.broker.redis');
    return { kind: 'redis', url, prefix: redis.prefix ?? DEFAULT_PREFIX, queue };
  }

  /** With `--read-secrets=false`: the error of a probe that would need the Secret `field` names. */
  #secretsNotRead(field: string, instead: string): BrokerConfigError {
    return new BrokerConfigError(
      'SecretsNotRead',
      `${field} names a Secret, and this operator reads no Secrets (--read-secrets=false): it cannot measure this queue, so the replicas follow spec.scaling.fallback. To measure it, ${instead}`,
    );
  }

  async #kafkaTarget(
    tq: TaskQueue,
    kafka: NonNullable<TaskQueue['spec']['broker']['kafka']>,
    queue: string,
  ): Promise<KafkaTarget> {
    const field = 'spec.broker.kafka';
    const prefix = kafka.prefix ?? DEFAULT_PREFIX;
    if (!/^[A-Za-z0-9._-]+$/.test(`${prefix}.${queue}`)) {
      throw new BrokerConfigError(
        'InvalidSpec',
        `queue ${queue} (prefix ${prefix}) cannot name Kafka topics: use letters, digits, ., _ and - only`,
      );
    }
    const target: KafkaTarget = { kind: 'kafka', brokers: kafka.brokers, prefix, queue };
    if (!this.#readSecrets) {
      if (kafka.sasl) {
        throw this.#secretsNotRead(
          `${field}.sasl.secretRef`,
          'the operator needs a listener it may use without credentials: run it with --read-secrets=true, or rely on fallback replicas',
        );
      }
      const file = (['caFrom', 'certFrom', 'keyFrom'] as const).find((f) => kafka.tls?.[f]);
      if (file) {
        throw this.#secretsNotRead(
          `${field}.tls.${file}`,
          'use a listener whose certificate the system CAs trust, without a client certificate (tls.enabled only)',
        );
      }
    }
    // Each Secret is read once per probe, however many keys are taken from it.
    const secrets = new Map<string, Promise<Record<string, string> | undefined>>();
    const read = (ref: SecretKeySelector, where: string, problem: (value: string) => string | undefined) => {
      const { name, key } = ref.secretKeyRef;
      let secret = secrets.get(name);
      if (!secret) {
        secret = this.#secretData(tq, name);
        secrets.set(name, secret);
      }
      return this.#secretKey(tq, secret, name, key, where, problem);
    };
    const { tls, sasl } = kafka;
    if (tls?.enabled) {
      const [ca, cert, key] = await Promise.all([
        tls.caFrom && read(tls.caFrom, `${field}.tls.caFrom`, (v) => pemProblem(v, 'CERTIFICATE')),
        tls.certFrom && read(tls.certFrom, `${field}.tls.certFrom`, (v) => pemProblem(v, 'CERTIFICATE')),
        tls.keyFrom && read(tls.keyFrom, `${field}.tls.keyFrom`, (v) => pemProblem(v, 'PRIVATE KEY')),
      ]);
      target.tls =
        ca !== undefined || cert !== undefined
          ? {
              ...(ca !== undefined ? { ca } : {}),
              ...(cert !== undefined ? { cert } : {}),
              ...(key !== undefined ? { key } : {}),
            }
          : true;
    }
    if (sasl) {
      const ref = (key: string) => ({ secretKeyRef: { name: sasl.secretRef.name, key } });
      const [username, password] = await Promise.all([
        read(ref('username'), `${field}.sasl.secretRef`, credentialProblem),
        read(ref('password'), `${field}.sasl.secretRef`, credentialProblem),
      ]);
      target.sasl = { mechanism: sasl.mechanism, username, password };
    }
    return target;
  }

  async #secretOrValue(
    tq: TaskQueue,
    value: string | undefined,
    from: { secretKeyRef: { name: string; key: string } } | undefined,
    field: string,
  ): Promise<string> {
    if (value !== undefined) {
      // Inline, so no secret; the current CRD checks the scheme, an older one may not have.
      if (redisUrlProblem(value)) {
        throw new BrokerConfigError('InvalidSpec', `${field}.url is not a redis:// or rediss:// URL`);
      }
      return value;
    }
    if (!from) throw new BrokerConfigError('InvalidSpec', `${field} has neither url nor urlFrom`);
    if (!this.#readSecrets) {
      throw this.#secretsNotRead(
        `${field}.urlFrom`,
        `set ${field}.url to a URL without credentials instead (a Redis the operator's and the workers' pods may use without a password)`,
      );
    }
    const { name, key } = from.secretKeyRef;
    return this.#secretKey(tq, this.#secretData(tq, name), name, key, `${field}.urlFrom`, redisUrlProblem);
  }

  /** A Secret's data (base64 values), or undefined when it does not exist. */
  async #secretData(tq: TaskQueue, name: string): Promise<Record<string, string> | undefined> {
    // Never reached with --read-secrets=false: every caller refuses first, and this is the last guard.
    if (!this.#readSecrets) throw new BrokerConfigError('SecretsNotRead', 'this operator reads no Secrets');
    const secret = await this.#kube.find<{ data?: Record<string, string> }>(
      apiPath({ group: '', version: 'v1', resource: 'secrets', namespace: tq.metadata.namespace as string, name }),
    );
    return secret ? (secret.data ?? {}) : undefined;
  }

  /**
   * One key of a Secret, decoded and recorded in the reconcile's scrubber. A missing Secret or key is a
   * SecretNotFound condition naming `field`; a value `problem` finds wrong is InvalidSecretValue, in words
   * that describe it and never quote it.
   */
  async #secretKey(
    tq: TaskQueue,
    data: Promise<Record<string, string> | undefined>,
    name: string,
    key: string,
    field: string,
    problem: (value: string) => string | undefined,
  ): Promise<string> {
    const values = await data;
    if (!values) throw new BrokerConfigError('SecretNotFound', `Secret ${name} (${field}) does not exist`);
    const encoded = values[key];
    if (encoded === undefined)
      throw new BrokerConfigError('SecretNotFound', `Secret ${name} has no key ${key} (${field})`);
    const value = this.#scrub(tq).secret(Buffer.from(encoded, 'base64').toString('utf8'));
    const wrong = problem(value);
    if (wrong) throw new BrokerConfigError('InvalidSecretValue', `Secret ${name} key ${key} (${field}) ${wrong}`);
    return value;
  }

  /**
   * Before a scale-down, tells the ReplicaSet controller which pods are busy: pod-deletion-cost = the
   * calls each pod is running now, so idle pods are removed first. Now, not as of the last heartbeat
   * (up to an interval old, in which a busy worker goes idle and an idle one busy): the workers are asked
   * for a heartbeat at once, and waited for briefly (see {@link #inFlightByPod}). What this does not
   * guarantee is in docs/scaling.md (spareBusyWorkers).
   */
  async #markBusyPods(tq: TaskQueue, deployment: Deployment): Promise<void> {
    const backend = tq.spec.resultBackend?.redis;
    const labels = deployment.spec?.selector?.matchLabels;
    if (!backend || !labels) return; // no heartbeats without a result backend: nothing to rank by
    const url = await this.#secretOrValue(tq, backend.url, backend.urlFrom, 'spec.resultBackend.redis');
    const control = this.#control(url, backend.prefix ?? DEFAULT_PREFIX);
    const selector = Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(',');
    const pods = await this.#kube.get<{
      items: { metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string } }[];
    }>(apiPath({ group: '', version: 'v1', resource: 'pods', namespace: tq.metadata.namespace as string }), {
      labelSelector: selector,
    });
    const live = pods.items.filter((pod) => !pod.metadata.deletionTimestamp); // those going already do not count
    const busy = await this.#inFlightByPod(control, tq.spec.queue ?? tq.metadata.name, live);
    await Promise.all(
      live.map(async (pod) => {
        const cost = String(busy.get(pod.metadata.name) ?? 0);
        if (pod.metadata.annotations?.[POD_DELETION_COST] === cost) return;
        await this.#kube.patch(
          apiPath({
            group: '',
            version: 'v1',
            resource: 'pods',
            namespace: tq.metadata.namespace as string,
            name: pod.metadata.name,
          }),
          { metadata: { annotations: { [POD_DELETION_COST]: cost } } },
          'merge',
        );
      }),
    );
  }

  /**
   * Calls in flight per pod, fresh: every worker of the queue is asked to write its heartbeat now
   * (Control.report), and those running in the Deployment's pods are waited for, 500 ms at most. A
   * worker that does not answer in time is counted from its last heartbeat; a pod without a worker (not
   * started yet) is idle. Of two heartbeats with one pod's name (a container restarted: the old one's
   * heartbeat has not expired yet), the fresh one counts, else the newer.
   */
  async #inFlightByPod(
    control: Control,
    queue: string,
    pods: readonly { metadata: { name: string } }[],
  ): Promise<Map<string, number>> {
    const names = new Set(pods.map((p) => p.metadata.name));
    const { workers, answered } = await control.report(queue, {
      timeoutMs: 500,
      expect: (w) => names.has(w.hostname),
    });
    const best = new Map<string, { fresh: boolean; at: number; active: number }>();
    for (const w of workers) {
      const fresh = answered.has(w.id);
      const current = best.get(w.hostname);
      if (current && (current.fresh > fresh || (current.fresh === fresh && current.at >= w.at))) continue;
      best.set(w.hostname, { fresh, at: w.at, active: w.active.length });
    }
    return new Map([...best].map(([pod, { active }]) => [pod, active]));
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

  /**
   * Writes the status if it changed. The patch carries the resourceVersion of the TaskQueue it was
   * computed from: a status built on a cached copy that is behind (our own last write not yet seen) fails
   * with a conflict and is computed again, instead of overwriting what it did not know.
   */
  async #writeStatus(tq: TaskQueue, status: TaskQueueStatus): Promise<void> {
    if (sameStatus(tq.status, status)) return;
    await this.#kube.patch(
      apiPath({
        group: GROUP,
        version: VERSION,
        resource: PLURAL,
        namespace: tq.metadata.namespace as string,
        name: tq.metadata.name,
        subresource: 'status',
      }),
      { metadata: { resourceVersion: tq.metadata.resourceVersion }, status },
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
    message = this.#scrub(tq).text(message);
    const now = this.#now();
    const last = state.events.get(reason);
    if (!always && last && last.message === message && now - last.at < 300_000) return;
    state.events.set(reason, { message, at: now });
    // What the Event says, the log says too (as often), for whoever reads the operator rather than the namespace.
    if (type === 'Warning') {
      this.#say(tq, 'warning', { taskqueue: `${tq.metadata.namespace}/${tq.metadata.name}`, reason, message });
    }
    const time = new Date(now).toISOString();
    try {
      await this.#kube.post(
        apiPath({ group: '', version: 'v1', resource: 'events', namespace: tq.metadata.namespace as string }),
        {
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
        },
      );
    } catch (error) {
      if (!(error instanceof KubeApiError)) throw error;
      this.#say(tq, 'could not record an event', { reason, error: error.message });
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#controls.values()].map((c) => c.close()));
  }
}

/**
 * What of a live Deployment the operator's apply decides, or another writer could change under it:
 * labels, owner references and the spec but for replicas (the scaler's). Status, annotations (the
 * Deployment controller's revision) and bookkeeping are left out, so they do not count as drift.
 */
export function driftHash(deployment: Deployment): string {
  const { labels, ownerReferences } = deployment.metadata;
  const { replicas: _replicas, ...spec } = deployment.spec ?? {};
  return hashOf({ labels, ownerReferences, spec });
}

/** A stable number in [0, 1) per key, to spread the queues' resyncs instead of doing them all at once. */
function phase(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return (h >>> 0) / 2 ** 32;
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
