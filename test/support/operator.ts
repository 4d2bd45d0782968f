import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import { after } from 'node:test';
import { installCrds } from './crds.ts';
import { kubectl } from './kube.ts';
import { operatorAccountKubeconfig } from './operator-account.ts';
import { useKube } from './stack.ts';

const main = new URL('../../operator/src/main.ts', import.meta.url).pathname;

/**
 * Call these at a test file's top level: the after() hooks they register then run when the file ends.
 *
 * A kubeconfig for the operator that authenticates as a ServiceAccount bound to exactly the rules in
 * charts/taskfleet/files/rbac-rules.yaml — not as an admin, so a missing permission fails the tests as it
 * would in a cluster.
 */
export async function operatorKubeconfig(namespace: string): Promise<string> {
  await installCrds();
  const kube = await useKube();
  await kubectl(['create', 'namespace', namespace]);
  after(() => kubectl(['delete', 'namespace', namespace, '--wait=false']));
  const clusterRoleBinding = `taskfleet-operator-${namespace}`;
  after(() => kubectl(['delete', 'clusterrolebinding', clusterRoleBinding]));
  return operatorAccountKubeconfig(kube, namespace, {
    clusterRoleBinding,
    file: join(kube.kubeconfig, '..', `operator-${namespace}.kubeconfig`),
  });
}

export interface OperatorProcess {
  child: ChildProcess;
  identity: string;
  output: () => string;
}

/** Runs `taskfleet-operator` as its own process, killed when the test file ends. */
export function startOperator(
  kubeconfig: string,
  namespace: string,
  identity: string,
  extra: Record<string, string> = {},
  { metricsPort = 0 }: { metricsPort?: number } = {},
): OperatorProcess {
  const child = spawn(
    process.execPath,
    [
      main,
      '--kubeconfig',
      kubeconfig,
      '--namespace',
      namespace,
      '--identity',
      identity,
      '--metrics-port',
      String(metricsPort),
    ],
    {
      env: { ...process.env, NODE_OPTIONS: '--conditions=source', TASKFLEET_LOG_LEVEL: 'info', ...extra },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let output = '';
  child.stdout?.on('data', (d) => {
    output += d;
  });
  child.stderr?.on('data', (d) => {
    output += d;
  });
  after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  });
  return { child, identity, output: () => output };
}
