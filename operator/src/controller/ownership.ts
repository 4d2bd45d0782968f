/**
 * Who else drives a Deployment. Two autoscalers on one Deployment fight (each undoes the other's
 * replicas every poll), and a TaskQueue author must not be able to point the operator at a Deployment
 * someone else scales or owns. So, as KEDA's admission webhook does for ScaledObjects, a scaleTargetRef
 * already driven by a HorizontalPodAutoscaler, a KEDA ScaledObject or another TaskQueue is refused, and
 * a managed worker Deployment name that is taken by a Deployment this TaskQueue does not control is never
 * taken over. Pure: the reconciler passes in what its caches hold.
 */
import { GROUP, KIND, type TaskQueue } from '../api/types.ts';

/** What an autoscaler says it scales (HPA and ScaledObject alike: `spec.scaleTargetRef`). */
export interface ScalerRef {
  kind: 'HorizontalPodAutoscaler' | 'ScaledObject';
  name: string;
  target: { apiVersion?: string; kind?: string; name?: string } | undefined;
}

export interface DeploymentOwners {
  metadata: {
    name: string;
    ownerReferences?: { apiVersion: string; kind: string; name: string; uid: string; controller?: boolean }[];
  };
}

/** Another owner, as a condition names it: `HorizontalPodAutoscaler web`. */
export interface Owner {
  kind: string;
  name: string;
}

const isAppsDeployment = (ref: { apiVersion?: string; kind?: string } | undefined) =>
  // ScaledObjects default both (apps/v1 Deployment); HPAs always set kind.
  (ref?.kind ?? 'Deployment') === 'Deployment' && (ref?.apiVersion ?? 'apps/v1').startsWith('apps/');

/** The TaskQueue that controls a Deployment (its controller owner reference), if any. */
export function controllingTaskQueue(deployment: DeploymentOwners): { name: string; uid: string } | undefined {
  const ref = deployment.metadata.ownerReferences?.find((o) => o.controller);
  if (!ref || ref.kind !== KIND || !ref.apiVersion.startsWith(`${GROUP}/`)) return undefined;
  return { name: ref.name, uid: ref.uid };
}

/** Whether `a` was created before `b`: the older TaskQueue keeps a contested target (ties: by name). */
function older(a: TaskQueue, b: TaskQueue): boolean {
  const at = Date.parse(String(a.metadata.creationTimestamp ?? ''));
  const bt = Date.parse(String(b.metadata.creationTimestamp ?? ''));
  if (at !== bt && !Number.isNaN(at) && !Number.isNaN(bt)) return at < bt;
  return a.metadata.name < b.metadata.name;
}

/**
 * Who other than `tq` already drives its `scaleTargetRef`, or undefined: an HPA or ScaledObject
 * targeting the Deployment, an older TaskQueue with the same scaleTargetRef, or the TaskQueue that
 * controls the Deployment (a managed `<name>-workers`). `deployment` is the target as read (undefined
 * when not read yet or missing); `taskQueues` are the TaskQueues of the namespace.
 */
export function scaleTargetOwner(
  tq: TaskQueue,
  {
    scalers,
    taskQueues,
    deployment,
  }: { scalers: readonly ScalerRef[]; taskQueues: readonly TaskQueue[]; deployment?: DeploymentOwners },
): Owner | undefined {
  const target = tq.spec.scaleTargetRef?.name;
  if (target === undefined) return undefined;
  const scaler = scalers
    .filter((s) => s.target?.name === target && isAppsDeployment(s.target))
    .sort((a, b) => a.kind.localeCompare(b.kind) || a.name.localeCompare(b.name))[0];
  if (scaler) return { kind: scaler.kind, name: scaler.name };
  const rival = taskQueues
    .filter(
      (other) =>
        other.metadata.uid !== tq.metadata.uid &&
        other.metadata.name !== tq.metadata.name &&
        other.spec.scaleTargetRef?.name === target &&
        !other.metadata.deletionTimestamp &&
        older(other, tq),
    )
    .sort((a, b) => (older(a, b) ? -1 : 1))[0];
  if (rival) return { kind: KIND, name: rival.metadata.name };
  const controller = deployment ? controllingTaskQueue(deployment) : undefined;
  if (controller && controller.uid !== tq.metadata.uid) return { kind: KIND, name: controller.name };
  return undefined;
}

/** The message of a refused scaleTargetRef. */
export function targetOwnedMessage(target: string, owner: Owner): string {
  return `Deployment ${target} (spec.scaleTargetRef) is already scaled by ${owner.kind} ${owner.name}: two autoscalers on one Deployment undo each other's replicas, so this TaskQueue scales nothing. Remove the other ${owner.kind}, or point scaleTargetRef at another Deployment`;
}

/**
 * Why the managed Deployment name of `tq` is not its to apply, or undefined: a Deployment of that name
 * exists and `tq` is not its controller. Applying with force would take over a user's Deployment
 * (its template, labels, and an owner reference through which deleting the TaskQueue deletes it).
 */
export function managedNameConflict(tq: TaskQueue, live: DeploymentOwners | undefined): string | undefined {
  if (!live) return undefined;
  const controller = controllingTaskQueue(live);
  if (controller?.uid === tq.metadata.uid) return undefined;
  const held = controller
    ? `is controlled by another TaskQueue ${controller.name} (uid ${controller.uid})`
    : (() => {
        const other = live.metadata.ownerReferences?.find((o) => o.controller);
        return other
          ? `is controlled by ${other.kind} ${other.name}`
          : 'exists and is not controlled by this TaskQueue';
      })();
  return `Deployment ${live.metadata.name} ${held}: the operator will not take it over, and writes nothing. Rename or delete that Deployment, or give it to this TaskQueue with spec.scaleTargetRef (and no spec.worker)`;
}
