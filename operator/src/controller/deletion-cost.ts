import type { WorkerHeartbeat } from 'taskfleet';
import type { Control } from 'taskfleet/operator';
import type { TaskQueue } from '../api/types.ts';
import type { KubeClient } from '../runtime/kube-client.ts';
import { apiPath } from '../runtime/kube-path.ts';
import type { Deployment } from './drift.ts';

export const POD_DELETION_COST = 'controller.kubernetes.io/pod-deletion-cost';

/** What ranking a queue's pods takes. */
export interface DeletionCostContext {
  kube: Pick<KubeClient, 'get' | 'patch'>;
  /** The Control of the TaskQueue's result backend, where the heartbeats are; undefined without one. */
  resultBackend: () => Promise<Pick<Control, 'report'> | undefined>;
}

interface Pod {
  metadata: { name: string; annotations?: Record<string, string>; deletionTimestamp?: string };
}

/**
 * Before a scale-down, tells the ReplicaSet controller which pods are busy: pod-deletion-cost = the
 * calls each pod is running now, so idle pods are removed first. Now, not as of the last heartbeat
 * (up to an interval old, in which a busy worker goes idle and an idle one busy): the workers are asked
 * for a heartbeat at once, and waited for 500 ms at most (see {@link inFlightByPod}). What this does not
 * guarantee is in docs/scaling.md (spareBusyWorkers).
 */
export async function markBusyPods(ctx: DeletionCostContext, tq: TaskQueue, deployment: Deployment): Promise<void> {
  const namespace = tq.metadata.namespace as string;
  const labels = deployment.spec?.selector?.matchLabels;
  if (!labels) return;
  const control = await ctx.resultBackend();
  if (!control) return; // no heartbeats without a result backend: nothing to rank by
  const selector = Object.entries(labels)
    .map(([k, v]) => `${k}=${v}`)
    .join(',');
  const pods = await ctx.kube.get<{ items: Pod[] }>(
    apiPath({ group: '', version: 'v1', resource: 'pods', namespace }),
    {
      labelSelector: selector,
    },
  );
  const live = pods.items.filter((pod) => !pod.metadata.deletionTimestamp); // those going already do not count
  const names = new Set(live.map((p) => p.metadata.name));
  const { workers, answered } = await control.report(tq.spec.queue ?? tq.metadata.name, {
    timeoutMs: 500,
    expect: (w) => names.has(w.hostname),
  });
  await Promise.all(
    deletionCosts(live, inFlightByPod(workers, answered)).map(({ pod, cost }) =>
      ctx.kube.patch(
        apiPath({ group: '', version: 'v1', resource: 'pods', namespace, name: pod }),
        { metadata: { annotations: { [POD_DELETION_COST]: cost } } },
        'merge',
      ),
    ),
  );
}

/**
 * Calls in flight per pod (by the heartbeats' hostname, which is the pod's name), from the heartbeats
 * of a report: `answered` holds the workers that wrote theirs just now; the others are counted from their
 * last one. Of two heartbeats with one pod's name (a container restarted: the old one's heartbeat has
 * not expired yet), the fresh one counts, else the newer.
 */
export function inFlightByPod(
  workers: readonly Pick<WorkerHeartbeat, 'id' | 'hostname' | 'at' | 'active'>[],
  answered: ReadonlySet<string>,
): Map<string, number> {
  const best = new Map<string, { fresh: boolean; at: number; active: number }>();
  for (const w of workers) {
    const fresh = answered.has(w.id);
    const current = best.get(w.hostname);
    if (current && (current.fresh > fresh || (current.fresh === fresh && current.at >= w.at))) continue;
    best.set(w.hostname, { fresh, at: w.at, active: w.active.length });
  }
  return new Map([...best].map(([pod, { active }]) => [pod, active]));
}

/**
 * The pod-deletion-cost each pod should carry (its calls in flight; a pod without a worker, not started
 * yet, is idle: 0), for the pods whose annotation says otherwise: the others are not written again.
 */
export function deletionCosts(
  pods: readonly Pod[],
  inFlight: ReadonlyMap<string, number>,
): { pod: string; cost: string }[] {
  return pods.flatMap((pod) => {
    const cost = String(inFlight.get(pod.metadata.name) ?? 0);
    return pod.metadata.annotations?.[POD_DELETION_COST] === cost ? [] : [{ pod: pod.metadata.name, cost }];
  });
}
