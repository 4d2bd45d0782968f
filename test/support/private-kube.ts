import type { Socket } from 'node:net';
import { join } from 'node:path';
import type { KubeEndpoint } from '../stack/kube.ts';
import { installCrdsInto } from './crds.ts';
import { kubectlWith } from './kube.ts';
import { type OperatorAccountOptions, operatorAccountKubeconfig } from './operator-account.ts';
import { spawnStack, stackFileVariable, useKube } from './stack.ts';

/**
 * A control plane only this test file uses: the file's own stack when it runs alone, else (under
 * `make test`, where files share one) a private one, torn down when the file's process exits, as the
 * file's own stack is (test/support/stack.ts) — not in an after() hook, which would run before the hooks
 * that still need it (they run in the order registered). For tests that change
 * what every other test would see (the CRD itself), or that need no other operator acting on their
 * TaskQueues: every operator a test starts watches every namespace unless told otherwise, and one started
 * with other flags (--read-secrets, --worker-resources) would disagree with it on the same objects.
 */
export async function privateKube(): Promise<KubeEndpoint> {
  if (!process.env[stackFileVariable]) return useKube();
  const owned = await spawnStack(['kube']);
  // Neither the pipe nor the child may keep this process alive; its exit is what stops the stack.
  owned.supervisor.unref();
  (owned.supervisor.stdin as Socket).unref();
  if (!owned.info.kube) throw new Error('the private stack has no kube');
  return owned.info.kube;
}

/**
 * In `kube`: the CRDs, the namespace `namespace` (and `others`), and a kubeconfig for the operator's
 * ServiceAccount in `namespace` bound as operatorAccountKubeconfig binds it.
 */
export async function privateOperatorKubeconfig(
  kube: KubeEndpoint,
  namespace: string,
  options: Omit<OperatorAccountOptions, 'clusterRoleBinding' | 'file'> & { others?: readonly string[] } = {},
): Promise<string> {
  const { others = [], ...account } = options;
  await installCrdsInto(kube);
  for (const ns of [namespace, ...others]) await kubectlWith(kube, ['create', 'namespace', ns]);
  return operatorAccountKubeconfig(kube, namespace, {
    ...account,
    clusterRoleBinding: `taskfleet-operator-${namespace}`,
    file: join(kube.kubeconfig, '..', `operator-${namespace}.kubeconfig`),
  });
}
