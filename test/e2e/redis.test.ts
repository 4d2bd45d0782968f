/** The whole loop on Redis: the chart-installed operator scales worker pods that run real tasks. */
import { test } from 'node:test';
import {
  burstToZero,
  chaos,
  leaderKilled,
  redisRestart,
  scaleDownWhileBusy,
  steadyArrivals,
} from './support/scenarios.ts';

test('redis: a burst scales the fleet 0 → N, and it returns to 0 when idle; nothing lost', (t) =>
  burstToZero(t, 'redis'));
test('redis: scale-down during processing loses nothing and spares busy pods', (t) => scaleDownWhileBusy(t, 'redis'));
test('redis: kill -9 random workers during a 50,000-task run: every task succeeds', (t) => chaos(t, 'redis'));
test('redis: the operator leader killed mid-burst: the other takes over and scaling goes on', (t) =>
  leaderKilled(t, 'redis'));
test('redis: steady arrivals: the throughput-aware mode holds the drain time near its target', (t) =>
  steadyArrivals(t, 'redis'));
test('redis: Redis restarted mid-run: the fleet recovers by itself, nothing lost', (t) => redisRestart(t));
