import type { V1EnvVar } from '@kubernetes/client-node';
import { DEFAULT_PREFIX } from '../../api/defaults.ts';
import { TaskQueueSpecError } from '../../controller/errors.ts';
import type { WorkerBrokerSettings } from '../definition.ts';
import type { RedisConnection } from './spec.ts';

/** A Redis broker: its URL, and the prefix. */
export function redisWorkerSettings(redis: RedisConnection, field: string): WorkerBrokerSettings {
  return {
    env: [
      connectionEnv('TASKFLEET_BROKER', redis, field),
      // Always set, default included: the operator probes the broker under this prefix, so the workers must
      // use the same one whatever the app's code says.
      { name: 'TASKFLEET_PREFIX', value: redis.prefix ?? DEFAULT_PREFIX },
    ],
  };
}

/** A Redis URL inline, or by reference to its Secret: the operator never reads a Secret's value. */
export function connectionEnv(name: string, connection: RedisConnection, field: string): V1EnvVar {
  const { url, urlFrom } = connection;
  if ((url === undefined) === (urlFrom === undefined)) {
    throw new TaskQueueSpecError(field, `${field}: set exactly one of url and urlFrom`);
  }
  if (url !== undefined) return { name, value: url };
  const { name: secret, key } = urlFrom!.secretKeyRef;
  return { name, valueFrom: { secretKeyRef: { name: secret, key } } };
}
