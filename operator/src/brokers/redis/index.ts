import type { OperatorBroker } from '../definition.ts';
import { type RedisTarget, redisProbe } from './probe.ts';
import type { RedisConnection } from './spec.ts';
import { redisWorkerSettings } from './worker-settings.ts';

/** Redis, as the operator sees it: spec.broker.redis. */
export const redis: OperatorBroker<RedisConnection, RedisTarget> = {
  probe: redisProbe,
  workerSettings: redisWorkerSettings,
};
