import { join } from 'node:path';
import type { Json } from '../stack/taskqueue.ts';
import { kubectl } from './kube.ts';
import { type OperatorProcess, startOperator } from './operator.ts';
import { serviceAccountKubeconfig } from './service-account.ts';
import { useKube } from './stack.ts';

/** Set by the test harness instead: the process needs its own (source conditions, a free metrics port). */
const harnessVariables = new Set(['NODE_OPTIONS', 'TASKFLEET_METRICS_PORT']);

/**
 * The literal environment variables of the operator container of a Deployment the chart rendered or
 * installed (TASKFLEET_*), without those taken from the pod (POD_NAME, POD_NAMESPACE) or the harness's own.
 */
export function operatorEnvironment(deployment: Json): Record<string, string> {
  const env = (deployment.spec.template.spec.containers[0].env ?? []) as Json[];
  return Object.fromEntries(
    env.filter((e) => typeof e.value === 'string' && !harnessVariables.has(e.name)).map((e) => [e.name, e.value]),
  );
}

export interface ChartOperator extends OperatorProcess {
  /** `system:serviceaccount:<namespace>:<name>`: who the operator is to the API server (and its audit log). */
  username: string;
}

/**
 * Runs the operator as a pod of the chart's installed Deployment `namespace/deployment` would run (the
 * stack has no kubelet): as a local process with a token of the Deployment's ServiceAccount — so with
 * exactly the RBAC the chart gave it, under the chart's admission policies for that ServiceAccount — and
 * with the Deployment's TASKFLEET_* environment. Call it at a test file's top level or in a test: the
 * process is killed when the file ends.
 */
export async function startChartOperator(
  namespace: string,
  deployment: string,
  { identity, extraEnv = {} }: { identity: string; extraEnv?: Record<string, string> },
): Promise<ChartOperator> {
  const kube = await useKube();
  const installed = JSON.parse(await kubectl(['get', 'deployment', deployment, '-n', namespace, '-o', 'json'])) as Json;
  const serviceAccount = installed.spec.template.spec.serviceAccountName as string;
  const kubeconfig = await serviceAccountKubeconfig(kube, namespace, serviceAccount, {
    file: join(kube.kubeconfig, '..', `${namespace}-${identity}.kubeconfig`),
  });
  const operator = startOperator(kubeconfig, namespace, identity, { ...operatorEnvironment(installed), ...extraEnv });
  return { ...operator, username: `system:serviceaccount:${namespace}:${serviceAccount}` };
}
