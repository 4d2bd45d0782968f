import { TaskfleetError } from '../../errors.ts';
import { RedisScheduleStore } from '../../schedule/store.ts';
import type { BrokerDefinition } from '../broker.ts';
import { redact } from '../redact.ts';
import { RedisBroker } from './broker.ts';
import { assertRedisUrl, connect, PRODUCER_CONNECTION } from './connection.ts';

/** Redis Streams: `redis://host:port/db`, `rediss://` for TLS. */
export const redis: BrokerDefinition = {
  name: 'Redis',
  schemes: ['redis', 'rediss'],
  usage: 'a redis:// or rediss:// URL',
  capabilities: { chords: true, resultBackend: true, schedules: true },

  validate(url, from) {
    assertRedisUrl(url, `the broker URL (from ${from})`);
  },

  open(url, settings) {
    return new RedisBroker(url, settings);
  },

  openProducer(url, settings) {
    return new RedisBroker(url, { ...settings, connection: PRODUCER_CONNECTION });
  },

  scheduleStore(broker, prefix) {
    if (!(broker instanceof RedisBroker)) throw new TypeError('a Redis schedule store needs a RedisBroker');
    return new RedisScheduleStore(broker.redis, { prefix });
  },

  async assertReachable(url, { what, setting }) {
    const probe = connect(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    let cause: Error | undefined; // the socket's error says more than the "Connection is closed." that follows
    probe.on('error', (error: Error) => {
      cause ??= error;
    });
    try {
      await probe.connect();
      await probe.ping();
    } catch (error) {
      cause ??= error as Error;
      throw new TaskfleetError(
        'UNREACHABLE',
        `cannot reach ${what} at ${redact(url)} (${cause.message}): is Redis running there? Set it with ${setting}.`,
        { cause },
      );
    } finally {
      probe.disconnect();
    }
  },
};
