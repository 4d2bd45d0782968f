import {
  CONDITION_TYPES,
  type Condition,
  type ConditionType,
  GROUP,
  PLURAL,
  type TaskQueue,
  type TaskQueueStatus,
  VERSION,
} from '../api/types.ts';
import type { KubeClient } from '../runtime/kube-client.ts';
import { apiPath } from '../runtime/kube-path.ts';
import type { Backlog, Decision, Limit, Observation } from '../scaling/policy.ts';
import type { Refusal } from './errors.ts';
import { sameStatus } from './same-status.ts';
import type { Scrubber } from './scrub.ts';

/** One condition as a reconcile decides it; {@link setConditions} adds the times and generation. */
export interface ConditionUpdate {
  type: ConditionType;
  status: Condition['status'];
  reason: string;
  message: string;
}

/**
 * Sets a condition, keeping its lastTransitionTime unless its status changes — so an unchanged world
 * produces an identical status, and no write.
 */
export function setCondition(
  conditions: Condition[],
  type: ConditionType,
  status: Condition['status'],
  reason: string,
  message: string,
  generation: number | undefined,
  now: Date,
): Condition[] {
  return setConditions(conditions, [{ type, status, reason, message }], generation, now);
}

/** {@link setCondition} for several conditions at once (a later update of the same type wins). */
export function setConditions(
  conditions: readonly Condition[],
  updates: readonly ConditionUpdate[],
  generation: number | undefined,
  now: Date,
): Condition[] {
  // Keyed by any type: a condition another writer set is kept as it is.
  const byType = new Map<string, Condition>();
  for (const c of conditions) byType.set(c.type, c);
  for (const { type, status, reason, message } of updates) {
    const previous = conditions.find((c) => c.type === type);
    byType.set(type, {
      type,
      status,
      reason,
      message,
      lastTransitionTime: previous && previous.status === status ? previous.lastTransitionTime : now.toISOString(),
      ...(generation !== undefined ? { observedGeneration: generation } : {}),
    });
  }
  return [...byType.values()].sort((a, b) => order.indexOf(a.type) - order.indexOf(b.type));
}

/** The order conditions are listed in; those of other writers (not in it) come first. */
const order: readonly string[] = CONDITION_TYPES;

/**
 * The conditions one reconcile decides, one by one, set together at the end (so unchanged ones keep
 * their transition times). Each message passes the reconcile's scrubber as it is decided.
 */
export class ConditionDraft {
  readonly #scrub: Pick<Scrubber, 'text'>;
  readonly #updates: ConditionUpdate[] = [];

  constructor(scrub: Pick<Scrubber, 'text'>) {
    this.#scrub = scrub;
  }

  add(...updates: ConditionUpdate[]): void {
    for (const update of updates) this.#updates.push({ ...update, message: this.#scrub.text(update.message) });
  }

  /** The TaskQueue's conditions with those decided set, at `now`, for its generation. */
  conditions(tq: TaskQueue, now: number): Condition[] {
    return setConditions(tq.status?.conditions ?? [], this.#updates, tq.metadata.generation, new Date(now));
  }
}

/** The status of a reconcile refused (see {@link Refusal}) at `now`: `Ready=False`, the rest as it was. */
export function refusedStatus(
  tq: TaskQueue,
  refusal: Refusal,
  scrub: Pick<Scrubber, 'text'>,
  now: number,
): TaskQueueStatus {
  const draft = new ConditionDraft(scrub);
  draft.add({ type: 'Ready', status: 'False', reason: refusal.reason, message: refusal.message });
  return { ...tq.status, observedGeneration: tq.metadata.generation, conditions: draft.conditions(tq, now) };
}

/** The conditions a decision sets: all but BrokerReachable (the probe's). */
export function decisionConditions(tq: TaskQueue, observation: Observation, decision: Decision): ConditionUpdate[] {
  const paused = tq.spec.scaling?.paused;
  return [
    {
      type: 'Ready',
      status: observation.ok ? 'True' : 'False',
      reason: observation.ok ? 'Scaling' : 'BrokerUnreachable',
      message: decision.reason,
    },
    observation.ok
      ? {
          type: 'Active',
          status: decision.active ? 'True' : 'False',
          reason: decision.active ? 'Backlog' : 'Idle',
          message: decision.active ? 'the queue has work' : 'the queue is idle',
        }
      : { type: 'Active', status: 'Unknown', reason: 'BrokerUnreachable', message: 'the broker could not be probed' },
    {
      type: 'ScalingLimited',
      status: decision.limitedBy ? 'True' : 'False',
      reason: decision.limitedBy ? limitReason(decision.limitedBy) : 'WithinLimits',
      message: decision.reason,
    },
    {
      type: 'Fallback',
      status: decision.fallback ? 'True' : 'False',
      reason: decision.fallback ? 'ProbesFailing' : 'Probing',
      message: decision.fallback ? decision.reason : 'probes succeed',
    },
    {
      type: 'Paused',
      status: paused ? 'True' : 'False',
      reason: paused ? 'Paused' : 'Running',
      message: paused ? 'spec.scaling.paused is true' : 'scaling is on',
    },
  ];
}

/** ScalingLimited's reason, by the step that held the count back. */
function limitReason(limit: Limit): string {
  const reasons: Record<string, string> = {
    max: 'TooManyReplicas',
    min: 'TooFewReplicas',
    partitions: 'PartitionCount',
    scaleUpPolicy: 'ScaleUpLimit',
    scaleDownPolicy: 'ScaleDownLimit',
    stabilization: 'Stabilizing',
  };
  return reasons[limit] ?? 'Limited';
}

/** What a reconcile found and did, for the status it writes. */
export interface Outcome {
  conditions: Condition[];
  observation: Observation;
  /** The broker's numbers, when the probe succeeded. */
  reading: { backlog: Backlog } | undefined;
  decision: Decision;
  /** The Deployment's. */
  replicas: number;
  readyReplicas: number;
  lastScale: { time: string; reason: string } | undefined;
  schedules: TaskQueueStatus['schedules'] | undefined;
}

/**
 * The status after a reconcile. What it did not learn this time (the backlog, when the probe failed;
 * the last scale, when it did not scale) stays as it was.
 */
export function queueStatus(tq: TaskQueue, outcome: Outcome): TaskQueueStatus {
  const { observation, reading, decision, lastScale, schedules } = outcome;
  const backlog = observation.ok ? observation.backlog : undefined;
  return {
    observedGeneration: tq.metadata.generation,
    conditions: outcome.conditions,
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
    replicas: outcome.replicas,
    readyReplicas: outcome.readyReplicas,
    desiredReplicas: decision.replicas,
    ...(lastScale
      ? { lastScaleTime: lastScale.time, lastScaleReason: lastScale.reason }
      : {
          ...(tq.status?.lastScaleTime ? { lastScaleTime: tq.status.lastScaleTime } : {}),
          ...(tq.status?.lastScaleReason ? { lastScaleReason: tq.status.lastScaleReason } : {}),
        }),
    brokerKind: tq.spec.broker.kafka ? 'kafka' : 'redis',
    ...(schedules ? { schedules } : {}),
    ...(backlog
      ? { backlogTotal: backlog.ready + backlog.delayed + backlog.inFlight }
      : tq.status?.backlogTotal !== undefined
        ? { backlogTotal: tq.status.backlogTotal }
        : {}),
  };
}

/**
 * Writes the status if it changed. The patch carries the resourceVersion of the TaskQueue it was
 * computed from: a status built on a cached copy that is behind (our own last write not yet seen) fails
 * with a conflict and is computed again, instead of overwriting what it did not know.
 */
export async function writeStatus(
  kube: Pick<KubeClient, 'patch'>,
  tq: TaskQueue,
  status: TaskQueueStatus,
): Promise<void> {
  if (sameStatus(tq.status, status)) return;
  await kube.patch(
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
