/**
 * The brokers Taskfleet speaks, one line each. A broker is one folder (brokers/redis, brokers/kafka)
 * whose definition.ts says which URLs it takes, how to check one, how to open it, and what it can do;
 * everything outside the folder (the app, the producer, the CLI, the operator's probes) asks the
 * definition instead of naming the broker. Adding one: a folder with a definition and a Broker that
 * passes test/conformance, and a line here (the operator adds its side the same way: see
 * docs/architecture.md, "Add a broker").
 */
import { ConfigError } from '../errors.ts';
import type { BrokerDefinition } from './broker.ts';
import { kafka } from './kafka/definition.ts';
import { redis } from './redis/definition.ts';

/** The registry: one line per broker. */
export const BROKERS: readonly BrokerDefinition[] = [redis, kafka];

const SCHEME = /^([a-z][a-z0-9+.-]*):/i;

/** The broker that takes this URL, by its scheme; undefined when none does. */
export function brokerFor(url: string): BrokerDefinition | undefined {
  const scheme = SCHEME.exec(url)?.[1]?.toLowerCase();
  return scheme === undefined ? undefined : BROKERS.find((b) => b.schemes.includes(scheme));
}

/** The broker that takes this URL, or a ConfigError listing the URLs that are supported. */
export function requireBroker(url: string, from: string): BrokerDefinition {
  const broker = brokerFor(url);
  if (broker) return broker;
  const [first, ...others] = BROKERS.map((b) => b.usage);
  const supported = others.length ? `${first}, or ${others.join(', or ')}` : first;
  throw new ConfigError(`broker ${JSON.stringify(url)} (from ${from}) is not supported: use ${supported}`);
}
