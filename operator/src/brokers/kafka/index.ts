import { kafkaDefinition } from 'taskfleet/operator';
import { secretKeyReferences } from '../../api/names.ts';
import type { OperatorBroker } from '../definition.ts';
import { type KafkaTarget, kafkaProbe } from './probe.ts';
import { KafkaConnection } from './spec.ts';
import { kafkaTarget } from './target.ts';
import { kafkaWorkerSettings } from './worker-settings.ts';

/** Kafka, as the operator sees it: spec.broker.kafka. */
export const kafka: OperatorBroker<typeof KafkaConnection, KafkaTarget> = {
  worker: kafkaDefinition,
  spec: KafkaConnection,
  probe: kafkaProbe,
  target: kafkaTarget,
  workerSettings: kafkaWorkerSettings,
  namedReferences: ({ tls, sasl }, field) => [
    ...secretKeyReferences(`${field}.tls.caFrom`, tls?.caFrom),
    ...secretKeyReferences(`${field}.tls.certFrom`, tls?.certFrom),
    ...secretKeyReferences(`${field}.tls.keyFrom`, tls?.keyFrom),
    ...(sasl
      ? [
          {
            field: `${field}.sasl.secretRef.name`,
            kind: 'subdomain',
            what: 'Secret name',
            value: sasl.secretRef?.name,
          } as const,
        ]
      : []),
  ],
};
