import type { TaskQueue } from '../api/types.ts';
import { apiPath } from '../runtime/kube-path.ts';
import type { OperatorMetrics } from '../runtime/metrics.ts';
import type { Decision, History } from '../scaling/policy.ts';
import { type DeletionCostContext, markBusyPods } from './deletion-cost.ts';
import type { Deployment } from './drift.ts';
import type { RecordEvent } from './events.ts';
import type { LogLine } from './scrub.ts';

const SCALER_FIELD_MANAGER = 'taskfleet-scaler';

/** The policy's history, kept between polls. */
export interface ScaleState {
  history: History;
}

/** What scaling takes. */
export interface ScaleContext extends DeletionCostContext {
  metrics: Pick<OperatorMetrics, 'scaleEvents'>;
  /** `--read-secrets`: without, busy pods are ranked only from an inline result backend URL. */
  readSecrets: boolean;
  event: RecordEvent;
  say: LogLine;
}

/** The last change of replicas, for `status.lastScaleTime` and `status.lastScaleReason`. */
export interface LastScale {
  time: string;
  reason: string;
}

/**
 * Sets the Deployment's replicas to the decision's, through `/scale`, with an Event saying why; before a
 * scale-down, ranks the pods by the calls they run ({@link markBusyPods}). The decision's history is kept
 * only once `/scale` has it. Returns the change made at `now`, or undefined when the count stays.
 */
export async function scale(
  ctx: ScaleContext,
  tq: TaskQueue,
  state: ScaleState,
  deployment: Deployment,
  decision: Decision,
  now: number,
): Promise<LastScale | undefined> {
  const current = deployment.spec?.replicas ?? 0;
  // The history takes a scale only once /scale has it: a patch refused (409: a Deployment just created
  // is updated by its controller within moments) would otherwise leave a scale event that never
  // happened, and the scale-up policy would hold the retry back by it for a whole period.
  if (decision.replicas === current) {
    state.history = decision.history;
    return undefined;
  }
  const namespace = tq.metadata.namespace as string;
  const key = `${namespace}/${tq.metadata.name}`;
  // Without Secrets (--read-secrets=false), ranking needs an inline backend url: the heartbeats are there.
  const rankable = ctx.readSecrets || tq.spec.resultBackend?.redis?.url !== undefined;
  if (decision.replicas < current && tq.spec.scaling?.spareBusyWorkers !== false && rankable) {
    await markBusyPods(ctx, tq, deployment).catch((error) =>
      ctx.say('could not rank pods by in-flight calls', { key, error: (error as Error).message }),
    );
  }
  // Decided on this version of the Deployment: if it has moved on (the cache was behind), the API
  // server answers 409 and the reconcile runs again, rather than scaling twice on a stale count.
  await ctx.kube.patch(
    apiPath({
      group: 'apps',
      version: 'v1',
      resource: 'deployments',
      namespace,
      name: deployment.metadata.name,
      subresource: 'scale',
    }),
    {
      metadata: { resourceVersion: deployment.metadata.resourceVersion },
      spec: { replicas: decision.replicas },
    },
    'merge',
    { fieldManager: SCALER_FIELD_MANAGER },
  );
  state.history = decision.history;
  const message = decision.reason; // "scaled 2 → 8: backlog 4,000 over target 500 per replica"
  ctx.metrics.scaleEvents.inc({
    namespace,
    taskqueue: tq.metadata.name,
    direction: decision.replicas > current ? 'up' : 'down',
  });
  await ctx.event('Normal', 'Scaled', message, true);
  ctx.say('scaled', { key, from: current, to: decision.replicas, reason: decision.reason });
  return { time: new Date(now).toISOString(), reason: message };
}
