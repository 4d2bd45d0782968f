import type { V1ResourceRequirements } from '@kubernetes/client-node';
import type { TaskQueue } from '../api/types.ts';
import type { KubeClient } from '../runtime/kube-client.ts';
import { apiPath } from '../runtime/kube-path.ts';
import { hashOf } from './canonical.ts';
import { buildWorkerDeployment, FIELD_MANAGER, workerDeploymentName } from './deployment.ts';
import { type Refusal, TaskQueueSpecError } from './errors.ts';
import { managedNameConflict, type Owner, type ScalerRef, scaleTargetOwner, targetOwnedMessage } from './ownership.ts';

export interface Deployment {
  metadata: {
    name: string;
    namespace?: string;
    uid?: string;
    resourceVersion?: string;
    labels?: Record<string, string>;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  };
  spec?: { replicas?: number; selector?: { matchLabels?: Record<string, string> } };
  status?: { replicas?: number; readyReplicas?: number };
}

/** What the informers hold that finding a TaskQueue's Deployment reads. */
export interface DeploymentCache {
  /** A managed Deployment, and the {@link driftHash} of it taken before the cache slimmed it down. */
  deployment(namespace: string, name: string): { deployment: Deployment; drift: string } | undefined;
  /** The TaskQueues of a namespace (to find another that scales the same Deployment). */
  taskQueues(namespace: string): readonly TaskQueue[];
  /** The HorizontalPodAutoscalers and KEDA ScaledObjects of a namespace, by what they scale. */
  scalers(namespace: string): ScalerRef[];
}

/** A queue's Deployment as the operator last built and applied it (kept between polls). */
export interface DriftState {
  /** Hash of the Deployment built for one generation of the TaskQueue (a pure function of it). */
  built?: { uid: string | undefined; generation: number | undefined; hash: string };
  /** The last server-side apply: what was sent and what the server made of it. */
  applied?: {
    /** Hash of the object sent. */
    desired: string;
    /** Hash of the Deployment as it came back (see {@link driftHash}). */
    live: string;
    uid: string | undefined;
    at: number;
  };
}

/** The Deployment to scale, or why there is none to scale. */
export type Found = { deployment: Deployment } | { refused: Refusal };

/** What finding and applying a TaskQueue's Deployment takes. */
export interface DriftContext {
  kube: Pick<KubeClient, 'find' | 'apply'>;
  cache: DeploymentCache;
  /** Re-apply a managed Deployment that seems unchanged at least this often (see ReconcilerOptions). */
  resyncMs: number;
  /** Resources of worker containers that set none (`--worker-resources`). */
  workerResources?: V1ResourceRequirements | undefined;
}

/**
 * The Deployment the TaskQueue scales. The managed one is applied with server-side apply (never
 * replicas) when it needs to be: when the object built from the TaskQueue changed since the last apply,
 * when the Deployment is missing or has changed in the cluster since (a drift or a deletion the informer
 * saw), or after `resyncMs` (`key` sets each queue's phase within a further quarter of it). Otherwise it
 * is read from the informer's cache, and nothing is sent to the API server. A `scaleTargetRef`
 * Deployment is read with a GET.
 *
 * Neither is done for a Deployment another owns: a scaleTargetRef that an HPA, a ScaledObject or another
 * TaskQueue drives (`TargetOwned`), or a managed name taken by a Deployment this TaskQueue does not
 * control (`DeploymentConflict`), which a forced apply would otherwise take over. Those, a missing
 * scaleTargetRef (`TargetNotFound`) and a spec no Deployment can be built from (`InvalidSpec`) are refusals.
 */
export async function targetDeployment(
  ctx: DriftContext,
  key: string,
  tq: TaskQueue,
  state: DriftState,
  now: number,
): Promise<Found> {
  if (!tq.spec.worker) return scaleTarget(ctx, tq);
  const namespace = tq.metadata.namespace as string;
  const { uid, generation } = tq.metadata;
  const options = ctx.workerResources ? { defaultResources: ctx.workerResources } : {};
  const build = () => {
    try {
      return buildWorkerDeployment(tq, options);
    } catch (error) {
      if (error instanceof TaskQueueSpecError) return error;
      throw error;
    }
  };
  // Built once per generation; only its hash is kept between polls (the object is built again to apply).
  let desired: ReturnType<typeof build> | undefined;
  let built = state.built;
  if (!built || built.uid !== uid || built.generation !== generation) {
    desired = build();
    if (desired instanceof TaskQueueSpecError) return invalidSpec(desired);
    built = { uid, generation, hash: hashOf(desired) };
    state.built = built;
  }
  const name = workerDeploymentName(tq.metadata.name);
  const cached = ctx.cache.deployment(namespace, name);
  const live = cached?.deployment;
  const applied = state.applied;
  if (
    live &&
    applied &&
    !(live.metadata as { deletionTimestamp?: string }).deletionTimestamp &&
    applied.desired === built.hash &&
    applied.uid === live.metadata.uid &&
    applied.live === cached.drift &&
    now - applied.at < ctx.resyncMs * (1 + phase(key) / 4)
  ) {
    return { deployment: live };
  }
  desired ??= build();
  if (desired instanceof TaskQueueSpecError) return invalidSpec(desired);
  // The cache holds only Deployments labelled as managed: one it does not show as ours is read, so that a
  // user's Deployment of that name is never overwritten by the forced apply. (Created between this read
  // and the apply, it would be; docs/security.md says so.)
  const controlled = live?.metadata.ownerReferences?.some((o) => o.controller && o.uid === uid);
  const path = deploymentPath(namespace, name);
  const conflict = managedNameConflict(tq, controlled ? live : await ctx.kube.find<Deployment>(path));
  // Looked at again every poll (the other Deployment may be deleted); nothing is written.
  if (conflict) return { refused: { reason: 'DeploymentConflict', message: conflict, retry: true } };
  const result = await ctx.kube.apply<Deployment>(path, desired, FIELD_MANAGER);
  state.applied = { desired: built.hash, live: driftHash(result), uid: result.metadata.uid, at: now };
  return { deployment: result };
}

/** Terminal until the spec changes (the informer requeues it then). */
function invalidSpec(error: TaskQueueSpecError): Found {
  return { refused: { reason: 'InvalidSpec', message: error.message, retry: false } };
}

async function scaleTarget(ctx: DriftContext, tq: TaskQueue): Promise<Found> {
  const namespace = tq.metadata.namespace as string;
  const target = tq.spec.scaleTargetRef?.name as string;
  const others = { scalers: ctx.cache.scalers(namespace), taskQueues: ctx.cache.taskQueues(namespace) };
  // The other owner may go away (an HPA deleted): looked at again every poll; nothing is written.
  const owned = (owner: Owner) => ({
    refused: { reason: 'TargetOwned', message: targetOwnedMessage(target, owner), retry: true },
  });
  // From the caches first: a target another autoscaler drives is refused without a request.
  let owner = scaleTargetOwner(tq, others);
  if (owner) return owned(owner);
  const live = await ctx.kube.find<Deployment>(deploymentPath(namespace, target));
  owner = live && scaleTargetOwner(tq, { ...others, deployment: live });
  if (owner) return owned(owner);
  if (!live) {
    const message = `Deployment ${tq.spec.scaleTargetRef?.name} (scaleTargetRef) does not exist in ${namespace}`;
    return { refused: { reason: 'TargetNotFound', message, retry: true } };
  }
  return { deployment: live };
}

function deploymentPath(namespace: string, name: string): string {
  return apiPath({ group: 'apps', version: 'v1', resource: 'deployments', namespace, name });
}

/**
 * What of a live Deployment the operator's apply decides, or another writer could change under it:
 * labels, owner references and the spec but for replicas (the scaler's). Status, annotations (the
 * Deployment controller's revision) and bookkeeping are left out, so they do not count as drift.
 */
export function driftHash(deployment: Deployment): string {
  const { labels, ownerReferences } = deployment.metadata;
  const { replicas: _replicas, ...spec } = deployment.spec ?? {};
  return hashOf({ labels, ownerReferences, spec });
}

/** A stable number in [0, 1) per key, to spread the queues' resyncs instead of doing them all at once. */
export function phase(key: string): number {
  let h = 2166136261;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619);
  return (h >>> 0) / 2 ** 32;
}
