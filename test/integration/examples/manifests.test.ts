/**
 * The example manifests (examples/k8s) as the real API server takes them, with the project's CRD:
 * every object is accepted by a server-side dry run with strict field validation, no field we wrote is
 * pruned, and the worker Deployment the operator would build from each TaskQueue is accepted too (the
 * CRD leaves the pod template to the Deployment's own validation).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TaskQueue } from '../../../operator/src/api/types.ts';
import { buildWorkerDeployment } from '../../../operator/src/controller/deployment.ts';
import { installCrdsInto } from '../../support/crds.ts';
import { eventually } from '../../support/eventually.ts';
import { kubectl } from '../../support/kube.ts';
import { useKube } from '../../support/stack.ts';
import { yamlDocuments } from '../../support/yaml.ts';

const examples = fileURLToPath(new URL('../../../examples/k8s/', import.meta.url));
const files = (await readdir(examples)).filter((f) => f.endsWith('.yaml')).sort();
const namespace = `examples-${randomUUID().slice(0, 8)}`;

interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; uid?: string };
  [field: string]: unknown;
}

before(async () => {
  // `kubectl wait` right after creating the CRD can fail before the CRD has any condition: retry it.
  const kube = await useKube();
  await eventually('the TaskQueue CRD', () => installCrdsInto(kube).then(() => true));
  await kubectl(['create', 'namespace', namespace]);
});
after(() => kubectl(['delete', 'namespace', namespace, '--wait=false']));

/** `kubectl apply --dry-run=server` (strict field validation, kubectl's default) of `objects`; what the server returned. */
async function dryRun(objects: readonly unknown[]): Promise<KubeObject[]> {
  const out = await kubectl(
    ['apply', '--dry-run=server', '--validate=strict', '-n', namespace, '-o', 'json', '-f', '-'],
    { input: objects.map((o) => JSON.stringify(o)).join('\n') },
  );
  const parsed = JSON.parse(out) as KubeObject & { items?: KubeObject[] };
  return parsed.kind === 'List' ? (parsed.items ?? []) : [parsed];
}

/** The paths of `expected` missing from, or different in, `actual` (extra fields in `actual` are fine). */
function missing(expected: unknown, actual: unknown, path = ''): string[] {
  if (expected !== null && typeof expected === 'object') {
    if (actual === null || typeof actual !== 'object') return [path];
    return Object.entries(expected).flatMap(([key, value]) =>
      missing(value, (actual as Record<string, unknown>)[key], `${path}.${key}`),
    );
  }
  return expected === actual ? [] : [`${path} (${JSON.stringify(expected)} → ${JSON.stringify(actual)})`];
}

test('there are example manifests for Redis and Kafka', () => {
  assert.deepEqual(files, ['taskqueue-kafka.yaml', 'taskqueue-redis.yaml']);
});

for (const file of files) {
  test(`examples/k8s/${file} is accepted by the API server, and so is its worker Deployment`, async () => {
    const objects = yamlDocuments(await readFile(join(examples, file), 'utf8')) as KubeObject[];
    const accepted = await dryRun(objects);
    assert.deepEqual(
      accepted.map((o) => `${o.kind}/${o.metadata.name}`),
      objects.map((o) => `${o.kind}/${o.metadata.name}`),
    );
    const taskQueues = accepted.filter((o) => o.kind === 'TaskQueue');
    assert.equal(taskQueues.length, 1, `${file} holds one TaskQueue`);
    for (const written of objects.filter((o) => o.kind === 'TaskQueue')) {
      const served = taskQueues.find((o) => o.metadata.name === written.metadata.name);
      assert.deepEqual(missing(written.spec, served?.spec, 'spec'), [], 'no field of the example was dropped');
    }

    const deployments = taskQueues.map((tq) => buildWorkerDeployment(tq as unknown as TaskQueue));
    const [deployment] = await dryRun(deployments);
    assert.equal(deployment?.kind, 'Deployment');
  });
}

test('a misspelt field in an example is refused, not dropped', async () => {
  const [, taskQueue] = yamlDocuments(await readFile(join(examples, 'taskqueue-kafka.yaml'), 'utf8')) as [
    KubeObject,
    KubeObject & { spec: { broker: { kafka: Record<string, unknown> } } },
  ];
  const { sasl, ...kafka } = taskQueue.spec.broker.kafka;
  taskQueue.spec.broker.kafka = { ...kafka, sals: sasl };
  await assert.rejects(dryRun([taskQueue]), /unknown field "spec\.broker\.kafka\.sals"/);
});
