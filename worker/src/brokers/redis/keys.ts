/**
 * The keys of one queue. They share the hash tag `{<prefix>:<queue>}`, so a Redis Cluster keeps
 * them in one slot and a Lua script may touch them together.
 */
export interface QueueKeys {
  lanes: readonly [string, string, string];
  delayed: string;
  dead: string;
  /** Stream: the queue's task history, one entry per outcome recorded (fields `i`, the task id, and `e`). */
  history: string;
  /** Hash: task id → the id of its latest entry in `history`. */
  historyIndex: string;
  /** List: `<entry id> <task id>` of each entry in `history`, oldest first: what trimming reads. */
  historyOrder: string;
}

export function queueKeys(prefix: string, queue: string): QueueKeys {
  const tag = `{${prefix}:${queue}}`;
  return {
    lanes: [`${tag}:lane:0`, `${tag}:lane:1`, `${tag}:lane:2`],
    delayed: `${tag}:delayed`,
    dead: `${tag}:dead`,
    history: `${tag}:history`,
    historyIndex: `${tag}:history:index`,
    historyOrder: `${tag}:history:order`,
  };
}

/**
 * The keys of a schedule that fires onto a queue. They carry the queue's hash tag, so one script
 * enqueues a fire and records it (see scripts/fire-schedule.lua).
 */
export function scheduleKeys(prefix: string, queue: string, schedule: string) {
  const tag = `{${prefix}:${queue}}`;
  return {
    /** Hash: watermark, lastTick, lastTaskId, lastFiredAt, nextTick, fires, missed. */
    state: `${tag}:schedule:${schedule}`,
    /** Marks one tick fired (the task id of the fire), kept a while. */
    fired: (taskId: string) => `${tag}:fired:${taskId}`,
    /** The highest fencing token of `lease` that has fired onto this queue. */
    fence: (lease: string) => `${tag}:fence:${lease}`,
  };
}

/** The keys of a lease (which beat fires): the holding, and the counter its fencing tokens come from. */
export function leaseKeys(prefix: string, name: string) {
  const tag = `{${prefix}:lease:${name}}`;
  return { holder: `${tag}:holder`, token: `${tag}:token` };
}

/**
 * The keys of a chord. They carry its callback queue's hash tag, so one script records a member's
 * result and enqueues the callback onto that queue (see scripts/complete-chord-member.lua).
 */
export function chordKeys(prefix: string, queue: string, chord: string) {
  const tag = `{${prefix}:${queue}}`;
  return {
    /** Hash: state (open, fired, failed), size, lane, and the callback message's head, tail and shape. */
    state: `${tag}:chord:${chord}`,
    /** Hash: slot → the member's result (JSON). Its fields are the set of finished members. */
    results: `${tag}:chord:${chord}:results`,
  };
}

/** Keys shared by the whole app: results, revocations, heartbeats, control messages. */
export function appKeys(prefix: string) {
  return {
    result: (id: string) => `${prefix}:result:${id}`,
    /** The result's key's own name: settle.lua publishes each result it writes on its key's name. */
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
