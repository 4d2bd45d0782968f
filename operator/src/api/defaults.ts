/**
 * Every default of the TaskQueue spec, in one place. The CRD's `default:` values are written from these
 * (api/schema.ts and the broker fragments), so the API server fills them in on admission; the operator
 * applies the same values again where it reads a field (scaling/spec.ts, controller/deployment.ts, the
 * reconciler), because a TaskQueue in a test, a dry run or admitted under an older CRD may lack them.
 *
 * Frozen all the way down: the policy hands out these very objects (the default scaling policies), and a
 * caller that changed one would change every queue's.
 */

/** Prefix of the Redis keys (spec.broker.redis, spec.resultBackend.redis) and of the Kafka topics and group. */
export const DEFAULT_PREFIX = 'tf';

/** spec.broker.kafka. */
export const KAFKA_DEFAULTS = frozen({
  /** Partitions of the topics the workers create (topics that exist keep theirs). */
  partitions: 12,
  allowIdleConsumers: false,
} as const);

/** spec.worker. */
export const WORKER_DEFAULTS = frozen({
  concurrency: 16,
  terminationGracePeriodSeconds: 300,
  metricsPort: 9090,
} as const);

/** spec.scaleTargetRef: an apps/v1 Deployment, the only kind it may name. */
export const SCALE_TARGET_DEFAULTS = frozen({ apiVersion: 'apps/v1', kind: 'Deployment' } as const);

/** spec.scaling. */
export const SCALING_DEFAULTS = frozen({
  minReplicas: 0,
  maxReplicas: 10,
  pollIntervalSeconds: 2,
  targetBacklogPerReplica: 100,
  activationBacklog: 0,
  idleSecondsBeforeZero: 120,
  tolerance: 0.1,
  /** The HPA's default scale-up: double, or add 4 pods, every 15 s, whichever is more; no stabilization. */
  scaleUp: {
    stabilizationSeconds: 0,
    policies: [
      { type: 'Percent', value: 100, periodSeconds: 15 },
      { type: 'Pods', value: 4, periodSeconds: 15 },
    ],
    selectPolicy: 'Max',
  },
  /**
   * The HPA's default scale-down (any amount every 15 s), but with a 120 s stabilization window instead
   * of the HPA's 300 s: it matches `idleSecondsBeforeZero`, so a fleet shrinks to one replica and to zero
   * on the same clock.
   */
  scaleDown: {
    stabilizationSeconds: 120,
    policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }],
    selectPolicy: 'Max',
  },
  fallback: { afterFailures: 3 },
  paused: false,
  spareBusyWorkers: true,
} as const);

/** Each of spec.schedules. */
export const SCHEDULE_DEFAULTS = frozen({ timeZone: 'UTC', missed: 'fire-once' } as const);

function frozen<T extends object>(value: T): T {
  for (const member of Object.values(value)) if (typeof member === 'object' && member !== null) frozen(member);
  return Object.freeze(value);
}
