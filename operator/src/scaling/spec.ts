/**
 * A `ScalingSpec` with every default filled in, so the policy reads one shape and never asks "is this
 * set?". The CRD already rejects out-of-range values; this module still makes the policy total: a value
 * the API server should have refused (negative, not finite, `minReplicas > maxReplicas`) is replaced by
 * its default or clamped, never thrown on, because a controller that throws on every poll helps nobody.
 */
import type { ScalingPolicy, ScalingRules, ScalingSpec } from '../api/types.ts';

/** One direction's behaviour (the HPA's `HPAScalingRules`) after defaulting. */
export interface ResolvedRules {
  readonly stabilizationSeconds: number;
  /** Never empty unless `selectPolicy` is `Disabled`. */
  readonly policies: readonly ScalingPolicy[];
  readonly selectPolicy: 'Max' | 'Min' | 'Disabled';
}

export interface ResolvedScaling {
  readonly minReplicas: number;
  /** At least `minReplicas`. */
  readonly maxReplicas: number;
  readonly targetBacklogPerReplica: number;
  /** Set (and positive) only in the throughput-aware mode. */
  readonly targetDrainSeconds: number | undefined;
  readonly activationBacklog: number;
  readonly idleSecondsBeforeZero: number;
  readonly tolerance: number;
  readonly scaleUp: ResolvedRules;
  readonly scaleDown: ResolvedRules;
  /** Absent when no fallback is configured: failed probes then hold the current replicas. */
  readonly fallback: { readonly replicas: number; readonly afterFailures: number } | undefined;
  readonly paused: boolean;
}

export const DEFAULT_MIN_REPLICAS = 0;
export const DEFAULT_MAX_REPLICAS = 10;
export const DEFAULT_TARGET_BACKLOG_PER_REPLICA = 100;
export const DEFAULT_ACTIVATION_BACKLOG = 0;
export const DEFAULT_IDLE_SECONDS_BEFORE_ZERO = 120;
export const DEFAULT_TOLERANCE = 0.1;
export const DEFAULT_FALLBACK_AFTER_FAILURES = 3;

/** The HPA's default scale-up: double, or add 4 pods, every 15 s, whichever is more; no stabilization. */
export const DEFAULT_SCALE_UP: ResolvedRules = Object.freeze({
  stabilizationSeconds: 0,
  policies: Object.freeze([
    Object.freeze({ type: 'Percent', value: 100, periodSeconds: 15 }),
    Object.freeze({ type: 'Pods', value: 4, periodSeconds: 15 }),
  ]),
  selectPolicy: 'Max',
} as const);

/**
 * The HPA's default scale-down (any amount every 15 s), but with a 120 s stabilization window instead of
 * the HPA's 300 s: it matches `idleSecondsBeforeZero`, so a fleet shrinks to one replica and to zero on
 * the same clock.
 */
export const DEFAULT_SCALE_DOWN: ResolvedRules = Object.freeze({
  stabilizationSeconds: 120,
  policies: Object.freeze([Object.freeze({ type: 'Percent', value: 100, periodSeconds: 15 })]),
  selectPolicy: 'Max',
} as const);

/** Fills in the defaults of `spec` (which may be absent: a TaskQueue without `scaling`). */
export function resolveScaling(spec: ScalingSpec | undefined): ResolvedScaling {
  const s = spec ?? {};
  const minReplicas = count(s.minReplicas, DEFAULT_MIN_REPLICAS);
  const maxReplicas = Math.max(minReplicas, count(s.maxReplicas, DEFAULT_MAX_REPLICAS));
  const fallback =
    s.fallback && isCount(s.fallback.replicas)
      ? {
          replicas: Math.floor(s.fallback.replicas),
          afterFailures: Math.max(1, count(s.fallback.afterFailures, DEFAULT_FALLBACK_AFTER_FAILURES)),
        }
      : undefined;
  return {
    minReplicas,
    maxReplicas,
    targetBacklogPerReplica: positive(s.targetBacklogPerReplica) ?? DEFAULT_TARGET_BACKLOG_PER_REPLICA,
    targetDrainSeconds: positive(s.targetDrainSeconds),
    activationBacklog: nonNegative(s.activationBacklog) ?? DEFAULT_ACTIVATION_BACKLOG,
    idleSecondsBeforeZero: nonNegative(s.idleSecondsBeforeZero) ?? DEFAULT_IDLE_SECONDS_BEFORE_ZERO,
    tolerance: nonNegative(s.tolerance) ?? DEFAULT_TOLERANCE,
    scaleUp: resolveRules(s.scaleUp, DEFAULT_SCALE_UP),
    scaleDown: resolveRules(s.scaleDown, DEFAULT_SCALE_DOWN),
    fallback,
    paused: s.paused === true,
  };
}

/** Like the HPA, each field of a direction defaults on its own: `{stabilizationSeconds: 60}` keeps the default policies. */
function resolveRules(rules: ScalingRules | undefined, defaults: ResolvedRules): ResolvedRules {
  const policies = (rules?.policies ?? []).filter(
    (p) => (p.type === 'Pods' || p.type === 'Percent') && positive(p.value) && positive(p.periodSeconds),
  );
  const selectPolicy = rules?.selectPolicy;
  return {
    stabilizationSeconds: nonNegative(rules?.stabilizationSeconds) ?? defaults.stabilizationSeconds,
    policies: policies.length > 0 ? policies : defaults.policies,
    selectPolicy:
      selectPolicy === 'Max' || selectPolicy === 'Min' || selectPolicy === 'Disabled'
        ? selectPolicy
        : defaults.selectPolicy,
  };
}

function isCount(n: number | undefined): n is number {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0;
}

function count(n: number | undefined, fallback: number): number {
  return isCount(n) ? Math.floor(n) : fallback;
}

function positive(n: number | undefined): number | undefined {
  return typeof n === 'number' && Number.isFinite(n) && n > 0 ? n : undefined;
}

function nonNegative(n: number | undefined): number | undefined {
  return isCount(n) ? n : undefined;
}
