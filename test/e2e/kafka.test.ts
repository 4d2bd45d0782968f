/** The whole loop on Kafka: the same scenarios as on Redis, with the queue's topics in 8 partitions. */
import { test } from 'node:test';
import { burstToZero, chaos, leaderKilled, scaleDownWhileBusy, steadyArrivals } from './support/scenarios.ts';

test('kafka: a burst scales the fleet 0 → N, and it returns to 0 when idle; nothing lost', (t) =>
  burstToZero(t, 'kafka'));
test('kafka: scale-down during processing loses nothing and spares busy pods', (t) => scaleDownWhileBusy(t, 'kafka'));
// A killed worker's partitions wait out its session (the visibility timeout, 3 s here) and every kill
// and restart is a rebalance of the whole group: kills come less often than on Redis.
test('kafka: kill -9 random workers during a 50,000-task run: every task succeeds', (t) =>
  chaos(t, 'kafka', { workerEnv: { TASKFLEET_VISIBILITY_TIMEOUT: '3000' } }, { killEveryMs: [3000, 6000] }));
test('kafka: the operator leader killed mid-burst: the other takes over and scaling goes on', (t) =>
  leaderKilled(t, 'kafka'));
test('kafka: steady arrivals: the throughput-aware mode holds the drain time near its target', (t) =>
  steadyArrivals(t, 'kafka'));
