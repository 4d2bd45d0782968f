/**
 * # The scaling policy
 *
 * `decide(spec, observation, history, now)` turns one look at the broker into a replica count and a
 * sentence saying why. It is one pure function: no I/O, no clock, no randomness, nothing mutated. The
 * controller owns the loop — probe the broker, call `decide`, patch `/scale`, keep `decision.history`
 * for the next call (in memory, per TaskQueue) — and this module owns every judgement, so each rule is
 * pinned down by a table row in `policy.test.ts` rather than by a cluster.
 *
 * ## Units
 *
 * `now` and every time in `History` are milliseconds since the epoch (`Date.now()`); spec windows and
 * periods are seconds; rates are tasks per second. Backlog counts are tasks.
 *
 * ## The pipeline, in order
 *
 * 1. **Paused** (`spec.paused`): keep `currentReplicas`, whatever else is true.
 * 2. **Failed probe**: keep `currentReplicas` until `fallback.afterFailures` (default 3) probes in a row
 *    have failed, then recommend `fallback.replicas` — from zero too, which KEDA cannot do — and carry
 *    on at step 7. Without a `fallback`, failures hold the current count indefinitely.
 * 3. **Asleep**: at 0 replicas with `minReplicas` 0, stay at 0 while the backlog (ready + due delayed +
 *    in flight) is at most `activationBacklog`.
 * 4. **Idle to zero**: with `minReplicas` 0, go straight to 0 once the queue has had no backlog and
 *    nothing in flight for `idleSecondsBeforeZero` (KEDA's cooldown: it bypasses the scale-down policies,
 *    since an idle fleet has no work to lose). Never sooner: until then at least one replica stays.
 * 5. **Recommendation**, from one of two rules:
 *    - backlog per replica (KEDA + HPA `AverageValue`): `ceil(backlog / targetBacklogPerReplica)`;
 *    - throughput (when `targetDrainSeconds` is set and both rates are known, see `recommend`):
 *      `ceil((arrival + waiting / targetDrainSeconds) / perReplicaCompletion)`.
 *    A Kafka queue is capped at its partition count unless `allowIdleConsumers`. Then the tolerance:
 *    with replicas running, a raw recommendation within `tolerance` (10%) of the current count keeps the
 *    current count. While replicas run (or are being woken up) the recommendation is at least 1: only
 *    step 4 reaches zero.
 * 6. **Stabilization** (not when leaving zero): scale up to at most the lowest recommendation of the
 *    last `scaleUp.stabilizationSeconds` (default 0), down to at least the highest of the last
 *    `scaleDown.stabilizationSeconds` (default 120).
 * 7. **Rate limits**: the `scaleUp` / `scaleDown` policies, computed like the HPA's (relative to the
 *    count at the start of each period; `selectPolicy` Max, Min or Disabled). Leaving zero is KEDA's
 *    activation, so it always gets at least one replica, even under `Disabled` or a Percent-only policy.
 * 8. **Bounds**: clamp to `[minReplicas, maxReplicas]`. The bounds win over everything above: a count
 *    outside them (after a spec edit) goes straight back inside, as the HPA does.
 *
 * `limitedBy` names the step that last changed the recommendation, `reason` says it in words.
 *
 * ## History
 *
 * What must survive between calls, small and JSON-serialisable: recommendations within the longest
 * stabilization window (older entries with an equal value are dropped, as they can never decide a
 * window), scale events within the longest policy period, when the queue last had work, consecutive
 * probe failures, and the smoothed per-replica completion rate. Start from `EMPTY_HISTORY`. A restart
 * loses it, which is safe: windows start empty (as after an HPA restart) and the idle clock restarts.
 * The policy records its own decision as a scale event, so the controller keeps the returned history
 * only once it has applied the decision (a refused `/scale` patch is decided again, from the old one).
 */
import type { ScalingSpec } from '../api/types.ts';
import {
  describePolicy,
  type Recommendation,
  type ScaleEvent,
  scaleDownLimit,
  scaleUpLimit,
  stabilize,
} from './behavior.ts';
import { type ResolvedScaling, resolveScaling } from './spec.ts';

/** Tasks in the broker for one queue. */
export interface Backlog {
  /** Waiting to be claimed. */
  readonly ready: number;
  /** Delayed tasks that are due now (ETA passed), not the ones still in the future. */
  readonly delayed: number;
  /** Claimed by a worker, not yet acknowledged. */
  readonly inFlight: number;
}

/** Rates measured at the broker, tasks per second; absent when not (yet) known. */
export interface Rates {
  readonly arrival?: number;
  readonly completion?: number;
}

/** What the probe saw, or why it saw nothing. */
export type Observation =
  | {
      readonly ok: true;
      readonly backlog: Backlog;
      readonly rates?: Rates;
      /** The target's `spec.replicas` (what was last asked for). */
      readonly currentReplicas: number;
      /** Pods ready to work; the per-replica rate is measured against these. */
      readonly readyReplicas: number;
      /** Kafka: the topic's partition count; more consumers than partitions sit idle. */
      readonly partitions?: number;
      /** Kafka: allow more replicas than partitions. @defaultValue false */
      readonly allowIdleConsumers?: boolean;
    }
  | { readonly ok: false; readonly error: string; readonly currentReplicas: number };

/** Tasks per second one ready replica completes while it has work waiting, smoothed. */
export interface PerReplicaRate {
  readonly perSecond: number;
  /** When the last sample was folded in. */
  readonly at: number;
}

/** State the policy carries between calls; see the module comment. */
export interface History {
  readonly recommendations: readonly Recommendation[];
  readonly scaleEvents: readonly ScaleEvent[];
  /** The last time the queue had any backlog or anything in flight. */
  readonly lastActiveAt?: number;
  /** Probes failed in a row. */
  readonly failures: number;
  readonly perReplicaRate?: PerReplicaRate;
}

export const EMPTY_HISTORY: History = Object.freeze({ recommendations: [], scaleEvents: [], failures: 0 });

/** The step that held the count back from the recommendation (HPA's `ScalingLimited` condition). */
export type Limit = 'max' | 'min' | 'partitions' | 'scaleUpPolicy' | 'scaleDownPolicy' | 'stabilization';

export interface Decision {
  /** What `/scale` should say. */
  readonly replicas: number;
  /** One sentence for an Event and `status.lastScaleReason`. */
  readonly reason: string;
  readonly limitedBy?: Limit;
  /**
   * The queue has work for workers: the backlog is above `activationBacklog`, or workers are running and
   * the backlog is not empty. False when the probe failed (the controller reports Active as Unknown).
   */
  readonly active: boolean;
  /** The count is the configured fallback, because the probes keep failing. */
  readonly fallback: boolean;
  /** The recommendation before stabilization, rate limits and bounds (the current count when holding). */
  readonly recommended: number;
  /** Smoothed per-replica completion rate, for `status.rates.perReplica`. */
  readonly perReplicaRate?: number;
  /** Keep this and pass it to the next call. */
  readonly history: History;
}

/**
 * Time constant of the per-replica rate's exponential smoothing: a sample taken this long after the
 * previous one moves the estimate 63% of the way. Long enough to ride out one slow batch, short enough
 * to follow a deploy that makes tasks slower.
 */
export const PER_REPLICA_RATE_SMOOTHING_SECONDS = 30;

/** Decides the replica count for one TaskQueue. Pure: same inputs, same decision. */
export function decide(
  spec: ScalingSpec | undefined,
  observation: Observation,
  history: History,
  now: number,
): Decision {
  const s = resolveScaling(spec);
  const current = wholeCount(observation.currentReplicas);
  const kept = forget(history, s, now);
  if (!observation.ok) return onProbeFailure(s, observation.error, current, kept, now);

  const ready = wholeCount(observation.backlog.ready);
  const due = wholeCount(observation.backlog.delayed);
  const inFlight = wholeCount(observation.backlog.inFlight);
  const waiting = ready + due;
  const total = waiting + inFlight;
  const lastActiveAt = total > 0 || kept.lastActiveAt === undefined ? now : kept.lastActiveAt;
  const perReplicaRate = measurePerReplica(kept.perReplicaRate, observation, waiting, now);
  const h: History = { ...kept, failures: 0, lastActiveAt, ...(perReplicaRate ? { perReplicaRate } : {}) };
  const rate = perReplicaRate?.perSecond;
  const withRate = rate === undefined ? {} : { perReplicaRate: rate };
  const active = total > s.activationBacklog || (current > 0 && total > 0);

  if (s.paused) {
    return {
      replicas: current,
      reason: `held at ${current}: paused`,
      active,
      fallback: false,
      recommended: current,
      ...withRate,
      history: h,
    };
  }

  // Held at zero, or scaled to it: nothing active, no recommendation.
  const atZero = { replicas: 0, active: false, fallback: false, recommended: 0, ...withRate };
  if (current === 0 && s.minReplicas === 0 && total <= s.activationBacklog) {
    const reason =
      total === 0
        ? 'held at 0: no backlog'
        : `held at 0: backlog ${fmt(total)} not above activation threshold ${fmt(s.activationBacklog)}`;
    return { ...atZero, reason, history: remember(h, 0, 0, now) };
  }

  const idleMs = now - lastActiveAt;
  if (current > 0 && s.minReplicas === 0 && total === 0 && idleMs >= s.idleSecondsBeforeZero * 1000) {
    const reason = `scaled ${current} → 0: idle for ${seconds(idleMs)} s (no backlog, nothing in flight; idleSecondsBeforeZero ${s.idleSecondsBeforeZero})`;
    return { ...atZero, reason, history: remember(h, 0, -current, now) };
  }

  const floorNote =
    total > 0
      ? 'at least 1 while tasks are in flight'
      : s.minReplicas > 0
        ? 'at least 1'
        : `at least 1 until idle for ${fmt(s.idleSecondsBeforeZero)} s (idle for ${seconds(idleMs)} s)`;
  const r = recommend(s, observation, { waiting, total }, current, rate, floorNote);
  const why = r.why;
  const n = normalise(s, current, r.desired, r.partitionCap, h, now);
  return {
    replicas: n.replicas,
    reason: `${head(current, n.replicas)}: ${n.limit ? `${n.limit.text}; ${why}` : why}`,
    ...(n.limit ? { limitedBy: n.limit.by } : {}),
    active,
    fallback: false,
    recommended: r.desired,
    ...withRate,
    history: n.history,
  };
}

/** Steps 2 and 7–8 for a failed probe. */
function onProbeFailure(s: ResolvedScaling, error: string, current: number, kept: History, now: number): Decision {
  const failures = kept.failures + 1;
  const h: History = { ...kept, failures };
  const withRate = kept.perReplicaRate ? { perReplicaRate: kept.perReplicaRate.perSecond } : {};
  const cause = `(${brief(error)})`;
  const hold = (reason: string): Decision => ({
    replicas: current,
    reason: `held at ${current}: ${reason}`,
    active: false,
    fallback: false,
    recommended: current,
    ...withRate,
    history: h,
  });
  if (s.paused) return hold(`paused; probe failed ${cause}`);
  if (!s.fallback) {
    const times = failures === 1 ? '' : ` ${failures} times in a row`;
    return hold(`probe failed${times} ${cause}; no fallback configured`);
  }
  const { replicas: fallbackReplicas, afterFailures } = s.fallback;
  if (failures < afterFailures) {
    return hold(
      `probe failed ${cause}, ${failures} of ${afterFailures} failures before fallback to ${fallbackReplicas}`,
    );
  }
  const n = normalise(s, current, fallbackReplicas, undefined, h, now);
  const why = `${failures} ${failures === 1 ? 'probe' : 'probes'} failed ${cause}`;
  let reason: string;
  if (n.limit) reason = `${head(current, n.replicas)}: ${n.limit.text}; fallback to ${fallbackReplicas}: ${why}`;
  else if (n.replicas === current) reason = `held at ${current}: fallback, ${why}`;
  else reason = `fallback to ${n.replicas}: ${why}`;
  return {
    replicas: n.replicas,
    reason,
    ...(n.limit ? { limitedBy: n.limit.by } : {}),
    active: false,
    fallback: true,
    recommended: fallbackReplicas,
    ...withRate,
    history: n.history,
  };
}

interface Recommended {
  /** Whole replicas, at least 1, after the partition cap and the tolerance. */
  readonly desired: number;
  /** The partition count, when it lowered the recommendation. */
  readonly partitionCap?: number;
  /** The arithmetic, in words. */
  readonly why: string;
}

/**
 * Step 5. The throughput rule, when `targetDrainSeconds` is set:
 *
 *     replicas = ceil((arrival + waiting / targetDrainSeconds) / perReplicaCompletion)
 *
 * - `arrival + waiting / targetDrainSeconds` is the completion rate needed to keep up with new tasks and
 *   also empty today's queue within the target time.
 * - `waiting` is ready + due delayed, not in flight: in-flight tasks already hold a worker slot, and at
 *   a steady state they number about arrival × task duration (Little's law), so counting them as
 *   backlog again would over-provision every queue with long tasks.
 * - `perReplicaCompletion` is measured, never configured: completion rate / ready replicas, sampled only
 *   while tasks were waiting (an idle worker's rate says how much work there was, not what it can do),
 *   and smoothed in `History`.
 * - Completion below arrival needs no special case: the divisor is a replica's capacity, not the fleet's
 *   current completion, so the rule adds the replicas the shortfall calls for.
 * - At zero replicas nothing can be measured; the last smoothed rate is used if there is one.
 * - Rates unknown (no per-replica sample yet, or no arrival rate): the backlog-per-replica rule decides,
 *   and the reason says what throughput mode is waiting for.
 */
function recommend(
  s: ResolvedScaling,
  observation: Extract<Observation, { ok: true }>,
  backlog: { readonly waiting: number; readonly total: number },
  current: number,
  perReplica: number | undefined,
  floorNote: string,
): Recommended {
  const arrival = rateOf(observation.rates?.arrival);
  let raw: number;
  let text: string;
  if (s.targetDrainSeconds !== undefined && perReplica !== undefined && arrival !== undefined) {
    const needed = arrival + backlog.waiting / s.targetDrainSeconds;
    raw = needed / perReplica;
    text = `arrivals ${fmt(arrival)}/s + backlog ${fmt(backlog.waiting)} to drain in ${fmt(s.targetDrainSeconds)} s = ${fmt(needed)}/s at ${fmt(perReplica)}/s per replica`;
  } else {
    raw = backlog.total / s.targetBacklogPerReplica;
    text = `backlog ${fmt(backlog.total)} over target ${fmt(s.targetBacklogPerReplica)} per replica`;
    if (s.targetDrainSeconds !== undefined) {
      const missing = perReplica === undefined ? 'a per-replica completion rate' : 'an arrival rate';
      text += ` (throughput mode waits for ${missing})`;
    }
  }

  // Kafka gives each partition to one consumer of the group: replicas beyond that would sit idle. The
  // cap applies to the raw recommendation (as KEDA caps the lag it reports), before the tolerance.
  const partitions = observation.partitions;
  if (partitions !== undefined && partitions >= 1 && observation.allowIdleConsumers !== true && raw > partitions) {
    const partitionCap = Math.floor(partitions);
    const desired = withinTolerance(partitionCap, current, s.tolerance) ? current : partitionCap;
    return { desired, partitionCap, why: `${text} → ${fmt(wholeReplicas(raw))}` };
  }

  if (withinTolerance(raw, current, s.tolerance)) {
    return { desired: current, why: `within ${fmt(s.tolerance * 100)}% tolerance (${text} → ${fmt(raw)})` };
  }
  const whole = wholeReplicas(raw);
  let why = `${text} → ${fmt(whole)}`;
  if (whole < 1) why += `, ${floorNote}`;
  return { desired: Math.max(1, whole), why };
}

/**
 * |raw / current − 1| ≤ tolerance, inclusive as documented; the epsilon keeps float noise from turning
 * an exact 10% (1,100 over 100 on 10 replicas: 0.10000000000000009) into a change.
 */
function withinTolerance(raw: number, current: number, tolerance: number): boolean {
  return current > 0 && Math.abs(raw / current - 1) <= tolerance + 1e-9;
}

/** Rounds up, shaving float noise first, so 3.0000000000000004 replicas is 3, not 4. */
function wholeReplicas(raw: number): number {
  return Math.max(0, Math.ceil(raw - 1e-9));
}

interface Normalised {
  readonly replicas: number;
  readonly limit?: { readonly by: Limit; readonly text: string };
  readonly history: History;
}

/** Steps 6–8: stabilization, rate limits, bounds; records the recommendation and any scale event. */
function normalise(
  s: ResolvedScaling,
  current: number,
  desired: number,
  partitionCap: number | undefined,
  h: History,
  now: number,
): Normalised {
  const fromZero = current === 0;
  let replicas = desired;
  let limit: Normalised['limit'] =
    partitionCap !== undefined
      ? { by: 'partitions', text: `capped at ${partitionCap} partitions (idle consumers not allowed)` }
      : undefined;

  // Leaving zero is activation (KEDA's, not the HPA's): no scale-up window may keep a woken queue asleep.
  if (!fromZero) {
    const stabilized = stabilize(
      current,
      desired,
      h.recommendations,
      s.scaleUp.stabilizationSeconds,
      s.scaleDown.stabilizationSeconds,
      now,
    );
    if (stabilized.window) {
      const { direction, seconds: window, bound } = stabilized.window;
      replicas = stabilized.replicas;
      limit = {
        by: 'stabilization',
        text:
          direction === 'down'
            ? `scale-down stabilization (highest in last ${window} s is ${bound})`
            : `scale-up stabilization (lowest in last ${window} s is ${bound})`,
      };
    }
  }

  if (replicas > current) {
    const up = scaleUpLimit(current, h.scaleEvents, s.scaleUp, now);
    const allowed = Math.max(up.replicas, current, fromZero ? 1 : 0);
    if (replicas > allowed) {
      replicas = allowed;
      limit = {
        by: 'scaleUpPolicy',
        text: up.policy
          ? `scale-up policy ${describePolicy(up.policy)} allows ${allowed}`
          : `scale-up disabled (selectPolicy Disabled)${fromZero ? ', waking 1' : ''}`,
      };
    }
  } else if (replicas < current) {
    const down = scaleDownLimit(current, h.scaleEvents, s.scaleDown, now);
    const allowed = Math.min(down.replicas, current);
    if (replicas < allowed) {
      replicas = allowed;
      limit = {
        by: 'scaleDownPolicy',
        text: down.policy
          ? `scale-down policy ${describePolicy(down.policy)} allows ${allowed}`
          : 'scale-down disabled (selectPolicy Disabled)',
      };
    }
  }

  if (replicas > s.maxReplicas) {
    replicas = s.maxReplicas;
    limit = { by: 'max', text: `at maxReplicas ${s.maxReplicas}` };
  } else if (replicas < s.minReplicas) {
    replicas = s.minReplicas;
    limit = { by: 'min', text: `at minReplicas ${s.minReplicas}` };
  }

  return { replicas, ...(limit ? { limit } : {}), history: remember(h, desired, replicas - current, now) };
}

/** Records a recommendation (dropping older ones of equal value) and, when the count changes, a scale event. */
function remember(h: History, recommended: number, change: number, now: number): History {
  const recommendations = [
    ...h.recommendations.filter((r) => r.replicas !== recommended),
    { at: now, replicas: recommended },
  ];
  const scaleEvents = change === 0 ? h.scaleEvents : [...h.scaleEvents, { at: now, change }];
  return { ...h, recommendations, scaleEvents };
}

/** Drops what no window or period can look at any more. */
function forget(h: History, s: ResolvedScaling, now: number): History {
  const window = Math.max(s.scaleUp.stabilizationSeconds, s.scaleDown.stabilizationSeconds) * 1000;
  let period = 0;
  for (const p of [...s.scaleUp.policies, ...s.scaleDown.policies]) period = Math.max(period, p.periodSeconds * 1000);
  return {
    ...h,
    recommendations: h.recommendations.filter((r) => r.at > now - window),
    scaleEvents: h.scaleEvents.filter((e) => e.at > now - period),
  };
}

/** Folds a sample of completion per ready replica into the smoothed rate, when the workers were busy. */
function measurePerReplica(
  previous: PerReplicaRate | undefined,
  observation: Extract<Observation, { ok: true }>,
  waiting: number,
  now: number,
): PerReplicaRate | undefined {
  const completion = rateOf(observation.rates?.completion);
  const ready = wholeCount(observation.readyReplicas);
  // A zero completion rate while tasks wait means stuck workers, not zero capacity: dividing by it would
  // ask for infinitely many replicas, so it is not a sample.
  if (completion === undefined || completion <= 0 || ready === 0 || waiting === 0) return previous;
  const sample = completion / ready;
  if (!previous) return { perSecond: sample, at: now };
  const weight = 1 - Math.exp(-Math.max(0, now - previous.at) / (PER_REPLICA_RATE_SMOOTHING_SECONDS * 1000));
  return { perSecond: previous.perSecond + weight * (sample - previous.perSecond), at: now };
}

function head(current: number, replicas: number): string {
  return replicas === current ? `held at ${current}` : `scaled ${current} → ${replicas}`;
}

function wholeCount(n: number): number {
  return Number.isFinite(n) && n > 0 ? Math.floor(n) : 0;
}

function rateOf(n: number | undefined): number | undefined {
  return typeof n === 'number' && Number.isFinite(n) && n >= 0 ? n : undefined;
}

const numberFormat = new Intl.NumberFormat('en-US', { maximumFractionDigits: 2 });

/** 4000 → "4,000"; 3.14159 → "3.14". */
function fmt(n: number): string {
  return numberFormat.format(n);
}

function seconds(ms: number): string {
  return fmt(Math.round(ms / 1000));
}

/** Keeps a broker error short enough for an Event. */
function brief(error: string): string {
  const line = error.trim().split('\n')[0] ?? '';
  return line.length > 160 ? `${line.slice(0, 159)}…` : line || 'unknown error';
}
