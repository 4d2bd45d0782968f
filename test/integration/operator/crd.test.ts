/** The TaskQueue CRD as the real API server enforces it: defaults, bounds, enums, CEL rules, columns, explain. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { installCrds } from '../../support/crds.ts';
import { kubectl } from '../../support/kube.ts';

const namespace = `crd-${randomUUID().slice(0, 8)}`;
before(async () => {
  await installCrds();
  await kubectl(['create', 'namespace', namespace]);
});
after(() => kubectl(['delete', 'namespace', namespace, '--wait=false']));

const worker = 'worker: { template: { spec: { containers: [{ name: worker, image: example/tasks:1 }] } } }';
const apply = (name: string, spec: string) =>
  kubectl(['apply', '-f', '-'], {
    input: `apiVersion: taskfleet.dev/v1alpha1
kind: TaskQueue
metadata: { name: ${name}, namespace: ${namespace} }
spec: ${spec}
`,
  });

test('a minimal TaskQueue is accepted and gets its defaults', async () => {
  await apply('emails', `{ broker: { redis: { url: "redis://redis:6379/0" } }, ${worker} }`);
  const tq = JSON.parse(await kubectl(['get', 'taskqueue', 'emails', '-n', namespace, '-o', 'json']));
  assert.deepEqual(
    {
      min: tq.spec.scaling.minReplicas,
      max: tq.spec.scaling.maxReplicas,
      poll: tq.spec.scaling.pollIntervalSeconds,
      target: tq.spec.scaling.targetBacklogPerReplica,
      idle: tq.spec.scaling.idleSecondsBeforeZero,
      tolerance: tq.spec.scaling.tolerance,
      downWindow: tq.spec.scaling.scaleDown?.stabilizationSeconds,
      concurrency: tq.spec.worker.concurrency,
      grace: tq.spec.worker.terminationGracePeriodSeconds,
      prefix: tq.spec.broker.redis.prefix,
    },
    {
      min: 0,
      max: 10,
      poll: 2,
      target: 100,
      idle: 120,
      tolerance: 0.1,
      downWindow: undefined,
      concurrency: 16,
      grace: 300,
      prefix: 'tf',
    },
  );
});

const rejected: [string, string, RegExp][] = [
  [
    'min above max',
    `{ broker: { redis: { url: "redis://r" } }, ${worker}, scaling: { minReplicas: 5, maxReplicas: 2 } }`,
    /minReplicas must not exceed maxReplicas/,
  ],
  [
    'both worker and scaleTargetRef',
    `{ broker: { redis: { url: "redis://r" } }, ${worker}, scaleTargetRef: { name: d } }`,
    /set exactly one of worker .* and scaleTargetRef/,
  ],
  ['neither worker nor scaleTargetRef', '{ broker: { redis: { url: "redis://r" } } }', /set exactly one of worker/],
  ['no broker', `{ broker: {}, ${worker} }`, /set exactly one broker/],
  [
    'both url and urlFrom',
    `{ broker: { redis: { url: "redis://r", urlFrom: { secretKeyRef: { name: s, key: k } } } }, ${worker} }`,
    /set exactly one of url and urlFrom/,
  ],
  [
    'a URL that is not Redis',
    `{ broker: { redis: { url: "http://r" } }, ${worker} }`,
    /spec\.broker\.redis\.url in body should match '\^rediss\?:\/\/'/,
  ],
  [
    'negative maxReplicas',
    `{ broker: { redis: { url: "redis://r" } }, ${worker}, scaling: { maxReplicas: -1 } }`,
    /spec\.scaling\.maxReplicas: Invalid value: -1: spec\.scaling\.maxReplicas in body should be greater than or equal to 1/,
  ],
  [
    'an unknown policy type',
    `{ broker: { redis: { url: "redis://r" } }, ${worker}, scaling: { scaleUp: { policies: [{ type: Fast, value: 1, periodSeconds: 1 }] } } }`,
    /Unsupported value: "Fast": supported values: "Pods", "Percent"/,
  ],
  [
    'fallback above max',
    `{ broker: { redis: { url: "redis://r" } }, ${worker}, scaling: { maxReplicas: 3, fallback: { replicas: 4 } } }`,
    /fallback\.replicas must not exceed maxReplicas/,
  ],
  [
    'a schedule with both cron and everySeconds',
    `{ broker: { redis: { url: "redis://r" } }, ${worker}, schedules: [{ name: s, cron: "* * * * *", everySeconds: 5, task: t }] }`,
    /set exactly one of cron and everySeconds/,
  ],
  [
    'a bad queue name',
    `{ queue: "has spaces", broker: { redis: { url: "redis://r" } }, ${worker} }`,
    /spec\.queue in body should match/,
  ],
];
for (const [what, spec, message] of rejected) {
  test(`the API server rejects ${what}`, async () => {
    await assert.rejects(apply(`bad-${randomUUID().slice(0, 6)}`, spec), message);
  });
}

test('kubectl get shows the printer columns; kubectl explain reads the field docs', async () => {
  const table = await kubectl(['get', 'taskqueues', '-n', namespace]);
  assert.match(table.split('\n')[0] ?? '', /^NAME\s+BROKER\s+BACKLOG\s+READY\s+DESIRED\s+RATE\s+AGE$/);
  const explain = (await kubectl(['explain', 'taskqueue.spec.scaling.targetDrainSeconds'])).replace(/\s+/g, ' ');
  assert.match(explain, /Throughput-aware mode: enough replicas to serve arrivals and drain the backlog/);
  assert.match(await kubectl(['get', 'tq', '-n', namespace, '-o', 'name']), /taskqueue\.taskfleet\.dev\/emails/);
});
