import { randomUUID } from 'node:crypto';
import { RedisBroker } from '../../worker/src/brokers/redis/broker.ts';
import { redis } from '../../worker/src/brokers/redis/definition.ts';
import { queueKeys } from '../../worker/src/brokers/redis/keys.ts';
import { useRedis } from '../support/stack.ts';
import { describeBrokerConformance } from './broker-conformance.ts';

describeBrokerConformance('RedisBroker', async () => {
  const { url } = await useRedis();
  // A prefix of its own, so this run's keys are apart from every other test's and removed together.
  const prefix = `conformance-${randomUUID().slice(0, 8)}`;
  const broker = new RedisBroker(url, { prefix });
  return {
    broker,
    definition: redis,
    url,
    queue: () => `q-${randomUUID().slice(0, 8)}`,
    async injectRaw(queue, text) {
      await broker.redis.xadd(queueKeys(prefix, queue).lanes[1], '*', 'm', text);
    },
    async cleanup() {
      const keys = await broker.redis.keys(`{${prefix}:*`);
      if (keys.length > 0) await broker.redis.del(...keys);
      await broker.close();
    },
  };
});
