import { DEFAULT_PREFIX } from '../../api/defaults.ts';
import type { SecretKeySelector } from '../../api/fragments.ts';
import { BrokerConfigError } from '../../controller/errors.ts';
import { redisUrlProblem } from '../../controller/secret-values.ts';
import type { SecretReader, TargetRequest } from '../definition.ts';
import type { RedisTarget } from './probe.ts';
import type { RedisConnection } from './spec.ts';

export async function redisTarget(
  redis: RedisConnection,
  { queue, field, secrets }: TargetRequest,
): Promise<RedisTarget> {
  const url = await redisUrl(secrets, redis.url, redis.urlFrom, field);
  return { kind: 'redis', url, prefix: redis.prefix ?? DEFAULT_PREFIX, queue };
}

/** A Redis connection's URL (the broker's, or the result backend's): inline, or read from its Secret. */
export async function redisUrl(
  secrets: SecretReader,
  value: string | undefined,
  from: SecretKeySelector | undefined,
  field: string,
): Promise<string> {
  if (value !== undefined) {
    // Inline, so no secret; the current CRD checks the scheme, an older one may not have.
    if (redisUrlProblem(value)) {
      throw new BrokerConfigError('InvalidSpec', `${field}.url is not a redis:// or rediss:// URL`);
    }
    return value;
  }
  if (!from) throw new BrokerConfigError('InvalidSpec', `${field} has neither url nor urlFrom`);
  if (!secrets.allowed) {
    throw secrets.notRead(
      `${field}.urlFrom`,
      `set ${field}.url to a URL without credentials instead (a Redis the operator's and the workers' pods may use without a password)`,
    );
  }
  return secrets.key(from, `${field}.urlFrom`, redisUrlProblem);
}
