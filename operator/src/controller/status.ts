import type { Condition, ConditionType, TaskQueueStatus } from '../api/types.ts';

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
  const previous = conditions.find((c) => c.type === type);
  const next: Condition = {
    type,
    status,
    reason,
    message,
    lastTransitionTime: previous && previous.status === status ? previous.lastTransitionTime : now.toISOString(),
    ...(generation !== undefined ? { observedGeneration: generation } : {}),
  };
  return [...conditions.filter((c) => c.type !== type), next].sort(
    (a, b) => order.indexOf(a.type) - order.indexOf(b.type),
  );
}

const order: ConditionType[] = ['Ready', 'BrokerReachable', 'Active', 'ScalingLimited', 'Fallback', 'Paused'];

/** Status fields compared for "did anything change" (rates rounded so noise does not cause writes). */
export function sameStatus(a: TaskQueueStatus | undefined, b: TaskQueueStatus): boolean {
  return JSON.stringify(normalise(a ?? {})) === JSON.stringify(normalise(b));
}

function normalise(s: TaskQueueStatus): unknown {
  const round = (x: number | undefined) => (x === undefined ? undefined : Math.round(x * 100) / 100);
  return {
    ...s,
    rates: s.rates && {
      arrival: round(s.rates.arrival),
      completion: round(s.rates.completion),
      perReplica: round(s.rates.perReplica),
    },
    conditions: [...(s.conditions ?? [])].sort((x, y) => x.type.localeCompare(y.type)),
  };
}
