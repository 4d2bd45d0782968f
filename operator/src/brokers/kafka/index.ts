import type { OperatorBroker } from '../definition.ts';
import { type KafkaTarget, kafkaProbe } from './probe.ts';
import type { KafkaConnection } from './spec.ts';
import { kafkaWorkerSettings } from './worker-settings.ts';

/** Kafka, as the operator sees it: spec.broker.kafka. */
export const kafka: OperatorBroker<KafkaConnection, KafkaTarget> = {
  probe: kafkaProbe,
  workerSettings: kafkaWorkerSettings,
};
