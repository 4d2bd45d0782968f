import type { TaskQueue } from '../api/types.ts';
import {
  type BrokerReading,
  type BrokerTarget,
  ProbeFailedError,
  type ProbePool,
  ratesBetween,
  scalingBacklog,
} from '../probes/probe.ts';
import type { OperatorMetrics } from '../runtime/metrics.ts';
import type { Observation } from '../scaling/policy.ts';
import { brokerTarget, type SecretsContext } from './broker-target.ts';
import { BrokerConfigError } from './errors.ts';
import type { RecordEvent } from './events.ts';
import type { Scrubber } from './scrub.ts';
import type { ConditionUpdate } from './status.ts';

/** The queue's last reading, kept between polls: the rates are measured from one to the next. */
export interface ProbeState {
  reading?: BrokerReading;
}

/** What probing a queue's broker takes. */
export interface ProbeContext extends SecretsContext {
  probes: Pick<ProbePool, 'read'>;
  metrics: Pick<OperatorMetrics, 'probeDuration' | 'probeErrors'>;
  /** Records the values of the Secrets read, and scrubs what a client's error quotes of them. */
  scrub: Pick<Scrubber, 'secret' | 'text'>;
  event: RecordEvent;
}

/** What the probe found: the observation for the policy, and the BrokerReachable condition saying so. */
export interface Probe {
  observation: Observation;
  /** The broker's numbers; undefined when the probe failed. */
  reading?: BrokerReading;
  /** Where the broker is; undefined when its settings could not be resolved. */
  target?: BrokerTarget;
  reachable: ConditionUpdate;
}

/**
 * Probes the queue's broker: what is waiting, what is running, how fast it comes and goes. A failure
 * (unreachable, a Secret missing or wrong, a target backing off) is an observation too: the policy counts
 * it, and a Warning Event says why.
 */
export async function probeBroker(
  ctx: ProbeContext,
  tq: TaskQueue,
  state: ProbeState,
  replicas: { current: number; ready: number },
): Promise<Probe> {
  const namespace = tq.metadata.namespace as string;
  let target: BrokerTarget | undefined;
  const probeStarted = performance.now();
  try {
    target = await brokerTarget(ctx, tq);
    // The namespace shares the probe slots fairly with the other tenants' TaskQueues.
    const reading = await ctx.probes.read(target, { namespace });
    ctx.metrics.probeDuration.observe({ broker: target.kind }, (performance.now() - probeStarted) / 1000);
    const { backlog } = reading;
    const rates = ratesBetween(state.reading, reading);
    state.reading = reading;
    const observation: Observation = {
      ok: true,
      backlog: scalingBacklog(target.kind, backlog),
      rates,
      currentReplicas: replicas.current,
      readyReplicas: replicas.ready,
      ...(backlog.partitions !== undefined ? { partitions: backlog.partitions } : {}),
      ...(tq.spec.broker.kafka?.allowIdleConsumers ? { allowIdleConsumers: true } : {}),
    };
    const message = `${backlog.ready} ready, ${backlog.delayed} delayed, ${backlog.inFlight} in flight${backlog.partitions !== undefined ? `, ${backlog.partitions} partitions` : ''}`;
    return {
      observation,
      reading,
      target,
      reachable: { type: 'BrokerReachable', status: 'True', reason: 'Probed', message },
    };
  } catch (error) {
    // Client errors (ioredis, kafkajs) may quote what they were given: scrubbed before anything keeps
    // it (the decision's reason goes into status.lastScaleReason too).
    const message = ctx.scrub.text((error as Error).message);
    // A target backing off after failures is not probed: its last failure is reported again, and the
    // condition says when the next probe goes out. The Event names the failure only, so that a steady
    // failure is not an Event per probe.
    const detail = error instanceof ProbeFailedError ? ctx.scrub.text(error.detail) : message;
    if (!(error instanceof ProbeFailedError) || error.probed)
      ctx.metrics.probeErrors.inc({ namespace, taskqueue: tq.metadata.name });
    const reason = error instanceof BrokerConfigError ? error.reason : 'ProbeFailed';
    await ctx.event('Warning', reason, detail);
    return {
      observation: { ok: false, error: detail, currentReplicas: replicas.current },
      ...(target ? { target } : {}),
      reachable: { type: 'BrokerReachable', status: 'False', reason, message },
    };
  }
}
