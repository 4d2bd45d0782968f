/**
 * `taskfleet/operator`: what only the Taskfleet operator uses — the broker registry and adapters it
 * probes with, the Scheduler it fires a TaskQueue's schedules through, and the control plane it reads
 * heartbeats from. Apps import `taskfleet`; nothing here is part of its API.
 */
export type { Backlog, Broker, BrokerDefinition } from './brokers/broker.ts';
export { KafkaBroker } from './brokers/kafka/broker.ts';
export type { KafkaBrokerOptions } from './brokers/kafka/config.ts';
export { kafka as kafkaDefinition } from './brokers/kafka/definition.ts';
export { RedisBroker } from './brokers/redis/broker.ts';
export { redis as redisDefinition } from './brokers/redis/definition.ts';
export { BROKERS, brokerFor } from './brokers/registry.ts';
export { Control } from './control.ts';
export { metricsIn } from './observe/metrics.ts';
export { type HealthSource, serveObservability } from './observe/server.ts';
export { parseSchedule, RedisScheduleStore, Scheduler } from './schedule/index.ts';
