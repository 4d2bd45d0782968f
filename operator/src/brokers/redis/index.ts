import { redisDefinition } from 'taskfleet/operator';
import { secretKeyReferences } from '../../api/names.ts';
import type { OperatorBroker } from '../definition.ts';
import { type RedisTarget, redisProbe } from './probe.ts';
import { redisConnection } from './spec.ts';
import { redisTarget } from './target.ts';
import { redisWorkerSettings } from './worker-settings.ts';

const spec = redisConnection('The broker');

/** Redis, as the operator sees it: spec.broker.redis. */
export const redis: OperatorBroker<typeof spec, RedisTarget> = {
  worker: redisDefinition,
  spec,
  probe: redisProbe,
  target: redisTarget,
  workerSettings: redisWorkerSettings,
  namedReferences: (redis, field) => secretKeyReferences(`${field}.urlFrom`, redis.urlFrom),
};
