/**
 * TaskQueue schedules, fired by the operator's leader through the same scheduler as `taskfleet beat`:
 * every tick fired exactly once, even when the leader is killed mid-run and another takes over.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, test } from 'node:test';
import { Redis } from 'ioredis';
import { eventually } from '../../support/eventually.ts';
import { inNamespace, kubectl } from '../../support/kube.ts';
import { operatorKubeconfig, startOperator } from '../../support/operator.ts';
import { useRedis } from '../../support/stack.ts';

const namespace = `sched-${randomUUID().slice(0, 8)}`;
const prefix = `sch-${randomUUID().slice(0, 8)}`;
const queue = `ticks-${randomUUID().slice(0, 6)}`;
const redisUrl = (await useRedis()).url;
const kubeconfig = await operatorKubeconfig(namespace);
const operators = [
  startOperator(kubeconfig, namespace, 'operator-a', { TASKFLEET_LEASE_DURATION: '4000' }),
  startOperator(kubeconfig, namespace, 'operator-b', { TASKFLEET_LEASE_DURATION: '4000' }),
];
const redis = new Redis(redisUrl);
after(() => redis.disconnect());

interface Json {
  // biome-ignore lint/suspicious/noExplicitAny: reading kubectl's JSON in assertions
  [key: string]: any;
}
const schedulesStatus = async () =>
  ((JSON.parse(await kubectl(['get', 'taskqueue', 'ticker', '-n', namespace, '-o', 'json'])) as Json).status
    ?.schedules ?? []) as Json[];
const fires = async (name: string) => (await schedulesStatus()).find((s) => s.name === name)?.fires ?? 0;

/** The ids of every call the schedules put on the queue (priority 5: the normal lane). */
async function firedIds(): Promise<string[]> {
  const entries = (await redis.xrange(`{${prefix}:${queue}}:lane:1`, '-', '+')) as [string, string[]][];
  return entries.map(([, fields]) => (JSON.parse(fields[1] as string) as { id: string }).id);
}

test('the leader fires each tick once; kill -9 it and the new leader goes on without a tick lost or doubled', async () => {
  await inNamespace(namespace).applyTaskQueue('ticker', {
    queue,
    broker: { redis: { url: redisUrl, prefix } },
    worker: { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } },
    scaling: { pollIntervalSeconds: 1, maxReplicas: 1 },
    schedules: [
      { name: 'every-second', everySeconds: 1, task: 'tick', args: ['interval'] },
      { name: 'cron-second', cron: '* * * * * *', timeZone: 'Europe/Paris', task: 'tick', args: ['cron'] },
    ],
  });
  await eventually(
    '3 fires of each schedule',
    async () => (await fires('every-second')) >= 3 && (await fires('cron-second')) >= 3,
    60_000,
  );
  const lease = async () =>
    (JSON.parse(await kubectl(['get', 'lease', 'taskfleet-operator', '-n', namespace, '-o', 'json'])) as Json).spec;
  const holder = (await lease()).holderIdentity as string;
  const leader = operators.find((o) => o.identity === holder);
  assert.ok(leader, `the lease is held by ${holder}`);
  leader.child.kill('SIGKILL');
  const before = await fires('every-second');
  await eventually(
    'the other operator to take over and fire 3 more',
    async () => {
      const spec = await lease();
      return spec.holderIdentity !== holder && (await fires('every-second')) >= before + 3;
    },
    60_000,
  );

  const status = await schedulesStatus();
  for (const name of ['every-second', 'cron-second']) {
    const ids = (await firedIds()).filter((id) => id.startsWith(`${name}@`));
    const ticks = ids.map((id) => Date.parse(id.slice(name.length + 1))).sort((a, b) => a - b);
    assert.equal(new Set(ids).size, ids.length, `${name}: a tick fired twice: ${ids.join(', ')}`);
    for (let i = 1; i < ticks.length; i++) {
      assert.equal(
        ticks[i]! - ticks[i - 1]!,
        1000,
        `${name}: a tick is missing after ${new Date(ticks[i - 1]!).toISOString()}`,
      );
    }
    const entry = status.find((s) => s.name === name);
    assert.ok(entry?.lastFire && entry?.nextFire, JSON.stringify(entry));
    assert.ok(Date.parse(entry.nextFire) > Date.parse(entry.lastFire));
    console.log(`${name}: ${ids.length} ticks fired across the failover, none doubled, none missing`);
  }
});
