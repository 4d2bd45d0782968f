import type { KubeEndpoint } from '../stack/kube.ts';
import { kubectlWith } from './kube.ts';
import { operatorRolesManifest } from './operator-rbac.ts';
import { serviceAccountKubeconfig } from './service-account.ts';

/**
 * In an existing namespace: the operator's ServiceAccount, bound to exactly the rules of the chart's
 * charts/taskfleet/files/rbac-rules.yaml (the ClusterRole through `clusterRoleBinding`, the
 * leader-election Role in the namespace), and a kubeconfig at `file` that authenticates with its token —
 * not as an admin, so a missing permission fails as it would in a cluster. Shared by the integration
 * tests and the benchmark.
 */
export async function operatorAccountKubeconfig(
  kube: KubeEndpoint,
  namespace: string,
  { clusterRoleBinding, file, duration = '2h' }: { clusterRoleBinding: string; file: string; duration?: string },
): Promise<string> {
  const kubectl = (args: readonly string[], input?: string) =>
    kubectlWith(kube, args, input === undefined ? {} : { input });
  await kubectl(['create', 'serviceaccount', 'taskfleet-operator', '-n', namespace]);
  await kubectl(['apply', '-n', namespace, '-f', '-'], await operatorRolesManifest());
  const subject = `--serviceaccount=${namespace}:taskfleet-operator`;
  await kubectl(['create', 'clusterrolebinding', clusterRoleBinding, '--clusterrole=taskfleet-operator', subject]);
  await kubectl([
    'create',
    'rolebinding',
    'taskfleet-operator-leader-election',
    '-n',
    namespace,
    '--role=taskfleet-operator-leader-election',
    subject,
  ]);
  return serviceAccountKubeconfig(kube, namespace, 'taskfleet-operator', { file, duration });
}
