/**
 * The operator's side of each broker, one line each, keyed by its field under `spec.broker`. A broker
 * is a folder here (brokers/redis, brokers/kafka: its spec schema, how its target is probed) beside
 * its folder in the worker (worker/src/brokers/<name>: URLs, adapter, capabilities). Adding one: both
 * folders, a line in each registry, and the conformance suite passing (docs/architecture.md).
 */
import { kafkaProbe } from './kafka/probe.ts';
import type { BrokerProbe } from './probe-connection.ts';
import { redisProbe } from './redis/probe.ts';

/** The registry: each broker's probe, under the `kind` of its targets. */
const PROBES = {
  redis: redisProbe,
  kafka: kafkaProbe,
} as const;

type TargetOf<P> = P extends BrokerProbe<infer T> ? T : never;

/** Where a queue lives, resolved (secrets read) from a TaskQueue spec: one kind per broker. */
export type BrokerTarget = TargetOf<(typeof PROBES)[keyof typeof PROBES]>;

/** The probe of a target's broker (of a kind: only what needs no target). */
export function probeOf<T extends BrokerTarget>(target: T): BrokerProbe<T>;
export function probeOf(target: { kind: BrokerTarget['kind'] }): BrokerProbe<never>;
export function probeOf(target: { kind: BrokerTarget['kind'] }): BrokerProbe<never> {
  return PROBES[target.kind] as BrokerProbe<never>;
}
