/**
 * The TaskQueues the console shows beside the queues, read from the Kubernetes API with a kubeconfig
 * (or in-cluster credentials). @kubernetes/client-node is loaded only when this is used: the worker
 * package does not depend on it, and says what to install when it is missing.
 */
import { ConfigError } from '../errors.ts';
import type { TaskQueueSource } from './api.ts';
import type { TaskQueueView } from './contract.ts';

const GROUP = 'taskfleet.dev';
const VERSION = 'v1alpha1';
const PLURAL = 'taskqueues';

interface TaskQueueObject {
  metadata?: { name?: string; namespace?: string };
  spec?: { queue?: string };
  status?: {
    replicas?: number;
    readyReplicas?: number;
    desiredReplicas?: number;
    lastScaleTime?: string;
    lastScaleReason?: string;
    conditions?: { type?: string; status?: string; reason?: string; message?: string }[];
  };
}

/**
 * A source of TaskQueues: from `kubeconfig` (a file), else $KUBECONFIG or in-cluster credentials.
 * `namespace` limits it to one namespace (the console then needs only a Role there).
 */
export async function taskQueuesFrom({
  kubeconfig,
  namespace,
}: {
  kubeconfig?: string;
  namespace?: string;
}): Promise<TaskQueueSource> {
  let k8s: typeof import('@kubernetes/client-node');
  try {
    k8s = await import('@kubernetes/client-node');
  } catch {
    throw new ConfigError(
      'showing TaskQueues needs @kubernetes/client-node: `npm install @kubernetes/client-node` beside taskfleet, or run without --kubeconfig',
    );
  }
  const config = new k8s.KubeConfig();
  if (kubeconfig) config.loadFromFile(kubeconfig);
  else config.loadFromDefault();
  const api = config.makeApiClient(k8s.CustomObjectsApi);
  return {
    async list() {
      const answer = (
        namespace
          ? await api.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace, plural: PLURAL })
          : await api.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
      ) as { items?: TaskQueueObject[] };
      return (answer.items ?? []).map(view);
    },
  };
}

function view(object: TaskQueueObject): TaskQueueView {
  const status = object.status ?? {};
  const name = object.metadata?.name ?? '';
  return {
    namespace: object.metadata?.namespace ?? '',
    name,
    queue: object.spec?.queue ?? name,
    ...(status.desiredReplicas !== undefined ? { desiredReplicas: status.desiredReplicas } : {}),
    ...(status.readyReplicas !== undefined ? { readyReplicas: status.readyReplicas } : {}),
    ...(status.replicas !== undefined ? { replicas: status.replicas } : {}),
    conditions: (status.conditions ?? []).map((c) => ({
      type: c.type ?? '',
      status: c.status ?? '',
      ...(c.reason !== undefined ? { reason: c.reason } : {}),
      ...(c.message !== undefined ? { message: c.message } : {}),
    })),
    ...(status.lastScaleReason !== undefined || status.lastScaleTime !== undefined
      ? {
          lastScale: [
            {
              ...(status.lastScaleTime !== undefined ? { at: status.lastScaleTime } : {}),
              ...(status.lastScaleReason !== undefined ? { reason: status.lastScaleReason } : {}),
              ...(status.replicas !== undefined ? { to: status.replicas } : {}),
            },
          ],
        }
      : {}),
  };
}
