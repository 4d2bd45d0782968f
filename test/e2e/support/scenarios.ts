/**
 * The end-to-end scenarios, written once and run for each broker (redis.test.ts, kafka.test.ts). Each
 * reports what the issue asks for — peak replicas, time to scale out and back to zero, tasks lost (must
 * be 0), tasks repeated, busy pods deleted — as a test diagnostic and in $TASKFLEET_E2E_REPORT (JSON
 * lines) when set.
 */
import assert from 'node:assert/strict';
import { appendFile } from 'node:fs/promises';
import type { TestContext } from 'node:test';
import { eventually } from '../../support/eventually.ts';
import { kubectl } from '../../support/kube.ts';
import { seededRandom } from '../../support/random.ts';
import { privateRedis } from '../../support/worker-tools.ts';
import { burst, drained, type Fleet, type FleetOptions, seconds, startFleet } from './fleet.ts';

export interface Report {
  scenario: string;
  broker: string;
  tasks: number;
  peakReplicas: number;
  scaleOutSeconds?: number;
  backToZeroSeconds?: number;
  lost: number;
  repeated: number;
  busyPodsDeleted: number;
  /** Of those, deleted while another worker that stayed had been idle since the decision. */
  busyPodsDeletedWhileOneIdle: number;
  [more: string]: unknown;
}

export async function report(
  t: TestContext,
  fleet: Fleet,
  fields: Omit<Report, 'repeated' | 'busyPodsDeleted' | 'busyPodsDeletedWhileOneIdle' | 'peakReplicas'> &
    Partial<Report>,
) {
  const runs = await fleet.runs();
  const deletions = await fleet.busyDeletions();
  const full = {
    peakReplicas: Math.max(0, ...fleet.timeline.map((s) => s.readyReplicas)),
    repeated: [...runs.values()].filter((n) => n > 1).length,
    busyPodsDeleted: deletions.busy,
    busyPodsDeletedWhileOneIdle: deletions.avoidable,
    ...fields,
  } as Report;
  t.diagnostic(JSON.stringify(full));
  if (process.env.TASKFLEET_E2E_REPORT) await appendFile(process.env.TASKFLEET_E2E_REPORT, `${JSON.stringify(full)}\n`);
  return full;
}

/** When the timeline first satisfied `predicate` at or after `from` (ms since the fleet started). */
function firstAt(fleet: Fleet, from: number, predicate: (s: Fleet['timeline'][number]) => boolean): number | undefined {
  return fleet.timeline.find((s) => s.t >= from && predicate(s))?.t;
}

/** 0 → N on a burst, N → 0 once idle, nothing lost. */
export async function burstToZero(t: TestContext, broker: FleetOptions['broker'], extra: Partial<FleetOptions> = {}) {
  const fleet = await startFleet('burst', {
    broker,
    ...extra,
    scaling: { maxReplicas: 4, targetBacklogPerReplica: 200, ...extra.scaling },
  });
  await fleet.until('zero replicas before the burst', (s) => s.replicas === 0, 60_000);
  const sentAt = Date.now() - fleet.startedAt;
  const ids = await burst(fleet, 3000, 40);
  const peak = await fleet.until('the fleet to scale out to 2 or more ready workers', (s) => s.readyReplicas >= 2);
  const missing = await drained(fleet, ids);
  const doneAt = Date.now() - fleet.startedAt;
  await fleet.until('back to zero replicas', (s) => s.replicas === 0 && s.pods === 0, 120_000);
  const firstReady = firstAt(fleet, sentAt, (s) => s.readyReplicas >= 1);
  const zeroAt = firstAt(fleet, doneAt, (s) => s.replicas === 0 && s.pods === 0);
  const r = await report(t, fleet, {
    scenario: 'burst 0 → N → 0',
    broker,
    tasks: ids.length,
    lost: missing.length,
    firstWorkerReadySeconds: firstReady === undefined ? undefined : seconds(firstReady - sentAt),
    scaleOutSeconds: seconds(peak.t - sentAt),
    backToZeroSeconds: zeroAt === undefined ? undefined : seconds(zeroAt - doneAt),
  });
  assert.equal(r.lost, 0);
  assert.ok(r.peakReplicas >= 2, `scaled out to ${r.peakReplicas}`);
}

/** Kill -9 random worker pods during a 50,000-task run: every task reaches SUCCESS. */
export async function chaos(
  t: TestContext,
  broker: FleetOptions['broker'],
  extra: Partial<FleetOptions> = {},
  { killEveryMs = [1000, 3000] }: { killEveryMs?: [number, number] } = {},
) {
  const fleet = await startFleet('chaos', {
    broker,
    concurrency: 16,
    ...extra,
    scaling: { minReplicas: 3, maxReplicas: 4, targetBacklogPerReplica: 500, ...extra.scaling },
  });
  await fleet.until('three ready workers', (s) => s.readyReplicas >= 3, 90_000);
  const seed = Number(process.env.TASKFLEET_CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
  const random = seededRandom(seed);
  const sending = burst(fleet, 50_000, 0);
  let kills = 0;
  let stop = false;
  const killer = (async () => {
    while (!stop) {
      const [least, most] = killEveryMs;
      await new Promise((resolve) => setTimeout(resolve, least + random() * (most - least)));
      const workers = fleet.runner.pods.filter((p) => p.pid !== undefined && !p.name.includes('operator'));
      const victim = workers[Math.floor(random() * workers.length)];
      if (victim && fleet.runner.kill(victim.name, 'SIGKILL')) kills++;
    }
  })();
  const ids = await sending;
  const missing = await drained(fleet, ids, 300_000);
  stop = true;
  await killer;
  const r = await report(t, fleet, {
    scenario: 'chaos: kill -9 workers',
    broker,
    tasks: ids.length,
    lost: missing.length,
    seed,
    kills,
  });
  assert.equal(r.lost, 0, `seed ${seed}: ${missing.length} tasks never succeeded`);
  assert.ok(kills > 0);
}

/**
 * Scale-down while workers are running calls: none lost, and no busy pod removed while one that stays had
 * been idle since the operator read the in-flight counts (see Fleet.busyDeletions).
 */
export async function scaleDownWhileBusy(
  t: TestContext,
  broker: FleetOptions['broker'],
  extra: Partial<FleetOptions> = {},
) {
  const fleet = await startFleet('shrink', {
    broker,
    concurrency: 2,
    grace: 30,
    ...extra,
    scaling: { maxReplicas: 4, targetBacklogPerReplica: 10, scaleDown: { stabilizationSeconds: 0 }, ...extra.scaling },
  });
  // Long and short calls mixed: as the backlog drains, some workers hold a long call while others go
  // idle, and the scale-down has a choice to make. The fleet shrinks while calls still run.
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    ids.push(...(await burst(fleet, 10, 4000)), ...(await burst(fleet, 20, 100)));
  }
  await fleet.until('four ready workers', (s) => s.readyReplicas >= 4);
  const missing = await drained(fleet, ids);
  await fleet.until('back to zero replicas', (s) => s.replicas === 0 && s.pods === 0, 120_000);
  const terminated = fleet.events.filter((e) => e.kind === 'terminating' && !e.pod.includes('operator')).length;
  const r = await report(t, fleet, {
    scenario: 'scale-down during processing',
    broker,
    tasks: ids.length,
    lost: missing.length,
    podsTerminated: terminated,
  });
  assert.equal(r.lost, 0);
  assert.ok(terminated >= 4, `the fleet scaled down (${terminated} worker pods terminated)`);
  const { detail } = await fleet.busyDeletions();
  assert.equal(r.busyPodsDeletedWhileOneIdle, 0, `busy pods deleted while one was idle: ${detail.join('; ')}`);
}

/** The operator leader killed mid-burst: the other replica takes over and scaling goes on. */
export async function leaderKilled(t: TestContext, broker: FleetOptions['broker'], extra: Partial<FleetOptions> = {}) {
  const fleet = await startFleet('leader', {
    broker,
    ...extra,
    scaling: { maxReplicas: 4, targetBacklogPerReplica: 200, ...extra.scaling },
  });
  const lease = async () => {
    const leases = JSON.parse(await kubectl(['get', 'lease', '-n', fleet.namespace, '-o', 'json'])) as {
      items: { spec?: { holderIdentity?: string } }[];
    };
    return leases.items.map((l) => l.spec?.holderIdentity).find((h) => h?.includes('operator'));
  };
  const ids = await burst(fleet, 2000, 40);
  await fleet.until('a first worker', (s) => s.readyReplicas >= 1);
  const leader = await lease();
  assert.ok(leader, 'a leader holds the Lease');
  const killedAt = Date.now() - fleet.startedAt;
  // As a node failure would: the process dies at once and its pod is gone; the other replica must take over.
  fleet.runner.kill(leader, 'SIGKILL');
  await kubectl(['delete', 'pod', leader, '-n', fleet.namespace, '--grace-period=0', '--force']);
  const peak = await fleet.until(
    'the fleet to keep scaling out after the leader died',
    (s) => s.t > killedAt && s.readyReplicas >= 2,
  );
  const missing = await drained(fleet, ids);
  await fleet.until('back to zero replicas', (s) => s.replicas === 0 && s.pods === 0, 120_000);
  const r = await report(t, fleet, {
    scenario: 'operator leader killed mid-burst',
    broker,
    tasks: ids.length,
    lost: missing.length,
    killedLeader: leader,
    newLeader: await eventually('another leader', async () => {
      const holder = await lease();
      return holder !== leader && holder;
    }),
    scaledAfterKillSeconds: seconds(peak.t - killedAt),
  });
  assert.equal(r.lost, 0);
}

/**
 * Steady arrivals in throughput-aware mode: the fleet is sized so that what waits drains within
 * targetDrainSeconds. Reports the drain time (waiting ÷ completion rate) the operator held.
 */
export async function steadyArrivals(
  t: TestContext,
  broker: FleetOptions['broker'],
  extra: Partial<FleetOptions> = {},
) {
  const target = 10;
  const fleet = await startFleet('steady', {
    broker,
    concurrency: 4,
    ...extra,
    scaling: { maxReplicas: 6, targetDrainSeconds: target, ...extra.scaling },
  });
  const rate = 120; // calls a second, 50 ms each: about two workers' worth at 4 at a time
  const seconds_ = 40;
  const ids: string[] = [];
  const startedAt = Date.now() - fleet.startedAt;
  for (let s = 0; s < seconds_ * 4; s++) {
    const tick = Date.now();
    const results = await fleet.work.applyBulk(Array.from({ length: rate / 4 }, () => [50] as [number]));
    ids.push(...results.map((r) => r.id));
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, 250 - (Date.now() - tick))));
  }
  const missing = await drained(fleet, ids);
  // After a warm-up of a third of the run: how long what waited would take to drain at the rate served.
  const steady = fleet.timeline.filter(
    (s) => s.t > startedAt + (seconds_ * 1000) / 3 && s.t < startedAt + seconds_ * 1000,
  );
  const drainTimes = steady
    .map((s) => (s.completion > 0 ? s.waiting / s.completion : s.waiting > 0 ? Infinity : 0))
    .sort((a, b) => a - b);
  const p50 = drainTimes[Math.floor(drainTimes.length / 2)] ?? 0;
  const p90 = drainTimes[Math.floor(drainTimes.length * 0.9)] ?? 0;
  const r = await report(t, fleet, {
    scenario: 'steady arrivals, throughput-aware',
    broker,
    tasks: ids.length,
    lost: missing.length,
    targetDrainSeconds: target,
    drainSecondsP50: Math.round(p50 * 10) / 10,
    drainSecondsP90: Math.round(p90 * 10) / 10,
    replicasDuringRun: [...new Set(steady.map((s) => s.readyReplicas))].sort(),
  });
  assert.equal(r.lost, 0);
  assert.ok(p50 <= target, `the drain time's median was ${p50.toFixed(1)} s, over the ${target} s target`);
}

/** Redis restarted mid-run (stopped for seconds, data kept): workers and operator recover by themselves. */
export async function redisRestart(t: TestContext) {
  const redis = await privateRedis({ persist: true });
  const fleet = await startFleet('restart', {
    broker: 'redis',
    redisUrl: redis.endpoint.url,
    scaling: { maxReplicas: 3, targetBacklogPerReplica: 500 },
  });
  const ids = await burst(fleet, 5000, 20);
  await fleet.until('two ready workers', (s) => s.readyReplicas >= 2);
  const stoppedAt = Date.now();
  await redis.stop();
  await new Promise((resolve) => setTimeout(resolve, 3000));
  await redis.start();
  const downSeconds = seconds(Date.now() - stoppedAt);
  const missing = await drained(fleet, ids);
  const recoveredAt = Date.now() - fleet.startedAt;
  await fleet.until('back to zero replicas', (s) => s.replicas === 0 && s.pods === 0, 120_000);
  const tq = await fleet.taskQueue();
  const reachable = tq.status?.conditions?.find((c: { type: string }) => c.type === 'BrokerReachable');
  const r = await report(t, fleet, {
    scenario: 'Redis restarted mid-run',
    broker: 'redis',
    tasks: ids.length,
    lost: missing.length,
    redisDownSeconds: downSeconds,
    drainedAfterStartSeconds: seconds(recoveredAt - (stoppedAt - fleet.startedAt)),
    // Containers the pod runner had to restart (a worker that crashed instead of reconnecting).
    workerRestarts: fleet.events.filter((e) => e.kind === 'started' && e.restart > 0 && !e.pod.includes('operator'))
      .length,
  });
  assert.equal(r.lost, 0);
  assert.equal(reachable?.status, 'True');
}
