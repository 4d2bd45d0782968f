import { decodeEnvelope, type Envelope, InvalidMessageError, LANES, priorityLane } from '../../message/envelope.ts';
import { fitsIn } from '../../message/json.ts';
import type { Consumer, ConsumerOptions, Delivery, HistoryLimits, Settlement } from '../broker.ts';
import { boundedDetail, DEFAULT_MAX_DEAD_LETTERS, deadLetterCopy, poison } from '../dead-letter.ts';
import type { Redis, Scripts } from './connection.ts';
import { type appKeys, GROUP, type QueueKeys } from './keys.ts';

/** A delivery from a lane stream: the receipt is `<lane>-<entry id>`. */
class StreamDelivery implements Delivery {
  readonly lane: 0 | 1 | 2;
  readonly entryId: string;
  readonly raw: string;
  readonly deliveries: number;
  readonly receipt: string;
  readonly envelope: Envelope | undefined;
  readonly problem: InvalidMessageError | undefined;
  readonly enqueuedAt: number;
  constructor(
    lane: 0 | 1 | 2,
    entryId: string,
    raw: string,
    deliveries: number,
    maxDeliveries: number,
    maxBytes: number,
  ) {
    this.lane = lane;
    this.entryId = entryId;
    this.raw = raw;
    this.deliveries = deliveries;
    this.receipt = `${lane}-${entryId}`;
    this.enqueuedAt = Number(entryId.slice(0, entryId.indexOf('-')));
    let envelope: Envelope | undefined;
    let problem: InvalidMessageError | undefined;
    try {
      envelope = decodeEnvelope(raw, maxBytes);
    } catch (error) {
      problem = error instanceof InvalidMessageError ? error : new InvalidMessageError('malformed', String(error));
    }
    if (!problem && deliveries > maxDeliveries) problem = poison(deliveries, maxDeliveries);
    this.envelope = envelope;
    this.problem = problem;
  }
}

const MAX_BLOCK_MS = 2000;
const PROMOTE_EVERY_MS = 250;
/** Settlements sent in one script call at most; a bigger tick goes in several. */
const SETTLE_CHUNK = 1000;

/** Settlements made in the same tick, sent as one settle.lua call (see RedisConsumer.settle). */
interface SettleBatch {
  /** The result keys, one per result carried. */
  readonly keys: string[];
  /** The operations, as settle.lua reads them. */
  readonly args: (string | number)[];
  readonly settled: StreamDelivery[];
  readonly sent: PromiseWithResolvers<void>;
}

/**
 * Reads a queue's lane streams through the consumer group. Besides reading, it does the upkeep every
 * consumer shares, so no separate process is needed: it promotes due delayed messages, recovers
 * deliveries of dead consumers, keeps its own deliveries alive while they run, and removes consumers
 * long gone from the group.
 */
export class RedisConsumer implements Consumer {
  readonly #redis: Redis & Scripts;
  readonly #blocking: Redis;
  readonly #keys: QueueKeys;
  readonly #name: string;
  readonly #visibilityMs: number;
  readonly #maxDeliveries: number;
  readonly #maxBytes: number;
  readonly #maxDeadLetters: number;
  /** Deliveries handed out (or buffered) and not yet settled: kept alive by #extend. */
  readonly #held = new Map<string, StreamDelivery>();
  /** Read beyond what the caller asked for; handed out first next time. */
  #buffer: StreamDelivery[] = [];
  readonly #recoverCursors = ['0-0', '0-0', '0-0'];
  /** Where results are stored, when settlements carry them (ConsumerOptions.storeResults). */
  readonly #results: ReturnType<typeof appKeys> | undefined;
  #batch: SettleBatch | undefined;
  /** settle.lua's fixed keys: the lanes, the delayed set, the dead letters, the history, its index and order. */
  readonly #settleKeys: string[];
  /** The history's bounds, when this consumer keeps it (ConsumerOptions.history). */
  readonly #history: HistoryLimits | undefined;
  /** Batches sent and not yet answered. */
  readonly #sending = new Set<Promise<void>>();
  #nextPromoteAt = 0;
  #nextRecoverAt = 0;
  #recoveries = 0;
  #blockingId: number | undefined;
  #reading = false;
  #healthy = false;
  #closed = false;
  #extendTimer: NodeJS.Timeout | undefined;
  readonly #onClose: (() => void)[] = [];

  constructor(
    redis: Redis & Scripts,
    keys: QueueKeys,
    options: ConsumerOptions & { maxMessageBytes: number; results?: ReturnType<typeof appKeys> },
  ) {
    this.#redis = redis;
    this.#results = options.storeResults ? options.results : undefined;
    this.#keys = keys;
    this.#settleKeys = [...keys.lanes, keys.delayed, keys.dead, keys.history, keys.historyIndex, keys.historyOrder];
    this.#history = options.history;
    this.#name = options.consumer;
    this.#visibilityMs = options.visibilityTimeoutMs ?? 30_000;
    this.#maxDeliveries = options.maxDeliveries ?? 5;
    this.#maxBytes = options.maxMessageBytes;
    this.#maxDeadLetters = options.maxDeadLetters ?? DEFAULT_MAX_DEAD_LETTERS;
    // XREADGROUP BLOCK holds its connection, so reads get one of their own.
    this.#blocking = redis.duplicate({ enableAutoPipelining: false, connectionName: `taskfleet-read:${this.#name}` });
    this.#blocking.on('ready', () => {
      this.#blocking.client('ID').then(
        (id) => {
          this.#blockingId = Number(id);
        },
        () => {},
      );
    });
    this.#blocking.on('close', () => {
      this.#healthy = false;
    });
  }

  get healthy(): boolean {
    return this.#healthy && !this.#closed;
  }

  get storesResults(): boolean {
    return this.#results !== undefined;
  }

  get keepsHistory(): boolean {
    return this.#history !== undefined;
  }

  onClose(listener: () => void): void {
    this.#onClose.push(listener);
  }

  async start(): Promise<void> {
    await this.#ensureGroups();
    this.#healthy = true;
    const every = Math.max(100, Math.floor(this.#visibilityMs / 3));
    this.#extendTimer = setInterval(() => void this.#extend(), every);
    this.#extendTimer.unref();
  }

  /** Creates the group on each lane from the start of the stream, so nothing published earlier is skipped. */
  async #ensureGroups(): Promise<void> {
    await Promise.all(
      this.#keys.lanes.map((lane) =>
        this.#redis.xgroup('CREATE', lane, GROUP, '0', 'MKSTREAM').catch((error: Error) => {
          if (!error.message.startsWith('BUSYGROUP')) throw error;
        }),
      ),
    );
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    while (!signal.aborted && !this.#closed) {
      try {
        if (this.#buffer.length > 0) return this.#buffer.splice(0, max);
        await this.#promoteIfDue();
        const recovered = await this.#recoverIfDue(max);
        if (recovered.length > 0) return recovered;
        const read = await this.#read(max, signal);
        this.#healthy = true;
        if (read.length > 0 && signal.aborted) {
          // Read as the caller gave up (an abort can reach Redis just before the blocking read it
          // meant to end): kept for the next receive, or handed back at close, never dropped.
          this.#buffer = read;
          return [];
        }
        if (read.length > 0) {
          this.#buffer = read.slice(max);
          return read.slice(0, max);
        }
      } catch (error) {
        this.#healthy = false;
        if (this.#closed) break;
        if (/NOGROUP/.test((error as Error).message)) {
          // Redis lost the group (a restart without persistence, a FLUSHALL): make it again and go on.
          await this.#ensureGroups().catch(() => {});
        } else {
          await new Promise((resolve) => setTimeout(resolve, 200));
        }
      }
    }
    return [];
  }

  async #read(max: number, signal: AbortSignal): Promise<StreamDelivery[]> {
    // Lane by lane, most urgent first, taking from each only what is still wanted: one read of every
    // lane takes up to `max` from each, and that surplus, handed out on the next calls, would overtake
    // urgent messages still waiting.
    const waiting = await this.#readWaiting(max);
    if (waiting.length > 0) return waiting;
    // Nothing waiting: block on every lane at once. Only what arrives in the moment before the block
    // can come from several lanes; receive() keeps the surplus.
    const now = Date.now();
    const block = Math.max(1, Math.min(MAX_BLOCK_MS, this.#nextPromoteAt - now, this.#nextRecoverAt - now));
    const unblock = () => {
      if (this.#reading && this.#blockingId !== undefined)
        this.#redis.client('UNBLOCK', this.#blockingId).catch(() => {});
    };
    signal.addEventListener('abort', unblock, { once: true });
    this.#reading = true;
    try {
      if (signal.aborted) return []; // aborted before the listener was added: it will never fire
      return await this.#readLanes(LANES, max, block);
    } finally {
      this.#reading = false;
      signal.removeEventListener('abort', unblock);
    }
  }

  /** Up to `max` new entries waiting on the lanes, most urgent first, in one round trip (read.lua). */
  async #readWaiting(max: number): Promise<StreamDelivery[]> {
    const reply = (await this.#redis.read(...this.#keys.lanes, GROUP, this.#name, max)) as [
      0 | 1 | 2,
      [string, string[]][],
    ][];
    const deliveries: StreamDelivery[] = [];
    for (const [lane, entries] of reply) {
      for (const [id, fields] of entries) deliveries.push(this.#deliver(lane, id, fields, 1));
    }
    return deliveries;
  }

  /** XREADGROUP of new entries from some lanes, most urgent first; blocks for `block` ms if given. */
  async #readLanes(lanes: readonly (0 | 1 | 2)[], count: number, block?: number): Promise<StreamDelivery[]> {
    // biome-ignore lint/suspicious/noExplicitAny: ioredis types xreadgroup's variadic form loosely
    const reply = (await (this.#blocking.xreadgroup as any)(
      'GROUP',
      GROUP,
      this.#name,
      'COUNT',
      count,
      ...(block === undefined ? [] : ['BLOCK', block]),
      'STREAMS',
      ...lanes.map((lane) => this.#keys.lanes[lane]),
      ...lanes.map(() => '>'),
    )) as [string, [string, string[]][]][] | null;
    if (!reply) return [];
    const deliveries: StreamDelivery[] = [];
    for (const [stream, entries] of reply) {
      const lane = this.#keys.lanes.indexOf(stream) as 0 | 1 | 2;
      for (const [id, fields] of entries) deliveries.push(this.#deliver(lane, id, fields, 1));
    }
    // Most urgent lane first; within a lane, stream order.
    return deliveries.sort((a, b) => a.lane - b.lane);
  }

  #deliver(lane: 0 | 1 | 2, id: string, fields: string[] | null, deliveries: number): StreamDelivery {
    // Fields alternate name and value; an entry written without the 'm' field carries no message. 'd'
    // carries the deliveries of the entries this one replaces (a call put back, see release), which the
    // group's own count, reset with every new entry, does not know.
    let raw = '';
    let before = 0;
    for (let i = 0; fields && i + 1 < fields.length; i += 2) {
      if (fields[i] === 'm') raw = String(fields[i + 1]);
      else if (fields[i] === 'd') before = Math.max(0, Number.parseInt(String(fields[i + 1]), 10) || 0);
    }
    const delivery = new StreamDelivery(lane, id, raw, before + deliveries, this.#maxDeliveries, this.#maxBytes);
    this.#held.set(delivery.receipt, delivery);
    return delivery;
  }

  async #promoteIfDue(): Promise<void> {
    const now = Date.now();
    if (now < this.#nextPromoteAt) return;
    const [, nextDueMs] = (await this.#redis.promoteDelayed(this.#keys.delayed, ...this.#keys.lanes, 1000)) as [
      number,
      number,
    ];
    // New delayed messages may arrive at any time, so look again soon even if the earliest is far off.
    this.#nextPromoteAt = now + (nextDueMs < 0 ? PROMOTE_EVERY_MS : Math.min(nextDueMs, PROMOTE_EVERY_MS));
  }

  async #recoverIfDue(max: number): Promise<StreamDelivery[]> {
    const now = Date.now();
    if (now < this.#nextRecoverAt) return [];
    this.#nextRecoverAt = now + Math.min(5000, Math.max(100, this.#visibilityMs / 2));
    const recovered: StreamDelivery[] = [];
    for (const lane of [0, 1, 2] as const) {
      if (recovered.length >= max) break;
      const [cursor, entries] = (await this.#redis.recover(
        this.#keys.lanes[lane],
        GROUP,
        this.#name,
        this.#visibilityMs,
        max - recovered.length,
        this.#recoverCursors[lane] as string,
      )) as [string, [string, string[] | null, number][]];
      this.#recoverCursors[lane] = cursor;
      for (const [id, fields, deliveries] of entries) {
        recovered.push(this.#deliver(lane, id, fields, Number(deliveries)));
      }
    }
    if (++this.#recoveries % 60 === 0) await this.#forgetDeadConsumers();
    return recovered;
  }

  /** Consumers that hold nothing and have not read for a long time are gone: take them off the group. */
  async #forgetDeadConsumers(): Promise<void> {
    const idleMs = Math.max(10 * this.#visibilityMs, 600_000);
    for (const lane of this.#keys.lanes) {
      const consumers = (await this.#redis.xinfo('CONSUMERS', lane, GROUP)) as unknown[][];
      for (const fields of consumers) {
        const c: Record<string, unknown> = {};
        for (let i = 0; i + 1 < fields.length; i += 2) c[String(fields[i])] = fields[i + 1];
        if (Number(c.pending) === 0 && Number(c.idle) > idleMs && c.name !== this.#name) {
          await this.#redis.xgroup('DELCONSUMER', lane, GROUP, String(c.name));
        }
      }
    }
  }

  /** Resets the idle time of every held delivery this consumer still owns (extend.lua). */
  async #extend(): Promise<void> {
    if (this.#held.size === 0 || this.#closed) return;
    const byLane: [string[], string[], string[]] = [[], [], []];
    for (const d of this.#held.values()) byLane[d.lane].push(d.entryId);
    await Promise.all(
      byLane.map((ids, lane) =>
        ids.length === 0
          ? undefined
          : this.#redis.extend(this.#keys.lanes[lane] as string, GROUP, this.#name, ...ids).catch(() => undefined),
      ),
    );
  }

  /**
   * Settlements made in the same tick — acknowledgements, retries, dead letters, and the results they
   * carry — go to Redis as one settle.lua call, atomic: a result and its acknowledgement are written
   * together or not at all. The batch succeeds or fails as one, and each caller learns which.
   */
  settle(delivery: Delivery, settlement: Settlement): Promise<void> {
    const d = delivery as StreamDelivery;
    const { result } = settlement;
    if (result && !this.#results) {
      this.#held.delete(d.receipt);
      return Promise.reject(new Error('this consumer does not store results: it was opened without storeResults'));
    }
    let batch = this.#batch;
    if (!batch) {
      const opened: SettleBatch = { keys: [], args: [], settled: [], sent: Promise.withResolvers<void>() };
      this.#batch = batch = opened;
      setImmediate(() => this.#send(opened));
    }
    const entry = this.#historyEntry(d, settlement);
    let entered = false;
    if (result && this.#results) {
      batch.keys.push(this.#results.result(result.id));
      if (settlement.kind !== 'ack') batch.args.push('R', result.ttlMs, result.json);
      else if (entry && entry.outcome === result.json) {
        // Stored, acknowledged and entered in the history in one operation: a call's end, history on.
        batch.args.push('T', d.lane, d.entryId, result.ttlMs, result.json, entry.id, entry.message, entry.size);
        entered = true;
      } else {
        // Stored and acknowledged in one operation: what nearly every call ends with.
        batch.args.push('S', d.lane, d.entryId, result.ttlMs, result.json);
      }
    }
    if (!(result && settlement.kind === 'ack')) this.#operation(batch.args, d, settlement);
    if (entry && !entered) batch.args.push('H', entry.id, entry.message, entry.outcome, entry.size);
    batch.settled.push(d);
    if (batch.settled.length >= SETTLE_CHUNK) this.#send(batch);
    return batch.sent.promise;
  }

  /**
   * The history entry a settlement makes, when this consumer keeps the history: its outcome (the one
   * given, else the result record stored with it), and the message it ran when both fit in an entry
   * (else '' and the message's size).
   */
  #historyEntry(d: StreamDelivery, settlement: Settlement) {
    const limits = this.#history;
    const history = settlement.history;
    if (limits === undefined || history === undefined) return undefined;
    const outcome = history.outcome ?? settlement.result?.json;
    if (outcome === undefined) return undefined;
    const fits = fitsIn(limits.maxEntryBytes, d.raw, outcome);
    return { id: history.id, outcome, message: fits ? d.raw : '', size: fits ? 0 : Buffer.byteLength(d.raw) };
  }

  /** A settlement as settle.lua's operation (see its header). */
  #operation(args: (string | number)[], d: StreamDelivery, settlement: Settlement): void {
    switch (settlement.kind) {
      case 'ack':
        args.push('A', d.lane, d.entryId);
        break;
      case 'requeue': {
        const { envelope, at } = settlement;
        args.push('Q', d.lane, d.entryId, at, priorityLane(envelope.priority), JSON.stringify(envelope));
        break;
      }
      case 'dead-letter': {
        const copy = deadLetterCopy(d.raw, settlement.reason);
        const detail = boundedDetail(settlement.detail);
        args.push('D', d.lane, d.entryId, copy.text, settlement.reason, detail, d.deliveries, Date.now());
        args.push(copy.size, copy.sha256 ?? '');
        break;
      }
    }
  }

  /**
   * Sends a batch (once). Settled or not, its deliveries are no longer kept alive: an entry whose
   * settlement failed stays pending, so any consumer recovers it after the visibility timeout, its
   * delivery counted (never held forever).
   */
  #send(batch: SettleBatch): void {
    if (this.#batch !== batch) return;
    this.#batch = undefined;
    const { keys, args, settled, sent } = batch;
    const fixed = this.#settleKeys;
    const call = this.#redis.settle(
      fixed.length + keys.length,
      ...fixed,
      ...keys,
      GROUP,
      this.#maxDeadLetters,
      this.#history?.maxEntries ?? 0,
      this.#history?.maxAgeMs ?? 0,
      ...args,
    );
    const done = call
      .finally(() => {
        for (const d of settled) this.#held.delete(d.receipt);
      })
      .then(() => sent.resolve(), sent.reject);
    this.#sending.add(done);
    void done.finally(() => this.#sending.delete(done));
  }

  drop(delivery: Delivery): void {
    this.#held.delete(delivery.receipt);
  }

  async release(deliveries: readonly Delivery[], { counted = false }: { counted?: boolean } = {}): Promise<void> {
    await Promise.all(
      deliveries.map((delivery) => {
        const d = delivery as StreamDelivery;
        this.#held.delete(d.receipt);
        // The same message, back onto its lane now: the next reader gets it without waiting for recovery.
        // The new entry carries the deliveries so far, this one only if it counts (see Consumer.release).
        return this.#redis.requeue(
          this.#keys.lanes[d.lane] as string,
          this.#keys.delayed,
          ...this.#keys.lanes,
          GROUP,
          d.entryId,
          0,
          d.lane,
          d.raw,
          counted ? d.deliveries : d.deliveries - 1,
        );
      }),
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#healthy = false;
    clearInterval(this.#extendTimer);
    if (this.#buffer.length > 0) await this.release(this.#buffer.splice(0)).catch(() => {});
    if (this.#batch) this.#send(this.#batch);
    await Promise.all(this.#sending);
    this.#blocking.disconnect();
    for (const listener of this.#onClose) listener();
  }
}
