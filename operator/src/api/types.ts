/**
 * The TaskQueue API's types, for the code that reads TaskQueues: each is the `Static` type of its schema
 * in api/schema.ts (and the broker connections' in brokers/redis/spec.ts and brokers/kafka/spec.ts), so
 * the type and the CRD cannot disagree. The schemas themselves, and the defaults (api/defaults.ts), are
 * imported from there.
 */
export type { KafkaConnection, KafkaSasl, KafkaSaslMechanism, KafkaTls } from '../brokers/kafka/spec.ts';
export type { RedisConnection } from '../brokers/redis/spec.ts';
export type { SecretKeySelector } from './fragments.ts';
export {
  API_VERSION,
  type BrokerSpec,
  CONDITION_TYPES,
  type Condition,
  type ConditionType,
  GROUP,
  KIND,
  type ObjectMeta,
  PLURAL,
  type ScalingPolicy,
  type ScalingRules,
  type ScalingSpec,
  type TaskQueue,
  type TaskQueueSchedule,
  type TaskQueueSpec,
  type TaskQueueStatus,
  VERSION,
  type WorkerSpec,
} from './schema.ts';
