/**
 * The operator's side of each broker, one line each, under its field in `spec.broker` (which is also
 * the `kind` of its probe targets). A broker is a folder here (brokers/redis, brokers/kafka: its spec
 * schema, how its target is probed, what its workers are given) beside its folder in the worker
 * (worker/src/brokers/<name>: URLs, adapter, capabilities). Adding one: both folders, a line in each
 * registry, and the conformance suite passing (docs/architecture.md, "Add a broker").
 */
import type { TaskQueueSpec } from '../api/types.ts';
import { TaskQueueSpecError } from '../controller/errors.ts';
import type { BrokerProbe, OperatorBroker, WorkerBrokerSettings } from './definition.ts';
import { kafka } from './kafka/index.ts';
import { redis } from './redis/index.ts';

/** The registry. */
const BROKERS = { redis, kafka } as const;

type Kind = keyof typeof BROKERS;
type TargetOf<B> = B extends OperatorBroker<unknown, infer T> ? T : never;

/** Where a queue lives, resolved (secrets read) from a TaskQueue spec: one kind per broker. */
export type BrokerTarget = { [K in Kind]: TargetOf<(typeof BROKERS)[K]> }[Kind];

/** The probe of a target's broker (of a kind: only what needs no target). */
export function probeOf<T extends BrokerTarget>(target: T): BrokerProbe<T>;
export function probeOf(target: { kind: Kind }): BrokerProbe<never>;
export function probeOf(target: { kind: Kind }): BrokerProbe<never> {
  return BROKERS[target.kind].probe as BrokerProbe<never>;
}

/** The broker a spec names: the one field of spec.broker that is set, or a TaskQueueSpecError. */
export function specBroker(broker: TaskQueueSpec['broker'] | undefined): Kind {
  const set = (Object.keys(BROKERS) as Kind[]).filter((kind) => broker?.[kind] !== undefined);
  if (set.length > 1) {
    throw new TaskQueueSpecError('spec.broker', `spec.broker sets both ${set.join(' and ')}: set exactly one`);
  }
  const [kind] = set;
  if (kind === undefined) {
    const fields = Object.keys(BROKERS).map((k) => `spec.broker.${k}`);
    throw new TaskQueueSpecError('spec.broker', `spec.broker names no broker: set ${fields.join(' or ')}`);
  }
  return kind;
}

/** What the workers of a spec need to reach its broker. */
export function workerBrokerSettings(broker: TaskQueueSpec['broker'] | undefined): WorkerBrokerSettings {
  const kind = specBroker(broker);
  const entry: OperatorBroker<unknown, unknown> = BROKERS[kind];
  return entry.workerSettings(broker?.[kind], `spec.broker.${kind}`);
}
