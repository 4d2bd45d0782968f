import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { promisify } from 'node:util';
import { versions } from '../../stack/versions.ts';
import { kubectl } from '../../support/kube.ts';
import { useHelm, useKube } from '../../support/stack.ts';

const chart = new URL('fixtures/tiny-chart', import.meta.url).pathname;

async function helm(...args: string[]): Promise<string> {
  const [bin, kube] = [await useHelm(), await useKube()];
  const env = { ...process.env, ...bin.env, KUBECONFIG: kube.kubeconfig };
  return (await promisify(execFile)(bin.bin, args, { env })).stdout;
}

test('helm is the pinned Helm 3', async () => {
  assert.match(await helm('version', '--short'), new RegExp(`^${versions.HELM_VERSION.replaceAll('.', '\\.')}`));
});

test('helm install puts a chart into the cluster, helm uninstall takes it out', async () => {
  const namespace = `helm-${randomUUID().slice(0, 8)}`;
  await helm(
    'install',
    'smoke',
    chart,
    '--namespace',
    namespace,
    '--create-namespace',
    '--set',
    'greeting=hi',
    '--wait',
  );
  const greeting = await kubectl([
    'get',
    'configmap',
    'smoke-tiny',
    '-n',
    namespace,
    '-o',
    'jsonpath={.data.greeting}',
  ]);
  assert.equal(greeting, 'hi');
  assert.match(await helm('list', '--namespace', namespace, '--short'), /^smoke$/m);
  await helm('uninstall', 'smoke', '--namespace', namespace, '--wait');
  await assert.rejects(kubectl(['get', 'configmap', 'smoke-tiny', '-n', namespace]), /NotFound/);
  await kubectl(['delete', 'namespace', namespace, '--wait=false']);
});
