import { Redis } from 'ioredis';
import { noopEnvelope } from '../support/envelope.ts';
import type { ChildConfig, Producer, StartConsumer } from '../support/protocol.ts';

/**
 * The ceiling: what a consumer costs when it does only what any Streams consumer must — read a batch
 * with XREADGROUP, decode each message, then XACK and XDEL the batch (deleted, as ours does). No
 * results, no retries, no bookkeeping. The messages are our envelopes, so the bytes are the same.
 */
const STREAM = (queue: string) => `{bare:${queue}}:stream`;
const GROUP = 'workers';

export function producer(host: string, port: number, queue: string): Producer {
  const redis = new Redis({ host, port });
  const stream = STREAM(queue);
  return {
    async bulk(count, chunk) {
      // One message encoded once: this measures the server and the client library, not our SDK.
      const text = noopEnvelope(queue);
      for (let i = 0; i < count; i += chunk) {
        const pipeline = redis.pipeline();
        for (let j = i; j < Math.min(count, i + chunk); j++) pipeline.xadd(stream, '*', 'm', text);
        await pipeline.exec();
      }
    },
    async one(arg) {
      await redis.xadd(stream, '*', 'm', noopEnvelope(queue, arg));
    },
    close: async () => {
      await redis.quit();
    },
  };
}

export const startConsumer: StartConsumer = async (config: ChildConfig, hooks) => {
  const redis = new Redis({ host: config.host, port: config.port });
  const stream = STREAM(config.queue);
  await redis.xgroup('CREATE', stream, GROUP, '0', 'MKSTREAM').catch((error: Error) => {
    if (!error.message.startsWith('BUSYGROUP')) throw error;
  });
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const reply = (await redis.xreadgroup(
        'GROUP',
        GROUP,
        'bare',
        'COUNT',
        config.concurrency,
        'BLOCK',
        200,
        'STREAMS',
        stream,
        '>',
      )) as [string, [string, string[]][]][] | null;
      const entries = reply?.[0]?.[1] ?? [];
      if (entries.length === 0) continue;
      const ids: string[] = [];
      for (const [id, fields] of entries) {
        const envelope = JSON.parse(fields[1] as string) as { args: number[] };
        hooks.started(envelope.args[0] as number);
        ids.push(id);
      }
      await redis
        .pipeline()
        .xack(stream, GROUP, ...ids)
        .xdel(stream, ...ids)
        .exec();
      for (let i = 0; i < ids.length; i++) hooks.completed(true);
    }
  })();
  return async () => {
    stopped = true;
    await loop;
    await redis.quit();
  };
};
