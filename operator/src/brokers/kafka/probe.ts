import { createHash } from 'node:crypto';
import { KafkaBroker, type KafkaBrokerOptions } from 'taskfleet/operator';
import type { BrokerProbe, ProbeConnection } from '../definition.ts';

/** A queue on Kafka, resolved (TLS files and credentials read from Secrets) from a TaskQueue spec. */
export interface KafkaTarget {
  kind: 'kafka';
  brokers: string[];
  prefix: string;
  queue: string;
  /** true: TLS with the system's CAs; or the PEM texts to trust and present. */
  tls?: true | { ca?: string; cert?: string; key?: string };
  sasl?: NonNullable<KafkaBrokerOptions['sasl']>;
}

export const kafkaProbe: BrokerProbe<KafkaTarget> = {
  // A digest, not the credentials and keys themselves.
  connectionKey: ({ brokers, prefix, tls, sasl }) =>
    `kafka\u0000${createHash('sha256')
      .update(JSON.stringify([brokers, prefix, tls ?? null, sasl ?? null]))
      .digest('hex')}`,

  open({ brokers, prefix, tls, sasl }, { connectTimeoutMs }): ProbeConnection {
    const broker = new KafkaBroker({
      brokers,
      prefix,
      ...(tls ? { tls } : {}),
      ...(sasl ? { sasl } : {}),
      // The probe goes out again at the next poll: a short wait and few retries, not kafkajs' 30 s and 8.
      connectionTimeoutMs: connectTimeoutMs,
      requestTimeoutMs: connectTimeoutMs,
      retries: 2,
    });
    return {
      broker,
      ready: async () => {}, // kafkajs connects on the first request, within its timeouts
      backlog: (queue) => broker.backlog(queue),
      // kafkajs' own errors ("Broker not connected") do not say where. (A KafkaBroker's url holds no credentials.)
      describe: (message) => (message.includes(broker.url) ? message : `Kafka at ${broker.url}: ${message}`),
      close: () => broker.close(),
    };
  },

  // Kafka cannot say which delayed records are due without reading them, and only a running consumer
  // releases them when they are (it holds them in memory until then; no server timer promotes them),
  // so every delayed call counts: a queue holding some is never left at zero with them stranded.
  scalingBacklog: ({ ready, delayed, inFlight }) => ({ ready, delayed, inFlight }),
};
