import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';

/** The one source of the operator's permissions: the Helm chart renders it, the tests bind to it. */
export const rbacRulesFile = new URL('../../charts/taskfleet/files/rbac-rules.yaml', import.meta.url).pathname;

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
}

export interface OperatorRbacRules {
  /** Wherever TaskQueues are watched: the ClusterRole's (every namespace) or each watched namespace's Role. */
  namespaceRules: PolicyRule[];
  /** Beside namespaceRules, only with the chart's `secrets.read: true`. */
  secretRules: PolicyRule[];
  /** The leader-election Role's, in the operator's namespace. */
  leaderElectionRules: PolicyRule[];
}

const groups = ['namespaceRules', 'secretRules', 'leaderElectionRules'] as const;

export async function operatorRbacRules(): Promise<OperatorRbacRules> {
  const rules = parse(await readFile(rbacRulesFile, 'utf8')) as Partial<OperatorRbacRules> | null;
  for (const group of groups) {
    if (!rules?.[group]?.length)
      throw new Error(`${rbacRulesFile} must hold ${groups.join(', ')}: ${group} is missing`);
  }
  return rules as OperatorRbacRules;
}

/** The rules of the role the operator gets where it watches TaskQueues, as the chart composes them. */
export async function watchedNamespaceRules({
  readSecrets = true,
}: {
  readSecrets?: boolean;
} = {}): Promise<PolicyRule[]> {
  const { namespaceRules, secretRules } = await operatorRbacRules();
  return readSecrets ? [...namespaceRules, ...secretRules] : namespaceRules;
}
