import { DEFAULT_PREFIX } from '../../api/defaults.ts';
import type { SecretKeySelector } from '../../api/fragments.ts';
import { BrokerConfigError } from '../../controller/errors.ts';
import { credentialProblem, pemProblem } from '../../controller/secret-values.ts';
import type { TargetRequest } from '../definition.ts';
import type { KafkaTarget } from './probe.ts';
import type { KafkaConnection } from './spec.ts';

/** Where a Kafka queue is: its brokers and topic prefix, with the TLS files and credentials read from their Secrets. */
export async function kafkaTarget(
  kafka: KafkaConnection,
  { queue, field, secrets }: TargetRequest,
): Promise<KafkaTarget> {
  const prefix = kafka.prefix ?? DEFAULT_PREFIX;
  if (!/^[A-Za-z0-9._-]+$/.test(`${prefix}.${queue}`)) {
    throw new BrokerConfigError(
      'InvalidSpec',
      `queue ${queue} (prefix ${prefix}) cannot name Kafka topics: use letters, digits, ., _ and - only`,
    );
  }
  const target: KafkaTarget = { kind: 'kafka', brokers: kafka.brokers, prefix, queue };
  if (!secrets.allowed) {
    if (kafka.sasl) {
      throw secrets.notRead(
        `${field}.sasl.secretRef`,
        'the operator needs a listener it may use without credentials: run it with --read-secrets=true, or rely on fallback replicas',
      );
    }
    const file = (['caFrom', 'certFrom', 'keyFrom'] as const).find((f) => kafka.tls?.[f]);
    if (file) {
      throw secrets.notRead(
        `${field}.tls.${file}`,
        'use a listener whose certificate the system CAs trust, without a client certificate (tls.enabled only)',
      );
    }
  }
  const read = (ref: SecretKeySelector, where: string, problem: (value: string) => string | undefined) =>
    secrets.key(ref, where, problem);
  const { tls, sasl } = kafka;
  if (tls?.enabled) {
    const [ca, cert, key] = await Promise.all([
      tls.caFrom && read(tls.caFrom, `${field}.tls.caFrom`, (v) => pemProblem(v, 'CERTIFICATE')),
      tls.certFrom && read(tls.certFrom, `${field}.tls.certFrom`, (v) => pemProblem(v, 'CERTIFICATE')),
      tls.keyFrom && read(tls.keyFrom, `${field}.tls.keyFrom`, (v) => pemProblem(v, 'PRIVATE KEY')),
    ]);
    target.tls =
      ca !== undefined || cert !== undefined
        ? {
            ...(ca !== undefined ? { ca } : {}),
            ...(cert !== undefined ? { cert } : {}),
            ...(key !== undefined ? { key } : {}),
          }
        : true;
  }
  if (sasl) {
    const ref = (key: string) => ({ secretKeyRef: { name: sasl.secretRef.name, key } });
    const [username, password] = await Promise.all([
      read(ref('username'), `${field}.sasl.secretRef`, credentialProblem),
      read(ref('password'), `${field}.sasl.secretRef`, credentialProblem),
    ]);
    target.sasl = { mechanism: sasl.mechanism, username, password };
  }
  return target;
}
