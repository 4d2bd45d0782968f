/**
 * The operator's side of each broker, one line each, under its field in `spec.broker` (which is also
 * the `kind` of its probe targets). A broker is a folder here (brokers/redis, brokers/kafka: its
 * connection's schema, how its target is probed, what its workers are given) beside its folder in the
 * worker (worker/src/brokers/<name>: URLs, adapter, capabilities). Adding one: both folders, a line in
 * each registry, and the conformance suite passing (docs/architecture.md, "Add a broker").
 */
import type { BrokerDefinition } from 'taskfleet/operator';
import Type, { type TOptional } from 'typebox';
import type { NamedReference } from '../api/names.ts';
import { TaskQueueSpecError } from '../controller/errors.ts';
import type { BrokerProbe, OperatorBroker, TargetRequest, WorkerBrokerSettings } from './definition.ts';
import { kafka } from './kafka/index.ts';
import { redis } from './redis/index.ts';

/** The registry. */
const BROKERS = { redis, kafka } as const;

type Kind = keyof typeof BROKERS;
type Entry = OperatorBroker<(typeof BROKERS)[Kind]['spec'], unknown>;
type TargetOf<B> = B extends OperatorBroker<infer _, infer T> ? T : never;
const kinds = Object.keys(BROKERS) as Kind[];

/** Where a queue lives, resolved (secrets read) from a TaskQueue spec: one kind per broker. */
export type BrokerTarget = { [K in Kind]: TargetOf<(typeof BROKERS)[K]> }[Kind];

/** spec.broker's properties in the CRD: each broker's connection, optional. */
export const brokerSpecProperties = Object.fromEntries(kinds.map((k) => [k, Type.Optional(BROKERS[k].spec)])) as {
  [K in Kind]: TOptional<(typeof BROKERS)[K]['spec']>;
};

/** spec.broker's fields, in the registry's order. */
export const brokerFields: readonly Kind[] = kinds;

/** What spec.broker may hold, as the registry reads it. */
type BrokerConnections = { readonly [K in Kind]?: unknown };

/** The worker's definition of a broker kind: its name and capabilities. */
export function definitionOf(kind: Kind): BrokerDefinition {
  return BROKERS[kind].worker;
}

/** The first broker spec.broker sets, if any. */
export function setBroker(broker: BrokerConnections | undefined): Kind | undefined {
  return kinds.find((k) => broker?.[k] !== undefined);
}

/** The probe of a target's broker (of a kind: only what needs no target). */
export function probeOf<T extends BrokerTarget>(target: T): BrokerProbe<T>;
export function probeOf(target: { kind: Kind }): BrokerProbe<never>;
export function probeOf(target: { kind: Kind }): BrokerProbe<never> {
  return BROKERS[target.kind].probe as BrokerProbe<never>;
}

/** The broker a spec names: the one field of spec.broker that is set, or a TaskQueueSpecError. */
export function specBroker(broker: BrokerConnections | undefined): Kind {
  const set = kinds.filter((kind) => broker?.[kind] !== undefined);
  if (set.length > 1) {
    throw new TaskQueueSpecError('spec.broker', `spec.broker sets both ${set.join(' and ')}: set exactly one`);
  }
  const [kind] = set;
  if (kind === undefined) {
    const fields = kinds.map((k) => `spec.broker.${k}`);
    throw new TaskQueueSpecError('spec.broker', `spec.broker names no broker: set ${fields.join(' or ')}`);
  }
  return kind;
}

/** What the workers of a spec need to reach its broker. */
export function workerBrokerSettings(broker: BrokerConnections | undefined): WorkerBrokerSettings {
  const kind = specBroker(broker);
  return entry(kind).workerSettings(broker?.[kind] as never, `spec.broker.${kind}`);
}

/** Where a spec's queue is, on the first broker spec.broker sets; undefined when it sets none. */
export async function brokerTarget(
  broker: BrokerConnections | undefined,
  request: Omit<TargetRequest, 'field'>,
): Promise<BrokerTarget | undefined> {
  const kind = setBroker(broker);
  if (kind === undefined) return undefined;
  const target = await entry(kind).target(broker?.[kind] as never, { ...request, field: `spec.broker.${kind}` });
  return target as BrokerTarget;
}

/** The object names and Secret keys of every connection spec.broker sets. */
export function brokerNamedReferences(broker: BrokerConnections | undefined): NamedReference[] {
  return kinds.flatMap((kind) => {
    const spec = broker?.[kind];
    return spec === undefined ? [] : entry(kind).namedReferences(spec as never, `spec.broker.${kind}`);
  });
}

function entry(kind: Kind): Entry {
  return BROKERS[kind] as Entry;
}
