import { readFile } from 'node:fs/promises';
import { load } from 'js-yaml';

/** The one source of the operator's permissions: the Helm chart renders it, the tests bind to it. */
export const rbacRulesFile = new URL('../../charts/taskfleet/files/rbac-rules.yaml', import.meta.url).pathname;

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export interface OperatorRbacRules {
  /** The ClusterRole's: TaskQueues and worker objects in any namespace. */
  clusterRules: PolicyRule[];
  /** The leader-election Role's, in the operator's namespace. */
  leaderElectionRules: PolicyRule[];
}

export async function operatorRbacRules(): Promise<OperatorRbacRules> {
  const rules = load(await readFile(rbacRulesFile, 'utf8')) as Partial<OperatorRbacRules> | null;
  if (!rules?.clusterRules?.length || !rules.leaderElectionRules?.length) {
    throw new Error(`${rbacRulesFile} must hold clusterRules and leaderElectionRules`);
  }
  return rules as OperatorRbacRules;
}

/**
 * The ClusterRole `taskfleet-operator` and the Role `taskfleet-operator-leader-election` holding those
 * rules, as one manifest for `kubectl apply -n <namespace> -f -` (what the chart renders, without Helm).
 */
export async function operatorRolesManifest(): Promise<string> {
  const { clusterRules, leaderElectionRules } = await operatorRbacRules();
  const metadata = (name: string) => ({ name, labels: { 'app.kubernetes.io/name': 'taskfleet-operator' } });
  const role = (kind: string, name: string, rules: PolicyRule[]) => ({
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind,
    metadata: metadata(name),
    rules,
  });
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'List',
    items: [
      role('ClusterRole', 'taskfleet-operator', clusterRules),
      role('Role', 'taskfleet-operator-leader-election', leaderElectionRules),
    ],
  });
}
