import type { V1ResourceRequirements } from '@kubernetes/client-node';
import type { TaskQueue, TaskQueueStatus } from '../api/types.ts';
import type { ProbePool } from '../probes/probe.ts';
import type { KubeClient } from '../runtime/kube-client.ts';
import type { OperatorMetrics, QueueObservation } from '../runtime/metrics.ts';
import { type Decision, decide, EMPTY_HISTORY, type Observation } from '../scaling/policy.ts';
import { ResultBackends } from './broker-target.ts';
import {
  type Deployment,
  type DeploymentCache,
  type DriftContext,
  type DriftState,
  targetDeployment,
} from './drift.ts';
import type { Refusal } from './errors.ts';
import { eventRecorder, type RecordedEvents } from './events.ts';
import { type ProbeContext, type ProbeState, probeBroker } from './probe-broker.ts';
import { type ScaleContext, type ScaleState, scale } from './scale.ts';
import { fireSchedules, type ScheduleContext, type ScheduleState } from './schedules.ts';
import { type LogLine, Scrubber, scrubbedLog } from './scrub.ts';
import { ConditionDraft, decisionConditions, queueStatus, refusedStatus, writeStatus } from './status.ts';
import { specRefusal } from './validate.ts';

/**
 * What the informers last delivered: every TaskQueue, and every Deployment the operator manages (label
 * app.kubernetes.io/managed-by=taskfleet). Reading these instead of the API server is what lets one
 * operator poll thousands of queues; writes carry the resourceVersion they were decided on, so a cache
 * that is behind makes a write fail with a conflict (retried), never overwrite newer data.
 */
export interface ReconcilerCache extends DeploymentCache {
  taskQueue(namespace: string, name: string): TaskQueue | undefined;
}

/** What the reconciler keeps of a queue between polls: each step's part of it. */
interface QueueState extends DriftState, ProbeState, ScheduleState, ScaleState {
  events: RecordedEvents;
}

/** What the steps of one reconcile use: the operator's clients, and this reconcile's scrubber, log and Events. */
type StepContext = DriftContext & ProbeContext & ScheduleContext & ScaleContext;

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
  log?: LogLine;
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
  readonly #log: LogLine;
  readonly #state = new Map<string, QueueState>();
  readonly #resultBackends = new ResultBackends();

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
    try {
      return await this.#reconcile(key, scrub);
    } catch (error) {
      throw scrub.error(error);
    }
  }

  /**
   * The steps, each in its own module: check the spec → find (and apply) the Deployment → probe the
   * broker → fire due schedules → decide (pure) → scale → write status and metrics → requeue.
   */
  async #reconcile(key: string, scrub: Scrubber): Promise<Result> {
    const [namespace, name] = key.split('/') as [string, string];
    const tq = this.#cache.taskQueue(namespace, name);
    if (!tq || (tq.metadata as { deletionTimestamp?: string }).deletionTimestamp) {
      // Its Deployment goes with it (owner reference); broker data is never touched.
      this.#state.delete(key);
      this.#metrics.forget(namespace, name);
      return {};
    }
    const state = this.#stateOf(key);
    const now = this.#now();
    const ctx = this.#context(tq, state, scrub);

    const invalid = specRefusal(tq);
    if (invalid) return this.#refuse(ctx, tq, invalid, now);
    const target = await targetDeployment(ctx, key, tq, state, now);
    if ('refused' in target) return this.#refuse(ctx, tq, target.refused, now);
    const { deployment } = target;
    const replicas = { current: deployment.spec?.replicas ?? 0, ready: deployment.status?.readyReplicas ?? 0 };
    const probe = await probeBroker(ctx, tq, state, replicas);
    const conditions = new ConditionDraft(scrub);
    conditions.add(probe.reachable);
    // Periodic tasks fire from the leader's reconcile: at most every poll, and at the next tick if sooner.
    const schedules = await fireSchedules(ctx, tq, state, probe.target, now);
    const decision = decide(tq.spec.scaling, probe.observation, state.history, now);
    const lastScale = await scale(ctx, tq, state, deployment, decision, now);
    conditions.add(...decisionConditions(tq, probe.observation, decision));
    const status = queueStatus(tq, {
      conditions: conditions.conditions(tq, now),
      observation: probe.observation,
      reading: probe.reading,
      decision,
      replicas: deployment.status?.replicas ?? 0,
      readyReplicas: replicas.ready,
      lastScale,
      schedules: schedules?.status,
    });
    await writeStatus(this.#kube, tq, status);
    this.#metrics.observeQueue(key, namespace, name, queueGauges(status, probe.observation, decision, deployment), now);
    const pollMs = pollIntervalMs(tq);
    const untilTick = schedules?.nextDueAt === undefined ? pollMs : Math.max(0, schedules.nextDueAt - this.#now());
    return { requeueAfterMs: Math.min(pollMs, untilTick) };
  }

  #stateOf(key: string): QueueState {
    const state: QueueState = this.#state.get(key) ?? { history: EMPTY_HISTORY, events: new Map() };
    this.#state.set(key, state);
    return state;
  }

  /** The steps' context for one reconcile of `tq`: its Events are `tq`'s, its log lines and Secrets `scrub`'s. */
  #context(tq: TaskQueue, state: QueueState, scrub: Scrubber): StepContext {
    const say = scrubbedLog(this.#log, scrub);
    const secrets = { kube: this.#kube, readSecrets: this.#readSecrets, scrub };
    const events = { kube: this.#kube, identity: this.#identity, clock: this.#now, scrub, say };
    return {
      ...secrets,
      cache: this.#cache,
      resyncMs: this.#resyncMs,
      workerResources: this.#workerResources,
      probes: this.#probes,
      metrics: this.#metrics,
      clock: this.#now,
      say,
      event: eventRecorder(events, tq, state.events),
      resultBackend: () => this.#resultBackends.control(secrets, tq),
    };
  }

  /** A reconcile stopped short: `Ready=False` and a Warning Event; polled again only if the refusal says so. */
  async #refuse(ctx: StepContext, tq: TaskQueue, refusal: Refusal, now: number): Promise<Result> {
    const status = refusedStatus(tq, refusal, ctx.scrub, now);
    await ctx.event('Warning', refusal.reason, refusal.message);
    await writeStatus(this.#kube, tq, status);
    return refusal.retry ? { requeueAfterMs: pollIntervalMs(tq) } : {};
  }

  async close(): Promise<void> {
    await this.#resultBackends.close();
  }
}

function pollIntervalMs(tq: TaskQueue): number {
  return (tq.spec.scaling?.pollIntervalSeconds ?? 2) * 1000;
}

/** The queue's gauges, from the status just written. */
function queueGauges(
  status: TaskQueueStatus,
  observation: Observation,
  decision: Decision,
  deployment: Deployment,
): QueueObservation {
  const backlog = observation.ok ? observation.backlog : undefined;
  return {
    ...(backlog ? { backlog } : {}),
    ...(status.rates?.arrival !== undefined ? { arrival: status.rates.arrival } : {}),
    ...(status.rates?.completion !== undefined ? { completion: status.rates.completion } : {}),
    desired: decision.replicas,
    current: deployment.status?.replicas ?? 0,
    ready: deployment.status?.readyReplicas ?? 0,
  };
}
