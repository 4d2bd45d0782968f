import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SCALING_DEFAULTS } from '../api/defaults.ts';
import type { ScalingSpec } from '../api/types.ts';
import { scaleDownLimit, scaleUpLimit, stabilize } from './behavior.ts';
import {
  type Backlog,
  type Decision,
  decide,
  EMPTY_HISTORY,
  type History,
  type Limit,
  type Observation,
} from './policy.ts';
import { resolveScaling } from './spec.ts';

/** An arbitrary epoch; rows speak in seconds relative to it. */
const T0 = 1_750_000_000_000;
const at = (seconds: number): number => T0 + seconds * 1000;

type Ok = Extract<Observation, { ok: true }>;

/** A successful probe; ready replicas default to the current count. */
function ok(
  currentReplicas: number,
  backlog: Partial<Backlog> = {},
  extra: Partial<Omit<Ok, 'ok' | 'backlog' | 'currentReplicas'>> = {},
): Observation {
  return {
    ok: true,
    backlog: { ready: 0, delayed: 0, inFlight: 0, ...backlog },
    currentReplicas,
    readyReplicas: currentReplicas,
    ...extra,
  };
}

function failed(currentReplicas: number, error = 'connection refused'): Observation {
  return { ok: false, error, currentReplicas };
}

/** History as "so many seconds before now". */
interface Past {
  recommendations?: [secondsAgo: number, replicas: number][];
  scaleEvents?: [secondsAgo: number, change: number][];
  activeSecondsAgo?: number;
  failures?: number;
  perReplica?: [perSecond: number, secondsAgo: number];
}

function past(p: Past, now: number): History {
  return {
    recommendations: (p.recommendations ?? []).map(([ago, replicas]) => ({ at: now - ago * 1000, replicas })),
    scaleEvents: (p.scaleEvents ?? []).map(([ago, change]) => ({ at: now - ago * 1000, change })),
    failures: p.failures ?? 0,
    ...(p.activeSecondsAgo === undefined ? {} : { lastActiveAt: now - p.activeSecondsAgo * 1000 }),
    ...(p.perReplica ? { perReplicaRate: { perSecond: p.perReplica[0], at: now - p.perReplica[1] * 1000 } } : {}),
  };
}

interface Expect {
  replicas: number;
  /** Compared always: absent means "not limited". */
  limitedBy?: Limit;
  /** Exact text, or a pattern. */
  reason?: string | RegExp;
  active?: boolean;
  /** Compared always: absent means false. */
  fallback?: boolean;
  perReplicaRate?: number;
}

interface Step {
  /** Seconds after T0. @defaultValue 0 */
  at?: number;
  observation: Observation;
  expect: Expect;
}

/** One call (`observation` + `expect`) or a sequence (`steps`), history carried from step to step. */
interface Row {
  name: string;
  spec?: ScalingSpec;
  history?: Past;
  observation?: Observation;
  expect?: Expect;
  steps?: Step[];
}

function check(d: Decision, e: Expect, label: string): void {
  assert.equal(d.replicas, e.replicas, `${label}: replicas (reason: ${d.reason})`);
  assert.equal(d.limitedBy, e.limitedBy, `${label}: limitedBy (reason: ${d.reason})`);
  assert.equal(d.fallback, e.fallback ?? false, `${label}: fallback`);
  if (typeof e.reason === 'string') assert.equal(d.reason, e.reason, `${label}: reason`);
  else if (e.reason) assert.match(d.reason, e.reason, `${label}: reason`);
  if (e.active !== undefined) assert.equal(d.active, e.active, `${label}: active`);
  if (e.perReplicaRate !== undefined) {
    assert.ok(d.perReplicaRate !== undefined, `${label}: perReplicaRate is unknown`);
    assert.ok(Math.abs(d.perReplicaRate - e.perReplicaRate) < 0.01, `${label}: perReplicaRate ${d.perReplicaRate}`);
  }
}

function run(row: Row): void {
  const steps = row.steps ?? [{ observation: row.observation!, expect: row.expect! }];
  const first = at(steps[0]?.at ?? 0);
  let history = row.history ? past(row.history, first) : EMPTY_HISTORY;
  for (const [i, step] of steps.entries()) {
    const d = decide(row.spec, step.observation, history, at(step.at ?? 0));
    check(d, step.expect, steps.length > 1 ? `step ${i} (t=${step.at ?? 0} s)` : row.name);
    history = d.history;
  }
}

function table(title: string, rows: Row[]): void {
  describe(title, () => {
    for (const row of rows) test(row.name, () => run(row));
  });
}

const big = { ready: 10_000 };

table('bounds: minReplicas and maxReplicas', [
  {
    name: 'clamps to maxReplicas',
    spec: { maxReplicas: 10 },
    observation: ok(8, { ready: 4000 }),
    expect: {
      replicas: 10,
      limitedBy: 'max',
      reason: 'scaled 8 → 10: at maxReplicas 10; backlog 4,000 over target 100 per replica → 40',
    },
  },
  {
    name: 'keeps minReplicas when there is no backlog',
    spec: { minReplicas: 3 },
    observation: ok(3),
    expect: { replicas: 3, limitedBy: 'min', active: false, reason: /^held at 3: at minReplicas 3; backlog 0 / },
  },
  {
    name: 'a count above maxReplicas (after a spec edit) goes straight to max, past policies and stabilization',
    spec: { maxReplicas: 10, scaleDown: { policies: [{ type: 'Pods', value: 1, periodSeconds: 60 }] } },
    history: { recommendations: [[10, 15]] },
    observation: ok(15, { ready: 1500 }),
    expect: { replicas: 10, limitedBy: 'max' },
  },
  {
    name: 'a count below minReplicas goes straight to min, even with scale-up disabled',
    spec: { minReplicas: 4, scaleUp: { selectPolicy: 'Disabled' } },
    observation: ok(1),
    expect: { replicas: 4, limitedBy: 'min' },
  },
  {
    name: 'at zero with minReplicas 2, wakes to 2 with no backlog',
    spec: { minReplicas: 2 },
    observation: ok(0),
    expect: { replicas: 2, limitedBy: 'min', active: false },
  },
  {
    name: 'no scaling spec at all means the defaults',
    observation: ok(1, { ready: 250 }),
    expect: { replicas: 3, reason: 'scaled 1 → 3: backlog 250 over target 100 per replica → 3' },
  },
  {
    name: 'a spec the CRD would reject (min > max) is clamped, not thrown on',
    spec: { minReplicas: 5, maxReplicas: 2 },
    observation: ok(3, big),
    expect: { replicas: 5, limitedBy: 'max' },
  },
]);

table('target backlog per replica: ceil((ready + due + in flight) / target)', [
  {
    name: 'the brief example: 4,000 over 500 per replica is 8',
    spec: {
      targetBacklogPerReplica: 500,
      maxReplicas: 20,
      scaleUp: { policies: [{ type: 'Pods', value: 10, periodSeconds: 15 }] },
    },
    observation: ok(2, { ready: 4000 }),
    expect: { replicas: 8, active: true, reason: 'scaled 2 → 8: backlog 4,000 over target 500 per replica → 8' },
  },
  {
    name: 'ready, due delayed and in-flight tasks all count',
    spec: { maxReplicas: 50 },
    observation: ok(4, { ready: 200, delayed: 150, inFlight: 151 }),
    expect: { replicas: 6, reason: 'scaled 4 → 6: backlog 501 over target 100 per replica → 6' },
  },
  {
    name: 'rounds up: one task more than a multiple needs one more replica',
    spec: { maxReplicas: 50 },
    observation: ok(2, { ready: 301 }),
    expect: { replicas: 4 },
  },
]);

table('activation: a queue at zero wakes only above activationBacklog', [
  {
    name: 'no backlog: stays at zero',
    observation: ok(0),
    expect: { replicas: 0, active: false, reason: 'held at 0: no backlog' },
  },
  {
    name: 'backlog equal to the threshold (ready + due + in flight): stays at zero',
    spec: { activationBacklog: 10 },
    observation: ok(0, { ready: 4, delayed: 3, inFlight: 3 }),
    expect: { replicas: 0, active: false, reason: 'held at 0: backlog 10 not above activation threshold 10' },
  },
  {
    name: 'one above the threshold: wakes',
    spec: { activationBacklog: 10 },
    observation: ok(0, { ready: 5, delayed: 3, inFlight: 3 }),
    expect: { replicas: 1, active: true, reason: 'scaled 0 → 1: backlog 11 over target 100 per replica → 1' },
  },
  {
    name: 'due delayed tasks alone wake the queue',
    observation: ok(0, { delayed: 5 }),
    expect: { replicas: 1, active: true },
  },
  {
    name: 'from zero the default scale-up policy allows 4 pods (100% of zero is zero)',
    spec: { targetBacklogPerReplica: 500 },
    observation: ok(0, { ready: 4000 }),
    expect: {
      replicas: 4,
      limitedBy: 'scaleUpPolicy',
      reason: 'scaled 0 → 4: scale-up policy Pods 4 per 15 s allows 4; backlog 4,000 over target 500 per replica → 8',
    },
  },
  {
    name: 'a Percent-only scale-up policy still wakes one replica',
    spec: { scaleUp: { policies: [{ type: 'Percent', value: 100, periodSeconds: 15 }] } },
    observation: ok(0, { ready: 4000 }),
    expect: { replicas: 1, limitedBy: 'scaleUpPolicy' },
  },
  {
    name: 'scale-up Disabled still wakes one replica (activation is not the HPA’s to refuse)',
    spec: { scaleUp: { selectPolicy: 'Disabled' } },
    observation: ok(0, { ready: 4000 }),
    expect: {
      replicas: 1,
      limitedBy: 'scaleUpPolicy',
      reason: /scale-up disabled \(selectPolicy Disabled\), waking 1/,
    },
  },
  {
    name: 'a scale-up stabilization window does not keep a woken queue asleep',
    spec: { scaleUp: { stabilizationSeconds: 300 } },
    history: { recommendations: [[10, 0]] },
    observation: ok(0, { ready: 300 }),
    expect: { replicas: 3 },
  },
  {
    name: 'once awake, a backlog under the threshold keeps workers (and the queue active) until idle',
    spec: { activationBacklog: 50 },
    observation: ok(2, { ready: 20 }),
    expect: { replicas: 1, active: true },
  },
]);

table('scale to zero: only after idleSecondsBeforeZero with no backlog and nothing in flight', [
  {
    name: '119 s idle: not yet (and the scale-down window holds the count)',
    history: { activeSecondsAgo: 119, recommendations: [[119, 2]] },
    observation: ok(2),
    expect: {
      replicas: 2,
      limitedBy: 'stabilization',
      active: false,
      reason:
        'held at 2: scale-down stabilization (highest in last 120 s is 2); backlog 0 over target 100 per replica → 0, at least 1 until idle for 120 s (idle for 119 s)',
    },
  },
  {
    name: '120 s idle: to zero',
    history: { activeSecondsAgo: 120, recommendations: [[119, 2]] },
    observation: ok(2),
    expect: {
      replicas: 0,
      active: false,
      reason: 'scaled 2 → 0: idle for 120 s (no backlog, nothing in flight; idleSecondsBeforeZero 120)',
    },
  },
  {
    name: 'going to zero bypasses scale-down policies, as KEDA’s cooldown bypasses the HPA',
    spec: { scaleDown: { selectPolicy: 'Disabled' } },
    history: { activeSecondsAgo: 300 },
    observation: ok(5),
    expect: { replicas: 0 },
  },
  {
    name: 'a task in flight is activity: never zero while one runs',
    history: { activeSecondsAgo: 1000 },
    observation: ok(2, { inFlight: 1 }),
    expect: { replicas: 1, active: true },
  },
  {
    name: 'never below minReplicas, however long idle',
    spec: { minReplicas: 1 },
    history: { activeSecondsAgo: 100_000 },
    observation: ok(1),
    expect: { replicas: 1, active: false },
  },
  {
    name: 'idleSecondsBeforeZero 0: zero as soon as the queue is empty',
    spec: { idleSecondsBeforeZero: 0 },
    observation: ok(3),
    expect: { replicas: 0 },
  },
  {
    name: 'the idle clock runs from the last activity, and the fleet holds until then',
    steps: [
      { at: 0, observation: ok(3, { ready: 250 }), expect: { replicas: 3 } },
      { at: 60, observation: ok(3), expect: { replicas: 3, limitedBy: 'stabilization' } },
      { at: 119, observation: ok(3), expect: { replicas: 3, limitedBy: 'stabilization' } },
      { at: 120, observation: ok(3), expect: { replicas: 0 } },
      { at: 122, observation: ok(0), expect: { replicas: 0, reason: 'held at 0: no backlog' } },
    ],
  },
  {
    name: 'after a restart (empty history) the idle clock starts over: no early zero',
    steps: [
      { at: 0, observation: ok(3), expect: { replicas: 1 } },
      { at: 119, observation: ok(1), expect: { replicas: 1 } },
      { at: 120, observation: ok(1), expect: { replicas: 0 } },
    ],
  },
]);

table('tolerance: no change within 10% of the current count, except from or to zero', [
  {
    name: '5% over: held',
    spec: { maxReplicas: 50 },
    observation: ok(10, { ready: 1050 }),
    expect: {
      replicas: 10,
      reason: 'held at 10: within 10% tolerance (backlog 1,050 over target 100 per replica → 10.5)',
    },
  },
  {
    name: 'exactly 10% over: held (the bound is inclusive, with no float excess)',
    spec: { maxReplicas: 50 },
    observation: ok(10, { ready: 1100 }),
    expect: { replicas: 10 },
  },
  {
    name: 'just over 10%: scales',
    spec: { maxReplicas: 50 },
    observation: ok(10, { ready: 1101 }),
    expect: { replicas: 12 },
  },
  {
    name: 'exactly 10% under: held',
    observation: ok(10, { ready: 900 }),
    expect: { replicas: 10 },
  },
  {
    name: 'just over 10% under: scales down',
    observation: ok(10, { ready: 899 }),
    expect: { replicas: 9 },
  },
  {
    name: 'the brief example: 3.1 on 3 is held',
    observation: ok(3, { ready: 310 }),
    expect: { replicas: 3, reason: 'held at 3: within 10% tolerance (backlog 310 over target 100 per replica → 3.1)' },
  },
  {
    name: 'tolerance 0: any change scales',
    spec: { tolerance: 0, maxReplicas: 50 },
    observation: ok(10, { ready: 1001 }),
    expect: { replicas: 11 },
  },
  {
    name: 'tolerance 0.5: 47% over is held',
    spec: { tolerance: 0.5 },
    observation: ok(4, { ready: 590 }),
    expect: { replicas: 4, reason: /within 50% tolerance/ },
  },
  {
    name: 'from zero there is no ratio: a small backlog wakes a replica',
    spec: { tolerance: 0.5 },
    observation: ok(0, { ready: 1 }),
    expect: { replicas: 1 },
  },
]);

table('scale-up policies (HPA: relative to the count at the start of the period)', [
  {
    name: 'default, small fleet: Pods 4 per 15 s beats 100%',
    spec: { maxReplicas: 100 },
    observation: ok(2, big),
    expect: {
      replicas: 6,
      limitedBy: 'scaleUpPolicy',
      reason: /^scaled 2 → 6: scale-up policy Pods 4 per 15 s allows 6; /,
    },
  },
  {
    name: 'default, larger fleet: 100% per 15 s beats 4 pods',
    spec: { maxReplicas: 100 },
    observation: ok(10, big),
    expect: { replicas: 20, limitedBy: 'scaleUpPolicy', reason: /scale-up policy Percent 100 per 15 s allows 20/ },
  },
  {
    name: 'selectPolicy Min picks the smaller step',
    spec: { maxReplicas: 100, scaleUp: { selectPolicy: 'Min' } },
    observation: ok(10, big),
    expect: { replicas: 14, limitedBy: 'scaleUpPolicy', reason: /Pods 4 per 15 s allows 14/ },
  },
  {
    name: 'selectPolicy Disabled: no scale-up',
    spec: { maxReplicas: 100, scaleUp: { selectPolicy: 'Disabled' } },
    observation: ok(3, big),
    expect: {
      replicas: 3,
      limitedBy: 'scaleUpPolicy',
      reason: /^held at 3: scale-up disabled \(selectPolicy Disabled\); backlog 10,000/,
    },
  },
  {
    name: 'a scale-up 30 s ago counts against a 60 s period',
    spec: { maxReplicas: 100, scaleUp: { policies: [{ type: 'Pods', value: 4, periodSeconds: 60 }] } },
    history: { scaleEvents: [[30, 4]] },
    observation: ok(6, big),
    expect: { replicas: 6, limitedBy: 'scaleUpPolicy', reason: /allows 6/ },
  },
  {
    name: 'a scale-up 61 s ago no longer counts',
    spec: { maxReplicas: 100, scaleUp: { policies: [{ type: 'Pods', value: 4, periodSeconds: 60 }] } },
    history: { scaleEvents: [[61, 4]] },
    observation: ok(6, big),
    expect: { replicas: 10, limitedBy: 'scaleUpPolicy' },
  },
  {
    name: 'percent of the period start, never below the current count',
    spec: { maxReplicas: 100, scaleUp: { policies: [{ type: 'Percent', value: 50, periodSeconds: 60 }] } },
    history: { scaleEvents: [[30, 2]] },
    observation: ok(4, big),
    expect: { replicas: 4, limitedBy: 'scaleUpPolicy' },
  },
  {
    name: 'a scale-down within the period raises the period start (HPA: + deleted in period)',
    spec: { maxReplicas: 100, scaleUp: { policies: [{ type: 'Pods', value: 2, periodSeconds: 60 }] } },
    history: { scaleEvents: [[30, -3]] },
    observation: ok(5, big),
    expect: { replicas: 10, limitedBy: 'scaleUpPolicy' },
  },
  {
    name: 'percent in integers: 112% of 25 is 28, not 29',
    spec: { maxReplicas: 100, scaleUp: { policies: [{ type: 'Percent', value: 12, periodSeconds: 15 }] } },
    observation: ok(25, big),
    expect: { replicas: 28, limitedBy: 'scaleUpPolicy' },
  },
  {
    name: 'a sequence: the period limits the second step, then lifts',
    spec: { maxReplicas: 100 },
    steps: [
      { at: 0, observation: ok(2, { ready: 5000 }), expect: { replicas: 6, limitedBy: 'scaleUpPolicy' } },
      { at: 5, observation: ok(6, { ready: 5000 }), expect: { replicas: 6, limitedBy: 'scaleUpPolicy' } },
      { at: 16, observation: ok(6, { ready: 5000 }), expect: { replicas: 12, limitedBy: 'scaleUpPolicy' } },
      { at: 32, observation: ok(12, { ready: 5000 }), expect: { replicas: 24, limitedBy: 'scaleUpPolicy' } },
      { at: 48, observation: ok(24, { ready: 5000 }), expect: { replicas: 48, limitedBy: 'scaleUpPolicy' } },
      { at: 64, observation: ok(48, { ready: 5000 }), expect: { replicas: 48, reason: /within 10% tolerance/ } },
    ],
  },
]);

table('scale-down policies', [
  {
    name: 'default: 100% per 15 s allows any step down',
    spec: { scaleDown: { stabilizationSeconds: 0 } },
    observation: ok(10, { ready: 100 }),
    expect: { replicas: 1, reason: 'scaled 10 → 1: backlog 100 over target 100 per replica → 1' },
  },
  {
    name: 'Pods 2 per 60 s',
    spec: { scaleDown: { stabilizationSeconds: 0, policies: [{ type: 'Pods', value: 2, periodSeconds: 60 }] } },
    observation: ok(10, { ready: 100 }),
    expect: {
      replicas: 8,
      limitedBy: 'scaleDownPolicy',
      reason: 'scaled 10 → 8: scale-down policy Pods 2 per 60 s allows 8; backlog 100 over target 100 per replica → 1',
    },
  },
  {
    name: 'Percent 50 per 60 s of the period start (10), after 2 went 20 s ago',
    spec: { scaleDown: { stabilizationSeconds: 0, policies: [{ type: 'Percent', value: 50, periodSeconds: 60 }] } },
    history: { scaleEvents: [[20, -2]] },
    observation: ok(8, { ready: 100 }),
    expect: { replicas: 5, limitedBy: 'scaleDownPolicy' },
  },
  {
    name: 'selectPolicy Max (default) takes the bigger step down',
    spec: {
      scaleDown: {
        stabilizationSeconds: 0,
        policies: [
          { type: 'Pods', value: 2, periodSeconds: 60 },
          { type: 'Percent', value: 50, periodSeconds: 60 },
        ],
      },
    },
    observation: ok(10, { ready: 100 }),
    expect: { replicas: 5, limitedBy: 'scaleDownPolicy', reason: /Percent 50 per 60 s allows 5/ },
  },
  {
    name: 'selectPolicy Min takes the smaller step down',
    spec: {
      scaleDown: {
        stabilizationSeconds: 0,
        selectPolicy: 'Min',
        policies: [
          { type: 'Pods', value: 2, periodSeconds: 60 },
          { type: 'Percent', value: 50, periodSeconds: 60 },
        ],
      },
    },
    observation: ok(10, { ready: 100 }),
    expect: { replicas: 8, limitedBy: 'scaleDownPolicy', reason: /Pods 2 per 60 s allows 8/ },
  },
  {
    name: 'selectPolicy Disabled: no scale-down',
    spec: { scaleDown: { stabilizationSeconds: 0, selectPolicy: 'Disabled' } },
    observation: ok(10, { ready: 100 }),
    expect: { replicas: 10, limitedBy: 'scaleDownPolicy', reason: /^held at 10: scale-down disabled/ },
  },
  {
    name: 'percent in integers: 10 less 80% is 2, not 1',
    spec: { scaleDown: { stabilizationSeconds: 0, policies: [{ type: 'Percent', value: 80, periodSeconds: 15 }] } },
    observation: ok(10, { ready: 100 }),
    expect: { replicas: 2, limitedBy: 'scaleDownPolicy' },
  },
  {
    name: 'minReplicas bounds the step down',
    spec: { minReplicas: 6, scaleDown: { stabilizationSeconds: 0 } },
    observation: ok(10, { ready: 100 }),
    expect: { replicas: 6, limitedBy: 'min' },
  },
]);

table('stabilization windows', [
  {
    name: 'the brief example: scale-down held by the highest recommendation in the last 120 s',
    history: { recommendations: [[100, 5]] },
    observation: ok(5, { ready: 200 }),
    expect: {
      replicas: 5,
      limitedBy: 'stabilization',
      reason:
        'held at 5: scale-down stabilization (highest in last 120 s is 5); backlog 200 over target 100 per replica → 2',
    },
  },
  {
    name: 'a recommendation exactly 120 s old has left the window',
    history: { recommendations: [[120, 5]] },
    observation: ok(5, { ready: 200 }),
    expect: { replicas: 2 },
  },
  {
    name: 'partly: the highest still inside the window wins',
    history: {
      recommendations: [
        [130, 5],
        [50, 4],
      ],
    },
    observation: ok(5, { ready: 200 }),
    expect: { replicas: 4, limitedBy: 'stabilization', reason: /highest in last 120 s is 4/ },
  },
  {
    name: 'a custom scale-down window',
    spec: { scaleDown: { stabilizationSeconds: 30 } },
    history: { recommendations: [[31, 5]] },
    observation: ok(5, { ready: 200 }),
    expect: { replicas: 2 },
  },
  {
    name: 'scale-up stabilization: the lowest in the window wins',
    spec: { scaleUp: { stabilizationSeconds: 60 } },
    history: {
      recommendations: [
        [30, 3],
        [10, 6],
      ],
    },
    observation: ok(3, { ready: 800 }),
    expect: {
      replicas: 3,
      limitedBy: 'stabilization',
      reason:
        'held at 3: scale-up stabilization (lowest in last 60 s is 3); backlog 800 over target 100 per replica → 8',
    },
  },
  {
    name: 'scale-up stabilization: part of the way up',
    spec: { scaleUp: { stabilizationSeconds: 60 } },
    history: { recommendations: [[30, 5]] },
    observation: ok(3, { ready: 800 }),
    expect: { replicas: 5, limitedBy: 'stabilization' },
  },
  {
    name: 'no scale-up stabilization by default: a dip in the past does not slow a rise',
    history: { recommendations: [[5, 1]] },
    observation: ok(3, { ready: 600 }),
    expect: { replicas: 6 },
  },
  {
    name: 'a sequence: a brief dip does not shrink the fleet; a lasting one does, 120 s on',
    steps: [
      { at: 0, observation: ok(8, { ready: 800 }), expect: { replicas: 8 } },
      { at: 60, observation: ok(8, { ready: 100 }), expect: { replicas: 8, limitedBy: 'stabilization' } },
      { at: 62, observation: ok(8, { ready: 790 }), expect: { replicas: 8 } },
      { at: 150, observation: ok(8, { ready: 100 }), expect: { replicas: 8, limitedBy: 'stabilization' } },
      { at: 183, observation: ok(8, { ready: 100 }), expect: { replicas: 1 } },
    ],
  },
]);

table('Kafka: replicas capped at partitions unless idle consumers are allowed', [
  {
    name: 'at the cap: held, limited by partitions',
    observation: ok(6, { ready: 4000 }, { partitions: 6 }),
    expect: {
      replicas: 6,
      limitedBy: 'partitions',
      reason:
        'held at 6: capped at 6 partitions (idle consumers not allowed); backlog 4,000 over target 100 per replica → 40',
    },
  },
  {
    name: 'below the cap: scales up to it',
    observation: ok(3, { ready: 4000 }, { partitions: 6 }),
    expect: { replicas: 6, limitedBy: 'partitions' },
  },
  {
    name: 'above the cap: scales down to it',
    observation: ok(10, { ready: 4000 }, { partitions: 6 }),
    expect: { replicas: 6, limitedBy: 'partitions' },
  },
  {
    name: 'allowIdleConsumers: no cap',
    observation: ok(4, { ready: 800 }, { partitions: 6, allowIdleConsumers: true }),
    expect: { replicas: 8 },
  },
  {
    name: 'minReplicas wins over the partition count',
    spec: { minReplicas: 8 },
    observation: ok(8, { ready: 4000 }, { partitions: 6 }),
    expect: { replicas: 8, limitedBy: 'min' },
  },
  {
    name: 'more partitions than needed: no cap',
    observation: ok(3, { ready: 500 }, { partitions: 12 }),
    expect: { replicas: 5 },
  },
]);

table('paused: keep the current count', [
  {
    name: 'a large backlog does not scale a paused queue',
    spec: { paused: true },
    observation: ok(3, { ready: 100_000 }),
    expect: { replicas: 3, active: true, reason: 'held at 3: paused' },
  },
  {
    name: 'a paused queue at zero stays at zero',
    spec: { paused: true },
    observation: ok(0, { ready: 5000 }),
    expect: { replicas: 0, reason: 'held at 0: paused' },
  },
  {
    name: 'a paused idle queue is not scaled to zero',
    spec: { paused: true },
    history: { activeSecondsAgo: 1000 },
    observation: ok(3),
    expect: { replicas: 3 },
  },
  {
    name: 'paused wins over fallback',
    spec: { paused: true, fallback: { replicas: 2 } },
    history: { failures: 5 },
    observation: failed(4),
    expect: { replicas: 4, fallback: false, reason: 'held at 4: paused; probe failed (connection refused)' },
  },
]);

table('fallback after consecutive failed probes', [
  {
    name: 'the first failure holds the current count',
    spec: { fallback: { replicas: 2 } },
    observation: failed(5),
    expect: {
      replicas: 5,
      active: false,
      reason: 'held at 5: probe failed (connection refused), 1 of 3 failures before fallback to 2',
    },
  },
  {
    name: 'the third failure in a row falls back (the brief example)',
    spec: { fallback: { replicas: 2 } },
    steps: [
      { at: 0, observation: failed(5), expect: { replicas: 5 } },
      { at: 2, observation: failed(5), expect: { replicas: 5, reason: /2 of 3 failures/ } },
      {
        at: 4,
        observation: failed(5),
        expect: { replicas: 2, fallback: true, reason: 'fallback to 2: 3 probes failed (connection refused)' },
      },
      {
        at: 6,
        observation: failed(2),
        expect: { replicas: 2, fallback: true, reason: 'held at 2: fallback, 4 probes failed (connection refused)' },
      },
    ],
  },
  {
    name: 'from zero, which KEDA cannot do',
    spec: { fallback: { replicas: 2 } },
    steps: [
      { at: 0, observation: failed(0), expect: { replicas: 0 } },
      { at: 2, observation: failed(0), expect: { replicas: 0 } },
      { at: 4, observation: failed(0), expect: { replicas: 2, fallback: true } },
    ],
  },
  {
    name: 'afterFailures 1: the first failure falls back',
    spec: { fallback: { replicas: 3, afterFailures: 1 } },
    observation: failed(0),
    expect: { replicas: 3, fallback: true, reason: 'fallback to 3: 1 probe failed (connection refused)' },
  },
  {
    name: 'no fallback configured: failures hold the current count',
    history: { failures: 4 },
    observation: failed(3),
    expect: {
      replicas: 3,
      reason: 'held at 3: probe failed 5 times in a row (connection refused); no fallback configured',
    },
  },
  {
    name: 'a successful probe resets the count of failures',
    spec: { fallback: { replicas: 2 } },
    steps: [
      { at: 0, observation: failed(5), expect: { replicas: 5 } },
      { at: 2, observation: failed(5), expect: { replicas: 5 } },
      { at: 4, observation: ok(5, { ready: 500 }), expect: { replicas: 5 } },
      { at: 6, observation: failed(5), expect: { replicas: 5, reason: /1 of 3 failures/ } },
    ],
  },
  {
    name: 'the fallback count is bounded by maxReplicas',
    spec: { maxReplicas: 10, fallback: { replicas: 20 } },
    history: { failures: 2 },
    observation: failed(10),
    expect: {
      replicas: 10,
      limitedBy: 'max',
      fallback: true,
      reason: 'held at 10: at maxReplicas 10; fallback to 20: 3 probes failed (connection refused)',
    },
  },
  {
    name: 'the way down to the fallback count honours scale-down stabilization',
    spec: { fallback: { replicas: 2 } },
    steps: [
      { at: 0, observation: ok(8, { ready: 800 }), expect: { replicas: 8 } },
      { at: 2, observation: failed(8), expect: { replicas: 8 } },
      { at: 4, observation: failed(8), expect: { replicas: 8 } },
      {
        at: 6,
        observation: failed(8),
        expect: {
          replicas: 8,
          limitedBy: 'stabilization',
          fallback: true,
          reason:
            'held at 8: scale-down stabilization (highest in last 120 s is 8); fallback to 2: 3 probes failed (connection refused)',
        },
      },
      { at: 121, observation: failed(8), expect: { replicas: 2, fallback: true } },
    ],
  },
  {
    name: 'a long error is cut to one short line',
    history: { failures: 0 },
    observation: failed(1, `${'x'.repeat(500)}\n    at Socket.connect`),
    expect: { replicas: 1, reason: /^held at 1: probe failed \(x{159}…\); no fallback configured$/ },
  },
]);

table('throughput mode: ceil((arrival + waiting / targetDrainSeconds) / per-replica completion)', [
  {
    name: 'serves arrivals and drains the backlog in time',
    spec: { targetDrainSeconds: 60, maxReplicas: 100 },
    history: { perReplica: [10, 5] },
    observation: ok(10, { ready: 3000 }, { rates: { arrival: 100 } }),
    expect: {
      replicas: 15,
      perReplicaRate: 10,
      reason: 'scaled 10 → 15: arrivals 100/s + backlog 3,000 to drain in 60 s = 150/s at 10/s per replica → 15',
    },
  },
  {
    name: 'in-flight tasks are not backlog to drain (they already hold a worker)',
    spec: { targetDrainSeconds: 60, maxReplicas: 100 },
    history: { perReplica: [10, 5] },
    observation: ok(10, { ready: 2000, delayed: 1000, inFlight: 500 }, { rates: { arrival: 100 } }),
    expect: { replicas: 15 },
  },
  {
    name: 'no per-replica rate yet: the backlog-per-replica rule decides, and says so',
    spec: { targetDrainSeconds: 60, maxReplicas: 100 },
    observation: ok(20, { ready: 3000 }, { rates: { arrival: 100 } }),
    expect: {
      replicas: 30,
      reason:
        'scaled 20 → 30: backlog 3,000 over target 100 per replica (throughput mode waits for a per-replica completion rate) → 30',
    },
  },
  {
    name: 'no arrival rate: the backlog-per-replica rule decides',
    spec: { targetDrainSeconds: 60, maxReplicas: 100 },
    history: { perReplica: [10, 5] },
    observation: ok(20, { ready: 3000 }),
    expect: { replicas: 30, reason: /throughput mode waits for an arrival rate/ },
  },
  {
    name: 'measures the per-replica rate while tasks wait, and uses it at once',
    spec: { targetDrainSeconds: 60, maxReplicas: 100 },
    observation: ok(4, { ready: 600 }, { rates: { arrival: 30, completion: 40 } }),
    expect: { replicas: 4, perReplicaRate: 10, reason: /^held at 4: within 10% tolerance \(arrivals 30\/s/ },
  },
  {
    name: 'per ready replica, not per requested one',
    spec: { targetDrainSeconds: 60, maxReplicas: 100 },
    observation: ok(10, { ready: 100 }, { readyReplicas: 5, rates: { arrival: 0, completion: 50 } }),
    expect: { replicas: 1, perReplicaRate: 10 },
  },
  {
    name: 'no sample while nothing waits (an idle worker’s rate is the arrival rate, not its capacity)',
    spec: { targetDrainSeconds: 60 },
    observation: ok(4, { inFlight: 20 }, { rates: { arrival: 40, completion: 40 } }),
    expect: { replicas: 1, reason: /waits for a per-replica completion rate/ },
  },
  {
    name: 'no sample from a zero completion rate (stuck workers, not zero capacity)',
    spec: { targetDrainSeconds: 60 },
    observation: ok(4, { ready: 400 }, { rates: { arrival: 40, completion: 0 } }),
    expect: { replicas: 4, reason: /waits for a per-replica completion rate/ },
  },
  {
    name: 'smoothing: a sample 30 s after the last moves the estimate 63% of the way',
    spec: { targetDrainSeconds: 60 },
    history: { perReplica: [10, 30] },
    observation: ok(4, { ready: 100 }, { rates: { completion: 80 } }),
    expect: { replicas: 1, perReplicaRate: 10 + (1 - Math.exp(-1)) * 10 },
  },
  {
    name: 'at zero replicas the remembered rate sizes the wake-up',
    spec: { targetDrainSeconds: 60, scaleUp: { policies: [{ type: 'Pods', value: 10, periodSeconds: 15 }] } },
    history: { perReplica: [10, 600] },
    observation: ok(0, { ready: 600 }, { readyReplicas: 0, rates: { arrival: 50 } }),
    expect: { replicas: 6, reason: /= 60\/s at 10\/s per replica → 6$/ },
  },
  {
    name: 'completion below arrival: adds the replicas the shortfall calls for',
    spec: {
      targetDrainSeconds: 60,
      maxReplicas: 100,
      scaleUp: { policies: [{ type: 'Pods', value: 100, periodSeconds: 15 }] },
    },
    observation: ok(10, { ready: 1200 }, { rates: { arrival: 200, completion: 100 } }),
    expect: { replicas: 22, perReplicaRate: 10 },
  },
  {
    name: 'steady state with no queue: arrivals alone size the fleet (within tolerance)',
    spec: { targetDrainSeconds: 60 },
    history: { perReplica: [10, 5] },
    observation: ok(10, { inFlight: 50 }, { rates: { arrival: 95 } }),
    expect: { replicas: 10, reason: /within 10% tolerance/ },
  },
  {
    name: 'nothing arriving, tasks still in flight: at least one replica stays',
    spec: { targetDrainSeconds: 60, scaleDown: { stabilizationSeconds: 0 } },
    history: { perReplica: [10, 5] },
    observation: ok(2, { inFlight: 3 }, { rates: { arrival: 0 } }),
    expect: { replicas: 1, reason: /→ 0, at least 1 while tasks are in flight$/ },
  },
  {
    name: 'a slow per-replica rate is still bounded by maxReplicas',
    spec: { targetDrainSeconds: 10, maxReplicas: 10 },
    history: { perReplica: [0.01, 5] },
    observation: ok(10, { ready: 1000 }, { rates: { arrival: 5 } }),
    expect: { replicas: 10, limitedBy: 'max' },
  },
]);

describe('the decision is pure and its history small', () => {
  function deepFreeze<T>(value: T): T {
    if (value && typeof value === 'object') {
      for (const v of Object.values(value)) deepFreeze(v);
      Object.freeze(value);
    }
    return value;
  }

  test('inputs are not mutated, and the same inputs give the same decision', () => {
    const spec = deepFreeze<ScalingSpec>({ maxReplicas: 20, fallback: { replicas: 2 } });
    const history = deepFreeze(past({ recommendations: [[30, 4]], scaleEvents: [[5, 2]], activeSecondsAgo: 3 }, T0));
    const observation = deepFreeze(ok(4, { ready: 1200 }, { rates: { arrival: 5, completion: 8 } }));
    const a = decide(spec, observation, history, T0);
    const b = decide(spec, observation, history, T0);
    assert.deepEqual(a, b);
  });

  test('history stays bounded and JSON round-trips over an hour of polls', () => {
    let history = EMPTY_HISTORY;
    let current = 0;
    let maxRecommendations = 0;
    let maxEvents = 0;
    const seen = new Set<number>();
    for (let i = 0; i < 1800; i++) {
      const ready = Math.round(500 + 480 * Math.sin(i / 20)) * (i % 300 < 250 ? 1 : 0);
      const observation = i % 97 === 0 ? failed(current) : ok(current, { ready }, { partitions: 8 });
      const d = decide({ maxReplicas: 10, fallback: { replicas: 2 } }, observation, history, at(i * 2));
      assert.ok(d.replicas >= 0 && d.replicas <= 10, `replicas ${d.replicas} at step ${i}`);
      current = d.replicas;
      seen.add(current);
      history = JSON.parse(JSON.stringify(d.history)) as History;
      assert.deepEqual(history, d.history);
      maxRecommendations = Math.max(maxRecommendations, history.recommendations.length);
      maxEvents = Math.max(maxEvents, history.scaleEvents.length);
    }
    // The run did scale: from zero up to the partition cap, and back to zero when idle.
    assert.ok(seen.has(0) && seen.has(8) && !seen.has(9), `counts seen: ${[...seen].sort((a, b) => a - b)}`);
    // Distinct values in the window (0..10), and events within the longest 15 s period at 2 s polls.
    assert.ok(maxRecommendations <= 11, `recommendations ${maxRecommendations}`);
    assert.ok(maxEvents <= 8, `scale events ${maxEvents}`);
  });

  test('nonsense numbers (NaN, negative, fractional) do not throw and stay in bounds', () => {
    const d = decide(
      { minReplicas: 1, maxReplicas: 5, targetBacklogPerReplica: -3, tolerance: Number.NaN },
      {
        ok: true,
        backlog: { ready: Number.NaN, delayed: -4, inFlight: 2.7 },
        rates: { arrival: -1, completion: Number.POSITIVE_INFINITY },
        currentReplicas: 2.5,
        readyReplicas: -1,
      },
      EMPTY_HISTORY,
      T0,
    );
    assert.ok(d.replicas >= 1 && d.replicas <= 5);
    assert.equal(d.reason, 'scaled 2 → 1: backlog 2 over target 100 per replica → 1');
  });
});

describe('behaviour helpers match the HPA arithmetic', () => {
  test('defaults: scale-up max(100%, 4 pods) per 15 s, no window; scale-down 100% per 15 s, 120 s window', () => {
    const s = resolveScaling({});
    assert.deepEqual(s.scaleUp, SCALING_DEFAULTS.scaleUp);
    assert.deepEqual(s.scaleDown, SCALING_DEFAULTS.scaleDown);
    assert.equal(s.scaleUp.stabilizationSeconds, 0);
    assert.equal(s.scaleDown.stabilizationSeconds, 120);
    assert.deepEqual(
      resolveScaling({ scaleDown: { stabilizationSeconds: 30 } }).scaleDown.policies,
      SCALING_DEFAULTS.scaleDown.policies,
    );
    assert.equal(resolveScaling({ fallback: { replicas: 1 } }).fallback?.afterFailures, 3);
  });

  test('scale-up limit: the best of the policies, from the period start', () => {
    const rules = resolveScaling({}).scaleUp;
    assert.equal(scaleUpLimit(0, [], rules, T0).replicas, 4);
    assert.equal(scaleUpLimit(3, [], rules, T0).replicas, 7);
    assert.equal(scaleUpLimit(8, [], rules, T0).replicas, 16);
    // 6 now, 4 of them added 10 s ago: the period started at 2.
    assert.equal(scaleUpLimit(6, [{ at: T0 - 10_000, change: 4 }], rules, T0).replicas, 6);
  });

  test('scale-down limit: Disabled keeps the current count', () => {
    const rules = resolveScaling({ scaleDown: { selectPolicy: 'Disabled' } }).scaleDown;
    assert.deepEqual(scaleDownLimit(7, [], rules, T0), { replicas: 7 });
  });

  test('stabilize: the current count moves into [lowest in up window, highest in down window]', () => {
    const recs = [
      { at: T0 - 50_000, replicas: 9 },
      { at: T0 - 20_000, replicas: 4 },
    ];
    assert.equal(stabilize(6, 2, recs, 0, 120, T0).replicas, 6);
    assert.equal(stabilize(10, 2, recs, 0, 120, T0).replicas, 9);
    assert.equal(stabilize(2, 8, recs, 30, 0, T0).replicas, 4);
    assert.equal(stabilize(2, 8, recs, 0, 0, T0).replicas, 8);
    // A recommendation exactly one window old is out (the HPA's `timestamp.After(cutoff)`).
    assert.equal(stabilize(10, 2, recs, 0, 50, T0).replicas, 4);
    assert.equal(stabilize(2, 8, recs, 20, 0, T0).replicas, 8);
  });
});
