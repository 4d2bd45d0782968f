import type { KubeEndpoint } from '../stack/kube.ts';
import { kubectlWith } from './kube.ts';
import { operatorRbacRules, watchedNamespaceRules } from './operator-rbac.ts';
import { serviceAccountKubeconfig } from './service-account.ts';

export interface OperatorAccountOptions {
  /** The ClusterRoleBinding to create when the operator watches every namespace (no `watchNamespaces`). */
  clusterRoleBinding: string;
  /** Where to write the kubeconfig. */
  file: string;
  /** @defaultValue '2h' */
  duration?: string;
  /** As the chart's `secrets.read`: false leaves out the secretRules group. @defaultValue true */
  readSecrets?: boolean;
  /**
   * As the chart's `watchNamespaces`: a Role and RoleBinding in each of these (existing) namespaces
   * instead of the ClusterRole. @defaultValue [] (every namespace)
   */
  watchNamespaces?: readonly string[];
}

/**
 * In an existing namespace: the operator's ServiceAccount, bound to exactly the rule groups of the chart's
 * charts/taskfleet/files/rbac-rules.yaml as the chart binds them — namespaceRules (plus secretRules unless
 * `readSecrets` is false) through a ClusterRole, or a Role per namespace of `watchNamespaces`; the
 * leader-election Role in the namespace — and a kubeconfig at `file` that authenticates with its token,
 * not as an admin, so a missing permission fails as it would in a cluster. Shared by the integration
 * tests and the benchmark.
 */
export async function operatorAccountKubeconfig(
  kube: KubeEndpoint,
  namespace: string,
  { clusterRoleBinding, file, duration = '2h', readSecrets = true, watchNamespaces = [] }: OperatorAccountOptions,
): Promise<string> {
  const kubectl = (args: readonly string[], input?: string) =>
    kubectlWith(kube, args, input === undefined ? {} : { input });
  const rules = await watchedNamespaceRules({ readSecrets });
  const { leaderElectionRules } = await operatorRbacRules();
  const subject = { kind: 'ServiceAccount', name: 'taskfleet-operator', namespace };
  const rbac = (kind: string, name: string, ns: string | undefined, body: object) => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind,
    metadata: { name, ...(ns ? { namespace: ns } : {}), labels: { 'app.kubernetes.io/name': 'taskfleet-operator' } },
    ...body,
  });
  const binding = (kind: string, name: string, ns: string | undefined, roleKind: string, role: string) =>
    rbac(kind, name, ns, {
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: roleKind, name: role },
      subjects: [subject],
    });
  // Cluster-scoped roles are shared by every test of a run: one name per rule set, so that none rewrites
  // another's.
  const clusterRole = readSecrets ? 'taskfleet-operator' : 'taskfleet-operator-without-secrets';
  const items = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'taskfleet-operator', namespace } },
    rbac('Role', 'taskfleet-operator-leader-election', namespace, { rules: leaderElectionRules }),
    binding(
      'RoleBinding',
      'taskfleet-operator-leader-election',
      namespace,
      'Role',
      'taskfleet-operator-leader-election',
    ),
    ...(watchNamespaces.length === 0
      ? [
          rbac('ClusterRole', clusterRole, undefined, { rules }),
          binding('ClusterRoleBinding', clusterRoleBinding, undefined, 'ClusterRole', clusterRole),
        ]
      : watchNamespaces.flatMap((ns) => [
          rbac('Role', `taskfleet-operator-${namespace}`, ns, { rules }),
          binding('RoleBinding', `taskfleet-operator-${namespace}`, ns, 'Role', `taskfleet-operator-${namespace}`),
        ])),
  ];
  await kubectl(['apply', '-f', '-'], JSON.stringify({ apiVersion: 'v1', kind: 'List', items }));
  return serviceAccountKubeconfig(kube, namespace, 'taskfleet-operator', { file, duration });
}
