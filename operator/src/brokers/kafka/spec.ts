/**
 * A Kafka connection in a TaskQueue: spec.broker.kafka. The schema is the CRD's (bounds, CEL rules) and
 * the type the operator reads; api/schema.ts puts it into the TaskQueue.
 */
import Type, { type Static } from 'typebox';
import { DEFAULT_PREFIX, KAFKA_DEFAULTS } from '../../api/defaults.ts';
import { objectName, secretKeySelector, stringEnum } from '../../api/fragments.ts';

/** host:port, as the workers' Kafka URL parser accepts it (a name or IPv4, or an IPv6 in brackets). */
const HOST_PORT =
  '^(\\[[0-9a-fA-F:]+\\]|[A-Za-z0-9.-]+):([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])$';

/** TLS to the brokers; the PEM files are mounted into the workers from their Secrets. */
export const KafkaTls = Type.Object(
  {
    enabled: Type.Boolean({ description: 'Connect with TLS.' }),
    caFrom: Type.Optional(
      secretKeySelector('The CA certificates (PEM) to trust, from a Secret key. Unset: the system’s CAs.'),
    ),
    certFrom: Type.Optional(
      secretKeySelector('A client certificate (PEM), for mutual TLS, from a Secret key. Set with keyFrom.'),
    ),
    keyFrom: Type.Optional(
      secretKeySelector('The client certificate’s private key (PEM), from a Secret key. Set with certFrom.'),
    ),
  },
  {
    description: 'TLS to the brokers. The CA, certificate and key are mounted into the workers from their Secrets.',
    'x-kubernetes-validations': [
      { rule: 'has(self.certFrom) == has(self.keyFrom)', message: 'set both certFrom and keyFrom, or neither' },
      {
        rule: 'self.enabled || !(has(self.caFrom) || has(self.certFrom) || has(self.keyFrom))',
        message: 'caFrom, certFrom and keyFrom need enabled: true',
      },
    ],
  },
);
export type KafkaTls = Static<typeof KafkaTls>;

/** SASL with a username and password from a Secret. */
export const KafkaSasl = Type.Object(
  {
    mechanism: stringEnum({ description: 'The SASL mechanism.', enum: ['plain', 'scram-sha-256', 'scram-sha-512'] }),
    secretRef: Type.Object(
      { name: objectName('Name of the Secret.') },
      { description: 'A Secret in the TaskQueue’s namespace with the keys username and password.' },
    ),
  },
  {
    description:
      'SASL authentication. The username and password reach the workers as secretKeyRef environment variables, never as values.',
  },
);
export type KafkaSasl = Static<typeof KafkaSasl>;
export type KafkaSaslMechanism = KafkaSasl['mechanism'];

/**
 * A Kafka cluster. Per queue the workers use the topics `<prefix>.<queue>` (tasks due now), `.delay` and
 * `.dead`, and the consumer group `<prefix>.<queue>`.
 */
export const KafkaConnection = Type.Object(
  {
    brokers: Type.Array(
      Type.String({ description: 'host:port of a Kafka broker.', pattern: HOST_PORT, maxLength: 260 }),
      {
        description: 'Bootstrap addresses of the Kafka cluster, host:port each.',
        minItems: 1,
        maxItems: 100,
      },
    ),
    partitions: Type.Optional(
      Type.Integer({
        description:
          'Partitions of the topics the workers create when they are missing. Topics that exist keep theirs: the operator caps the replicas at the partitions it finds.',
        minimum: 1,
        maximum: 10000,
        default: KAFKA_DEFAULTS.partitions,
      }),
    ),
    replicationFactor: Type.Optional(
      Type.Integer({
        description: 'Replicas of each partition of the topics the workers create. Unset: the cluster’s default.',
        minimum: 1,
        maximum: 100,
      }),
    ),
    prefix: Type.Optional(
      Type.String({
        description: 'Prefix of the topic and consumer group names the workers use.',
        default: DEFAULT_PREFIX,
        pattern: '^[A-Za-z0-9._-]{1,64}$',
      }),
    ),
    allowIdleConsumers: Type.Optional(
      Type.Boolean({
        description:
          'Allow more replicas than the topic has partitions. Kafka gives each partition to one consumer of the group, so the extra replicas sit idle (KEDA’s allowIdleConsumers).',
        default: KAFKA_DEFAULTS.allowIdleConsumers,
      }),
    ),
    tls: Type.Optional(KafkaTls),
    sasl: Type.Optional(KafkaSasl),
  },
  {
    description:
      'The broker on Kafka. Per queue the workers use the topics <prefix>.<queue> (calls due now), <prefix>.<queue>.delay and <prefix>.<queue>.dead, and the consumer group <prefix>.<queue>; the operator scales on the group’s lag and caps the replicas at the topic’s partitions.',
  },
);
export type KafkaConnection = Static<typeof KafkaConnection>;
