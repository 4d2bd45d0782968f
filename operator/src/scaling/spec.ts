/**
 * A `ScalingSpec` with every default filled in, so the policy reads one shape and never asks "is this
 * set?". The CRD already rejects out-of-range values; this module still makes the policy total: a value
 * the API server should have refused (negative, not finite, `minReplicas > maxReplicas`) is replaced by
 * its default or clamped, never thrown on, because a controller that throws on every poll helps nobody.
 * The defaults are the CRD's own, from api/defaults.ts.
 */
import { SCALING_DEFAULTS } from '../api/defaults.ts';
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

/** Fills in the defaults of `spec` (which may be absent: a TaskQueue without `scaling`). */
export function resolveScaling(spec: ScalingSpec | undefined): ResolvedScaling {
  const s = spec ?? {};
  const minReplicas = count(s.minReplicas, SCALING_DEFAULTS.minReplicas);
  const maxReplicas = Math.max(minReplicas, count(s.maxReplicas, SCALING_DEFAULTS.maxReplicas));
  const fallback =
    s.fallback && isCount(s.fallback.replicas)
      ? {
          replicas: Math.floor(s.fallback.replicas),
          afterFailures: Math.max(1, count(s.fallback.afterFailures, SCALING_DEFAULTS.fallback.afterFailures)),
        }
      : undefined;
  return {
    minReplicas,
    maxReplicas,
    targetBacklogPerReplica: positive(s.targetBacklogPerReplica) ?? SCALING_DEFAULTS.targetBacklogPerReplica,
    targetDrainSeconds: positive(s.targetDrainSeconds),
    activationBacklog: nonNegative(s.activationBacklog) ?? SCALING_DEFAULTS.activationBacklog,
    idleSecondsBeforeZero: nonNegative(s.idleSecondsBeforeZero) ?? SCALING_DEFAULTS.idleSecondsBeforeZero,
    tolerance: nonNegative(s.tolerance) ?? SCALING_DEFAULTS.tolerance,
    scaleUp: resolveRules(s.scaleUp, SCALING_DEFAULTS.scaleUp),
    scaleDown: resolveRules(s.scaleDown, SCALING_DEFAULTS.scaleDown),
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
