import { secretKeyReferences } from '../../api/names.ts';
import type { OperatorBroker } from '../definition.ts';
import { type RedisTarget, redisProbe } from './probe.ts';
import { redisConnection } from './spec.ts';
import { redisWorkerSettings } from './worker-settings.ts';

const spec = redisConnection('The broker');

/** Redis, as the operator sees it: spec.broker.redis. */
export const redis: OperatorBroker<typeof spec, RedisTarget> = {
  spec,
  probe: redisProbe,
  workerSettings: redisWorkerSettings,
  namedReferences: (redis, field) => secretKeyReferences(`${field}.urlFrom`, redis.urlFrom),
};
