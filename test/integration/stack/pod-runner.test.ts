/**
 * The stand-in kubelet: a worker Deployment's pods are bound, run as real `taskfleet worker` processes
 * with the pod's environment, reported Ready from /readyz, restarted when they crash, and stopped with
 * SIGTERM when scaled down.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { Taskfleet } from 'taskfleet';
import { type PodEvent, PodRunner } from '../../stack/pod-runner.ts';
import { eventually } from '../../support/eventually.ts';
import { kubectl } from '../../support/kube.ts';
import { useKube, useRedis } from '../../support/stack.ts';

const namespace = `pods-${randomUUID().slice(0, 8)}`;
const fixtures = new URL('../worker/fixtures/', import.meta.url).pathname;

test('a worker Deployment runs on the pod runner: env from Secrets, Ready from /readyz, restarts, graceful scale-down', async () => {
  const { url } = await useRedis();
  const prefix = `pods-${randomUUID().slice(0, 8)}`;
  await kubectl(['create', 'namespace', namespace]);
  await kubectl(['create', 'secret', 'generic', 'broker', '-n', namespace, `--from-literal=url=${url}`]);
  const events: PodEvent[] = [];
  const runner = new PodRunner({
    kubeconfig: (await useKube()).kubeconfig,
    namespaces: [namespace],
    dir: await mkdtemp(join(tmpdir(), 'pod-runner-')),
    paths: { '/app': fixtures },
    onEvent: (e) => events.push(e),
  });
  await runner.start();
  after(() => runner.stop());

  const secretEnv = (name: string) => ({ name, valueFrom: { secretKeyRef: { name: 'broker', key: 'url' } } });
  await kubectl(['apply', '-n', namespace, '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'workers' },
      spec: {
        replicas: 2,
        selector: { matchLabels: { app: 'workers' } },
        template: {
          metadata: { labels: { app: 'workers' } },
          spec: {
            terminationGracePeriodSeconds: 20,
            containers: [
              {
                name: 'worker',
                image: 'ghcr.io/taskfleet/worker:dev',
                args: ['--app', '/app/kafka-security.tasks.ts'],
                env: [
                  secretEnv('TASKFLEET_BROKER'),
                  secretEnv('TASKFLEET_BACKEND'),
                  { name: 'TASKFLEET_PREFIX', value: prefix },
                  { name: 'TASKFLEET_METRICS_PORT', value: '9090' },
                  { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
                ],
                readinessProbe: { httpGet: { path: '/readyz', port: 9090 } },
              },
            ],
          },
        },
      },
    }),
  });
  const deployment = async () =>
    JSON.parse(await kubectl(['get', 'deployment', 'workers', '-n', namespace, '-o', 'json'])) as {
      status?: { readyReplicas?: number; replicas?: number };
    };
  await eventually('two ready replicas', async () => (await deployment()).status?.readyReplicas === 2, 60_000);

  // They consume: a task sent to the queue runs.
  const app = new Taskfleet({ broker: url, backend: url, prefix });
  after(() => app.close());
  const shout = app.task('shout', (_ctx, text: string) => text.toUpperCase());
  assert.equal(await (await shout.delay('pods')).get({ timeout: 20_000 }), 'PODS');

  // A crash: the container is restarted and counted, as a kubelet does.
  const [victim] = runner.pods;
  assert.ok(victim);
  runner.kill(victim.name);
  await eventually(
    'the crashed container restarted and ready again',
    async () => {
      const pod = JSON.parse(await kubectl(['get', 'pod', victim.name, '-n', namespace, '-o', 'json']));
      const status = pod.status?.containerStatuses?.[0];
      return status?.restartCount === 1 && status.ready === true;
    },
    60_000,
  );

  // Scale to zero: each pod gets SIGTERM (the worker's graceful shutdown) and is removed.
  await kubectl(['scale', 'deployment', 'workers', '-n', namespace, '--replicas=0']);
  await eventually(
    'no pods left',
    async () => (await kubectl(['get', 'pods', '-n', namespace, '-o', 'name'])).trim() === '',
    60_000,
  );
  const exits = events.filter((e) => e.kind === 'exited' && e.signal === null);
  assert.ok(exits.length >= 2, `the workers exited by themselves after SIGTERM: ${JSON.stringify(events)}`);
  assert.equal(events.filter((e) => e.kind === 'deleted' && e.graceful).length, 2);
});
