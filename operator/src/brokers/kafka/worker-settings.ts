import type { V1EnvVar, V1VolumeProjection } from '@kubernetes/client-node';
import { DEFAULT_PREFIX, KAFKA_DEFAULTS } from '../../api/defaults.ts';
import { TaskQueueSpecError } from '../../controller/errors.ts';
import type { WorkerBrokerSettings } from '../definition.ts';
import type { KafkaConnection } from './spec.ts';

/**
 * The Kafka TLS files (CA, client certificate, key): one projected volume of the Secret keys the spec
 * names, mounted read-only into the worker container, whose TASKFLEET_KAFKA_*_FILE variables point at
 * them. The Deployment holds the Secrets' names and keys only.
 */
export const KAFKA_TLS_VOLUME = 'taskfleet-kafka-tls';
export const KAFKA_TLS_DIR = '/var/run/secrets/taskfleet.dev/kafka';
const KAFKA_TLS_FILES = { caFrom: 'ca.crt', certFrom: 'tls.crt', keyFrom: 'tls.key' } as const;
const KAFKA_TLS_ENV = {
  caFrom: 'TASKFLEET_KAFKA_CA_FILE',
  certFrom: 'TASKFLEET_KAFKA_CERT_FILE',
  keyFrom: 'TASKFLEET_KAFKA_KEY_FILE',
} as const;

/**
 * A Kafka broker: its URL (kafkas:// with TLS), the prefix, the topic settings, and the credentials and
 * TLS files by reference only — username and password as secretKeyRef variables, the PEM files through
 * a read-only volume — so no secret value is ever in the Deployment.
 */
export function kafkaWorkerSettings(kafka: KafkaConnection, field: string): WorkerBrokerSettings {
  if (!Array.isArray(kafka.brokers) || kafka.brokers.length === 0) {
    throw new TaskQueueSpecError(
      `${field}.brokers`,
      `${field}.brokers is empty: list the bootstrap brokers, host:port each`,
    );
  }
  const tls = kafka.tls;
  const files = (['caFrom', 'certFrom', 'keyFrom'] as const).filter((f) => tls?.[f] !== undefined);
  if ((tls?.certFrom === undefined) !== (tls?.keyFrom === undefined)) {
    throw new TaskQueueSpecError(
      `${field}.tls`,
      `${field}.tls: set both certFrom and keyFrom (mutual TLS), or neither`,
    );
  }
  if (!tls?.enabled && files.length > 0) {
    throw new TaskQueueSpecError(`${field}.tls`, `${field}.tls: ${files.join(', ')} need enabled: true`);
  }
  const scheme = tls?.enabled ? 'kafkas' : 'kafka';
  const env: V1EnvVar[] = [
    { name: 'TASKFLEET_BROKER', value: `${scheme}://${kafka.brokers.join(',')}` },
    // Always set, as for Redis: the operator measures the lag of the group under this prefix.
    { name: 'TASKFLEET_PREFIX', value: kafka.prefix ?? DEFAULT_PREFIX },
    { name: 'TASKFLEET_KAFKA_PARTITIONS', value: String(kafka.partitions ?? KAFKA_DEFAULTS.partitions) },
  ];
  if (kafka.replicationFactor !== undefined) {
    env.push({ name: 'TASKFLEET_KAFKA_REPLICATION_FACTOR', value: String(kafka.replicationFactor) });
  }
  if (kafka.sasl) {
    const secret = kafka.sasl.secretRef.name;
    env.push(
      { name: 'TASKFLEET_KAFKA_SASL_MECHANISM', value: kafka.sasl.mechanism },
      { name: 'TASKFLEET_KAFKA_USERNAME', valueFrom: { secretKeyRef: { name: secret, key: 'username' } } },
      { name: 'TASKFLEET_KAFKA_PASSWORD', valueFrom: { secretKeyRef: { name: secret, key: 'password' } } },
    );
  }
  if (files.length === 0) return { env };
  const sources: V1VolumeProjection[] = [];
  for (const f of files) {
    const { name, key } = tls![f]!.secretKeyRef;
    sources.push({ secret: { name, items: [{ key, path: KAFKA_TLS_FILES[f] }] } });
    env.push({ name: KAFKA_TLS_ENV[f], value: `${KAFKA_TLS_DIR}/${KAFKA_TLS_FILES[f]}` });
  }
  return {
    env,
    volume: { name: KAFKA_TLS_VOLUME, projected: { sources } },
    mount: { name: KAFKA_TLS_VOLUME, mountPath: KAFKA_TLS_DIR, readOnly: true },
  };
}
