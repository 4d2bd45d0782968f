/**
 * The HPA's `behavior`, as pure functions over a small history: stabilization windows and rate-limiting
 * policies. Each follows `pkg/controller/podautoscaler/horizontal.go` (Kubernetes 1.18+) step for step, so
 * a spec that works with an HPA works the same here:
 *
 * - `stabilize`: among the recommendations made within each direction's window, scale-up goes no higher
 *   than the lowest of them and scale-down no lower than the highest; the current count is then moved into
 *   that band (HPA `stabilizeRecommendationWithBehaviors`).
 * - `scaleUpLimit` / `scaleDownLimit`: each policy allows a change relative to the replica count at the
 *   start of its period (current − scale-ups in the period + scale-downs in the period); `Max` picks the
 *   policy allowing the biggest change, `Min` the smallest, `Disabled` forbids changes in that direction
 *   (HPA `calculateScaleUpLimitWithScalingRules` / `calculateScaleDownLimitWithBehaviors`). Percent rounds
 *   up when growing, so any policy lets a non-empty fleet grow by one, and rounds the remaining count down
 *   when shrinking; both are computed in integers (`p + ⌈p·v/100⌉`, `p − ⌈p·v/100⌉`) so that a whole
 *   percentage never picks up a floating-point excess.
 *
 * Times are milliseconds (`Date.now()`); windows and periods are seconds, as in the spec. An entry counts
 * when it is strictly younger than the window, as the HPA's `timestamp.After(cutoff)`.
 */
import type { ScalingPolicy } from '../api/types.ts';
import type { ResolvedRules } from './spec.ts';

/** A recommendation the policy made (before stabilization, rate limits and min/max). */
export interface Recommendation {
  readonly at: number;
  readonly replicas: number;
}

/** A change of replicas the policy decided: positive for up, negative for down. */
export interface ScaleEvent {
  readonly at: number;
  readonly change: number;
}

export interface Stabilized {
  readonly replicas: number;
  /** Set when a window moved the recommendation: which one, and the bound it imposed. */
  readonly window?: { readonly direction: 'up' | 'down'; readonly seconds: number; readonly bound: number };
}

/**
 * Stabilizes `desired` against the recommendations of the last `up.stabilizationSeconds` (scale up to at
 * most their minimum) and `down.stabilizationSeconds` (scale down to at least their maximum). `desired`
 * itself is one of the recommendations, so an empty window changes nothing.
 */
export function stabilize(
  current: number,
  desired: number,
  recommendations: readonly Recommendation[],
  upSeconds: number,
  downSeconds: number,
  now: number,
): Stabilized {
  const upCutoff = now - upSeconds * 1000;
  const downCutoff = now - downSeconds * 1000;
  let upBound = desired;
  let downBound = desired;
  for (const r of recommendations) {
    if (r.at > upCutoff) upBound = Math.min(upBound, r.replicas);
    if (r.at > downCutoff) downBound = Math.max(downBound, r.replicas);
  }
  let replicas = current;
  if (replicas < upBound) replicas = upBound;
  if (replicas > downBound) replicas = downBound;
  if (replicas === desired) return { replicas };
  return desired > replicas
    ? { replicas, window: { direction: 'up', seconds: upSeconds, bound: upBound } }
    : { replicas, window: { direction: 'down', seconds: downSeconds, bound: downBound } };
}

/** The most (scale up) or fewest (scale down) replicas the policies allow now, and the policy that set it. */
export interface RateLimit {
  readonly replicas: number;
  /** Absent when `selectPolicy` is `Disabled`. */
  readonly policy?: ScalingPolicy;
}

/** Net change of replicas by the events within the last `periodSeconds`. */
export function changeInPeriod(events: readonly ScaleEvent[], periodSeconds: number, now: number): number {
  const cutoff = now - periodSeconds * 1000;
  let change = 0;
  for (const e of events) if (e.at > cutoff) change += e.change;
  return change;
}

export function scaleUpLimit(
  current: number,
  events: readonly ScaleEvent[],
  rules: ResolvedRules,
  now: number,
): RateLimit {
  return policyLimit(1, current, events, rules, now);
}

export function scaleDownLimit(
  current: number,
  events: readonly ScaleEvent[],
  rules: ResolvedRules,
  now: number,
): RateLimit {
  return policyLimit(-1, current, events, rules, now);
}

/**
 * The furthest the policies let the count move in `direction` (+1 up, -1 down) from what it was at the
 * start of each policy's period; `Max` picks the biggest change (highest up, lowest down), `Min` the least.
 */
function policyLimit(
  direction: 1 | -1,
  current: number,
  events: readonly ScaleEvent[],
  rules: ResolvedRules,
  now: number,
): RateLimit {
  if (rules.selectPolicy === 'Disabled') return { replicas: current };
  let best: RateLimit | undefined;
  for (const policy of rules.policies) {
    const periodStart = current - changeInPeriod(events, policy.periodSeconds, now);
    // Percentages rounded up, or a small fleet could never move by one; in integers, so 112% of 25 is 28
    // (25 * 1.12 in floating point is a hair above 28) and 5 less 80% is 1 (not 0).
    const step = policy.type === 'Pods' ? policy.value : Math.ceil((periodStart * policy.value) / 100);
    const proposed = periodStart + direction * step;
    const change = direction * proposed;
    const better =
      best === undefined ||
      (rules.selectPolicy === 'Min' ? change < direction * best.replicas : change > direction * best.replicas);
    if (better) best = { replicas: proposed, policy };
  }
  return best ?? { replicas: current };
}

/** "Pods 4 per 15 s", "Percent 100 per 15 s": how the spec spells a policy. */
export function describePolicy(policy: ScalingPolicy): string {
  return `${policy.type} ${policy.value} per ${policy.periodSeconds} s`;
}
