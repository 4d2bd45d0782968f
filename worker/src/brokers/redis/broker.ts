import type { RedisOptions } from 'ioredis';
import { TaskfleetError } from '../../errors.ts';
import type { ChordFailure, ChordRef } from '../../message/canvas-spec.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  type DeadLetterReason,
  type Envelope,
  encodeEnvelope,
  priorityLane,
} from '../../message/envelope.ts';
import { assertQueueName } from '../../queue-name.ts';
import type {
  Backlog,
  Broker,
  ChordMemberOutcome,
  ChordOpening,
  ChordProgress,
  Chords,
  Consumer,
  ConsumerOptions,
  DeadLetter,
  SendOptions,
} from '../broker.ts';
import { DEFAULT_MAX_DEAD_LETTERS } from '../dead-letter.ts';
import { redact } from '../redact.ts';
import { connect, type Redis, type Scripts, sendWithin, withScripts } from './connection.ts';
import { RedisConsumer } from './consumer.ts';
import { RedisHistory } from './history.ts';
import { appKeys, chordKeys, GROUP, queueKeys } from './keys.ts';

export interface RedisBrokerOptions {
  /** @defaultValue 'tf' */
  prefix?: string;
  /** @defaultValue 1 MiB */
  maxMessageBytes?: number;
  /** About how many dead letters each queue keeps (see ConsumerOptions.maxDeadLetters). @defaultValue 10_000 */
  maxDeadLetters?: number;
  /** ioredis options for the connection (e.g. fail fast instead of queueing while Redis is away). */
  connection?: RedisOptions;
}

/** Messages deleted per script call when purging: bounds how long one call holds Redis. */
const PURGE_BATCH = 1000;
/** Dead letters read per round trip when requeueing them all: bounds what one step holds in memory. */
const REQUEUE_PAGE = 100;

/**
 * Redis Streams as a broker. Per queue: three lane streams (by priority) read by one consumer group,
 * a delayed set promoted by a Lua script, and a dead-letter stream. See docs/worker.md.
 */
export class RedisBroker implements Broker, Chords {
  /** Chords, recorded by Lua scripts atomically with enqueueing the callback. */
  get chords(): Chords {
    return this;
  }

  readonly url: string;
  readonly prefix: string;
  readonly maxMessageBytes: number;
  readonly maxDeadLetters: number;
  readonly #redis: Redis & Scripts;
  readonly #consumers = new Set<RedisConsumer>();
  #history: RedisHistory | undefined;

  constructor(url: string, options: RedisBrokerOptions = {}) {
    this.url = url;
    this.prefix = options.prefix ?? 'tf';
    this.maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.maxDeadLetters = options.maxDeadLetters ?? DEFAULT_MAX_DEAD_LETTERS;
    this.#redis = withScripts(connect(url, { connectionName: 'taskfleet', ...options.connection }));
  }

  get history(): RedisHistory {
    this.#history ??= new RedisHistory(this.#redis, this.prefix);
    return this.#history;
  }

  /** The command connection, shared with the result backend and control when they use the same URL. */
  get redis(): Redis & Scripts {
    return this.#redis;
  }

  async publish(envelopes: readonly Envelope[], { deadline }: SendOptions = {}): Promise<void> {
    if (envelopes.length === 0) return;
    const now = Date.now();
    // Encoded (and refused when too large) before anything is sent.
    const commands = envelopes.map((envelope): Write => {
      assertQueueName(envelope.queue);
      const keys = queueKeys(this.prefix, envelope.queue);
      const text = encodeEnvelope(envelope, this.maxMessageBytes);
      const lane = priorityLane(envelope.priority);
      return envelope.eta !== undefined && envelope.eta > now
        ? { key: keys.delayed, at: envelope.eta, text: `${lane}${text}` }
        : { key: keys.lanes[lane] as string, text };
    });
    const send = async () => {
      // One round trip for the lot; each command is its own, so a failure part-way leaves what was added.
      const pipeline = this.#redis.pipeline();
      for (const c of commands) {
        if (c.at !== undefined) pipeline.zadd(c.key, c.at, c.text);
        else pipeline.xadd(c.key, '*', 'm', c.text);
      }
      const results = (await pipeline.exec()) ?? [];
      const failed = results.find(([error]) => error !== null);
      if (failed) throw failed[0];
    };
    await sendWithin(this.#redis, deadline, send);
  }

  async consume(queue: string, options: ConsumerOptions): Promise<Consumer> {
    assertQueueName(queue);
    const consumer = new RedisConsumer(this.#redis, queueKeys(this.prefix, queue), {
      maxMessageBytes: this.maxMessageBytes,
      maxDeadLetters: this.maxDeadLetters,
      results: appKeys(this.prefix),
      ...options,
    });
    await consumer.start();
    this.#consumers.add(consumer);
    consumer.onClose(() => this.#consumers.delete(consumer));
    return consumer;
  }

  async backlog(queue: string): Promise<Backlog> {
    assertQueueName(queue);
    const keys = queueKeys(this.prefix, queue);
    const pipeline = this.#redis.pipeline();
    for (const lane of keys.lanes) {
      pipeline.xlen(lane);
      pipeline.xinfo('STREAM', lane);
      pipeline.xinfo('GROUPS', lane);
    }
    pipeline.zcard(keys.delayed);
    pipeline.zcount(keys.delayed, '-inf', Date.now());
    pipeline.xlen(keys.dead);
    const results = (await pipeline.exec()) ?? [];
    // XINFO on a lane nobody has written to yet says "no such key": that lane is empty. Anything else
    // (Redis unreachable, a wrong type) must fail the probe, not read as an empty queue.
    const failure = results.find(([error]) => error && !/no such key/i.test(error.message));
    if (failure?.[0]) throw failure[0];
    const backlog: Backlog = { ready: 0, delayed: 0, due: 0, inFlight: 0, added: 0, delivered: 0 };
    /** Lanes with entries not yet delivered, and the last id delivered from each: the oldest waiting follows it. */
    const waiting: [lane: string, lastDelivered: string][] = [];
    for (let i = 0; i < keys.lanes.length; i++) {
      const [length, stream, groups] = results.slice(i * 3, i * 3 + 3);
      if (!length || !stream || !groups || stream[0] || groups[0]) continue; // no stream yet: nothing in it
      const group = ((groups[1] as unknown[]) ?? []).map(fieldMap).find((g) => g.name === GROUP);
      const pending = Number(group?.pending ?? 0);
      // Acknowledged entries are deleted, so the stream holds exactly the pending and the undelivered.
      const ready = group?.lag != null ? Number(group.lag) : Number(length[1]) - pending;
      backlog.ready += ready;
      backlog.inFlight += pending;
      if (ready > 0) waiting.push([keys.lanes[i] as string, String(group?.['last-delivered-id'] ?? '0-0')]);
      backlog.added = (backlog.added ?? 0) + Number(fieldMap(stream[1])['entries-added'] ?? 0);
      backlog.delivered = (backlog.delivered ?? 0) + Number(group?.['entries-read'] ?? 0);
    }
    const tail = results.slice(keys.lanes.length * 3) as [Error | null, number][];
    backlog.delayed = Number(tail[0]?.[1] ?? 0);
    backlog.due = Number(tail[1]?.[1] ?? 0);
    backlog.deadLetters = Number(tail[2]?.[1] ?? 0);
    if (waiting.length > 0) backlog.oldestReadyAt = await this.#oldestWaiting(waiting);
    return backlog;
  }

  /** When the oldest entry not yet delivered was added (its id's time), over the lanes given. */
  async #oldestWaiting(lanes: readonly [lane: string, lastDelivered: string][]): Promise<number | undefined> {
    const pipeline = this.#redis.pipeline();
    for (const [lane, last] of lanes) pipeline.xrange(lane, `(${last}`, '+', 'COUNT', 1);
    let oldest: number | undefined;
    for (const [error, entries] of (await pipeline.exec()) ?? []) {
      const id = !error && (entries as Entry[])[0]?.[0];
      if (!id) continue;
      const at = Number(id.slice(0, id.indexOf('-')));
      if (oldest === undefined || at < oldest) oldest = at;
    }
    return oldest;
  }

  async purge(queue: string): Promise<number> {
    assertQueueName(queue);
    const keys = queueKeys(this.prefix, queue);
    // Counted and deleted in one step: a message the promoter moves meanwhile is counted once, in its lane.
    const [[, delayed] = []] = (await this.#redis.multi().zcard(keys.delayed).del(keys.delayed).exec()) ?? [];
    let purged = Number(delayed ?? 0);
    for (const lane of keys.lanes) {
      // What is waiting now, not what producers add while the purge runs: it would never end.
      const [last] = (await this.#redis.xrevrange(lane, '+', '-', 'COUNT', 1)) as [string, string[]][];
      if (!last) continue;
      // Delivered (pending) entries are kept: a worker holds them and will acknowledge them.
      for (;;) {
        const deleted = Number(await this.#redis.purgeLane(lane, GROUP, last[0], PURGE_BATCH));
        purged += deleted;
        if (deleted < PURGE_BATCH) break;
      }
    }
    return purged;
  }

  async deadLetters(queue: string, { limit = 100 }: { limit?: number } = {}): Promise<DeadLetter[]> {
    assertQueueName(queue);
    const entries = (await this.#redis.xrange(queueKeys(this.prefix, queue).dead, '-', '+', 'COUNT', limit)) as [
      string,
      string[],
    ][];
    return entries.map(([id, fields]) => toDeadLetter(id, fieldMap(fields)));
  }

  async requeueDeadLetters(
    queue: string,
    ids?: readonly string[],
    { beforeEach }: { beforeEach?: (letters: readonly DeadLetter[]) => Promise<void> } = {},
  ): Promise<number> {
    assertQueueName(queue);
    const keys = queueKeys(this.prefix, queue);
    const requeue = async (entries: [string, string[]][]) => {
      // A letter kept only as its head would be dead-lettered again at once: it stays where it is.
      const letters = entries.map(([id, fields]) => toDeadLetter(id, fieldMap(fields))).filter((l) => !l.sha256);
      if (letters.length === 0) return 0;
      await beforeEach?.(letters);
      // Back onto the normal lane as it was received: a fixed handler (or a registered task) now runs it.
      const transaction = this.#redis.multi();
      for (const letter of letters) transaction.xadd(keys.lanes[1], '*', 'm', letter.raw).xdel(keys.dead, letter.id);
      await transaction.exec();
      return letters.length;
    };
    let requeued = 0;
    if (ids) {
      for (let i = 0; i < ids.length; i += REQUEUE_PAGE) {
        const page = await Promise.all(
          ids.slice(i, i + REQUEUE_PAGE).map(async (id) => (await this.#redis.xrange(keys.dead, id, id)) as Entry[]),
        );
        requeued += await requeue(page.flat());
      }
      return requeued;
    }
    // Up to the last letter there now: letters requeued and dead-lettered again are appended after it,
    // and chasing them would never end.
    const [last] = (await this.#redis.xrevrange(keys.dead, '+', '-', 'COUNT', 1)) as Entry[];
    if (!last) return 0;
    let from = '-';
    for (;;) {
      const page = (await this.#redis.xrange(keys.dead, from, last[0], 'COUNT', REQUEUE_PAGE)) as Entry[];
      if (page.length === 0) break;
      requeued += await requeue(page);
      const end = page.at(-1)?.[0] as string;
      if (end === last[0]) break;
      from = `(${end}`;
    }
    return requeued;
  }

  async deleteDeadLetters(queue: string, ids?: readonly string[]): Promise<number> {
    assertQueueName(queue);
    const dead = queueKeys(this.prefix, queue).dead;
    if (!ids) {
      const [[, count] = []] = (await this.#redis.multi().xlen(dead).del(dead).exec()) ?? [];
      return Number(count ?? 0);
    }
    let deleted = 0;
    for (let i = 0; i < ids.length; i += REQUEUE_PAGE) {
      deleted += Number(await this.#redis.xdel(dead, ...ids.slice(i, i + REQUEUE_PAGE)));
    }
    return deleted;
  }

  async openChord({ id, size, shape, callback, ttlMs }: ChordOpening, { deadline }: SendOptions = {}): Promise<void> {
    assertQueueName(callback.queue);
    // Refused now if the callback alone is over the limit; with its results, the script checks again.
    encodeEnvelope(callback, this.maxMessageBytes);
    // The results list becomes the first argument: args goes last, so the script can splice it in.
    const { args, ...rest } = callback;
    const head = `${JSON.stringify(rest).slice(0, -1)},`;
    const tail = `${args.map((arg) => `,${JSON.stringify(arg)}`).join('')}]}`;
    const keys = chordKeys(this.prefix, callback.queue, id);
    const send = () =>
      this.#redis.openChord(keys.state, size, priorityLane(callback.priority), head, tail, shape ?? '', ttlMs);
    await sendWithin(this.#redis, deadline, send);
  }

  async completeChordMember(slot: ChordRef, outcome: ChordMemberOutcome, ttlMs: number): Promise<ChordProgress> {
    assertQueueName(slot.queue);
    const keys = chordKeys(this.prefix, slot.queue, slot.id);
    const code = Number(
      await this.#redis.completeChordMember(
        keys.state,
        keys.results,
        ...queueKeys(this.prefix, slot.queue).lanes,
        slot.index,
        outcome.ok ? 'ok' : 'fail',
        outcome.ok ? JSON.stringify(outcome.value) : JSON.stringify(boundedFailure(outcome.failure)),
        ttlMs,
        this.maxMessageBytes,
      ),
    );
    switch (code) {
      case 1:
        return 'recorded';
      case 2:
        return 'completed';
      case 3:
        return 'failed';
      case 0:
        return 'duplicate';
      case -1:
        return 'unknown';
      default:
        // The slot a message names is past its chord's size: no retry fills it.
        throw new TaskfleetError(
          'CHORD_SLOT_INVALID',
          `chord ${slot.id} has no slot ${slot.index} (complete-chord-member.lua returned ${code}): the message names a slot its chord does not have`,
        );
    }
  }

  async warnings(): Promise<string[]> {
    const info = String(await this.#redis.info('memory'));
    const policy = /maxmemory_policy:(\S+)/.exec(info)?.[1];
    if (policy && policy !== 'noeviction') {
      return [
        `Redis at ${redact(this.url)} has maxmemory-policy ${policy}: under memory pressure it will evict keys, and tasks with them. Set maxmemory-policy noeviction for a broker.`,
      ];
    }
    return [];
  }

  async close(): Promise<void> {
    await Promise.all([...this.#consumers].map((c) => c.close()));
    this.#redis.disconnect();
  }
}

/** A failure short enough to travel in the callback message whatever the member threw. */
function boundedFailure(failure: ChordFailure): ChordFailure {
  const { name, message, code } = failure.error;
  return {
    ...failure,
    error: {
      name: name.slice(0, 200),
      message: message.length > 2000 ? `${message.slice(0, 2000)}…` : message,
      ...(code !== undefined ? { code: code.slice(0, 200) } : {}),
    },
  };
}

/** XINFO and stream entries come back as flat [name, value, ...] lists. */
export function fieldMap(fields: unknown): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  if (!Array.isArray(fields)) return map;
  for (let i = 0; i + 1 < fields.length; i += 2) map[String(fields[i])] = fields[i + 1];
  return map;
}

type Entry = [string, string[]];

/** One message to write: onto a lane now, or (with `at`) into the delayed set, its lane in front. */
type Write = { key: string; text: string; at?: number };

/** The `id` and `task` at the start of a message's head, as the SDK writes them (`{"v":1,"id":…,"task":…`). */
function leadingIds(head: string): { task?: string; taskId?: string } {
  const match = /^\{"v":\d+,"id":("(?:[^"\\]|\\.){1,200}"),"task":("(?:[^"\\]|\\.){1,200}")/.exec(head);
  if (!match) return {};
  try {
    return { taskId: JSON.parse(match[1] as string) as string, task: JSON.parse(match[2] as string) as string };
  } catch {
    return {};
  }
}

function toDeadLetter(id: string, f: Record<string, unknown>): DeadLetter {
  const raw = String(f.m ?? '');
  const sha256 = typeof f.sha256 === 'string' && f.sha256 !== '' ? f.sha256 : undefined;
  let task: string | undefined;
  let taskId: string | undefined;
  try {
    const parsed = JSON.parse(raw) as { task?: unknown; id?: unknown };
    if (typeof parsed.task === 'string') task = parsed.task;
    if (typeof parsed.id === 'string') taskId = parsed.id;
  } catch {
    // Only a head is kept of an oversize message: the SDK writes the id and task first, so they are in it.
    if (sha256) ({ task, taskId } = leadingIds(raw));
  }
  return {
    id,
    reason: String(f.reason) as DeadLetterReason,
    detail: String(f.detail ?? ''),
    raw,
    // Letters written before sizes were kept were kept whole.
    size: f.size !== undefined ? Number(f.size) : Buffer.byteLength(raw),
    ...(sha256 ? { sha256 } : {}),
    ...(task ? { task } : {}),
    ...(taskId ? { taskId } : {}),
    deliveries: Number(f.deliveries ?? 0),
    at: Number(f.at ?? 0),
  };
}
