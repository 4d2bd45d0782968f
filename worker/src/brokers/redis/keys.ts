import { ConfigError } from '../../errors.ts';

const queueName = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/;

/** Checks a queue name: letters, digits and `_ . : -`, at most 200, so it is safe in keys and topics. */
export function assertQueueName(queue: string): void {
  if (!queueName.test(queue)) {
    throw new ConfigError(
      `queue name ${JSON.stringify(queue)} is not valid: use 1–200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit`,
    );
  }
}

/**
 * The keys of one queue. They share the hash tag `{<prefix>:<queue>}`, so a Redis Cluster keeps
 * them in one slot and a Lua script may touch them together.
 */
export interface QueueKeys {
  lanes: readonly [string, string, string];
  delayed: string;
  dead: string;
}

export function queueKeys(prefix: string, queue: string): QueueKeys {
  const tag = `{${prefix}:${queue}}`;
  return {
    lanes: [`${tag}:lane:0`, `${tag}:lane:1`, `${tag}:lane:2`],
    delayed: `${tag}:delayed`,
    dead: `${tag}:dead`,
  };
}

/** Keys shared by the whole app: results, revocations, heartbeats, control messages. */
export function appKeys(prefix: string) {
  return {
    result: (id: string) => `${prefix}:result:${id}`,
    resultChannel: (id: string) => `${prefix}:result:${id}`,
    revoked: `${prefix}:revoked`,
    control: `${prefix}:control`,
    workers: `${prefix}:workers`,
    worker: (id: string) => `${prefix}:worker:${id}`,
    rateLimit: (task: string) => `${prefix}:rate:${task}`,
  };
}

/** The consumer group every worker of a queue joins. */
export const GROUP = 'workers';
