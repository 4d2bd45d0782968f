import { writeFile } from 'node:fs/promises';
import type { KubeEndpoint } from '../stack/kube.ts';
import { kubectlWith } from './kube.ts';

const rbac = new URL('../../operator/rbac.yaml', import.meta.url).pathname;

/**
 * In an existing namespace: the operator's ServiceAccount, bound to exactly the rules of
 * operator/rbac.yaml (the ClusterRole through `clusterRoleBinding`, the leader-election Role in the
 * namespace), and a kubeconfig at `file` that authenticates with its token — not as an admin, so a
 * missing permission fails as it would in a cluster. Shared by the integration tests and the benchmark.
 */
export async function operatorAccountKubeconfig(
  kube: KubeEndpoint,
  namespace: string,
  { clusterRoleBinding, file, duration = '2h' }: { clusterRoleBinding: string; file: string; duration?: string },
): Promise<string> {
  const kubectl = (args: readonly string[]) => kubectlWith(kube, args);
  await kubectl(['create', 'serviceaccount', 'taskfleet-operator', '-n', namespace]);
  await kubectl(['apply', '-n', namespace, '-f', rbac]);
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
  const token = (
    await kubectl(['create', 'token', 'taskfleet-operator', '-n', namespace, `--duration=${duration}`])
  ).trim();
  const ca = (
    await kubectl(['config', 'view', '--raw', '-o', 'jsonpath={.clusters[0].cluster.certificate-authority-data}'])
  ).trim();
  await writeFile(
    file,
    `apiVersion: v1
kind: Config
clusters: [{ name: stack, cluster: { server: ${kube.server}, certificate-authority-data: ${ca} } }]
users: [{ name: operator, user: { token: ${token} } }]
contexts: [{ name: operator, context: { cluster: stack, user: operator } }]
current-context: operator
`,
    { mode: 0o600 },
  );
  return file;
}
