import type { Admin, EachBatchPayload, Kafka, Consumer as KafkaJsConsumer, KafkaMessage } from 'kafkajs';
import { ConfigError } from '../../errors.ts';
import { type DeadLetterReason, decodeEnvelope, type Envelope, InvalidMessageError } from '../../message/envelope.ts';
import type { Consumer, ConsumerOptions, Delivery, Settlement } from '../broker.ts';
import { poison } from '../dead-letter.ts';
import { type MemberClaim, type Partitions, stickyAssigner } from './assigner.ts';
import type { QueueTopics } from './config.ts';
import { PartitionLedger } from './ledger.ts';
import { committedFor, type GroupOffsets, headersOf } from './records.ts';
import { retrying } from './retry.ts';

/** Record headers Taskfleet writes. A record without `task` was not sent by Taskfleet. */
export const HEADER = {
  task: 'task',
  id: 'id',
  notBefore: 'not-before',
  /** On a purge marker: every record before it in its partition is purged (see KafkaBroker.purge). */
  purge: 'purge',
} as const;

/** What a consumer needs from its broker: sending retries and dead letters goes through the broker's producer. */
export interface ConsumerHost {
  kafka: Kafka;
  admin(): Promise<Admin>;
  /** Sends an envelope to its queue's topics: now, or held in the delay topic until `at`. */
  send(envelope: Envelope, at: number): Promise<void>;
  deadLetter(delivery: KafkaDelivery, reason: DeadLetterReason, detail: string): Promise<void>;
}

export interface KafkaConsumerOptions extends ConsumerOptions {
  maxMessageBytes: number;
}

/** Records fetched and not yet handed out, across partitions, above which fetching pauses. */
const BUFFER_HIGH = 2000;
/** Delayed records held in memory per delay partition, above which that partition pauses. */
const DELAYED_HIGH = 10_000;
/** How often a commit that failed (a rebalance under way) is tried again. */
const FLUSH_EVERY_MS = 1000;
/** Commits in the background at most this often: each is a write to Kafka's offsets log. */
const COMMIT_EVERY_MS = 10;

/** A partition this consumer owns in the current generation. */
interface Owned {
  topic: string;
  partition: number;
  ledger: PartitionLedger;
  /** Fetched, due, not handed out: in offset order. */
  ready: KafkaDelivery[];
  /** From the delay topic, not due yet: a min-heap on notBefore. */
  delayed: KafkaDelivery[];
  /** Handed out and unsettled. */
  inFlight: number;
  /** Keys of records handed out and unsettled, for ordered consumption. */
  busyKeys: Map<string, number>;
  paused: boolean;
}

export class KafkaDelivery implements Delivery {
  readonly receipt: string;
  readonly envelope: Envelope | undefined;
  problem: InvalidMessageError | undefined;
  readonly raw: string;
  deliveries = 0;
  /** Handed out and not yet settled, released or dropped: what makes ending a hand-out happen once. */
  out = false;
  /** Dropped (its settlement failed) and waiting with the delayed records to be handed out again. */
  dropped = false;
  readonly enqueuedAt: number;
  readonly owner: Owned;
  readonly offset: number;
  readonly key: string | undefined;
  /** Not handed out before this time (epoch ms): its `not-before` header, or a redelivery's delay (see drop). */
  notBefore: number;
  readonly headers: Record<string, string>;

  constructor(owner: Owned, message: KafkaMessage, maxBytes: number) {
    this.owner = owner;
    this.offset = Number(message.offset);
    this.receipt = `${owner.topic}/${owner.partition}/${message.offset}`;
    this.raw = message.value?.toString('utf8') ?? '';
    this.key = message.key?.toString('utf8');
    this.headers = headersOf(message.headers);
    this.notBefore = Number(this.headers[HEADER.notBefore] ?? 0) || 0;
    // Held in the delay topic until due: its wait in the queue starts then.
    this.enqueuedAt = Math.max(Number(message.timestamp), this.notBefore);
    let envelope: Envelope | undefined;
    let problem: InvalidMessageError | undefined;
    const task = this.headers[HEADER.task];
    try {
      if (task === undefined) {
        throw new InvalidMessageError(
          'malformed',
          `the record has no '${HEADER.task}' header: it was not sent by Taskfleet (send tasks with the SDK, or add the header)`,
        );
      }
      envelope = decodeEnvelope(this.raw, maxBytes);
      if (envelope.task !== task) {
        throw new InvalidMessageError(
          'malformed',
          `the '${HEADER.task}' header says ${task} but the message says ${envelope.task}`,
        );
      }
    } catch (error) {
      envelope = undefined;
      problem = error instanceof InvalidMessageError ? error : new InvalidMessageError('malformed', String(error));
    }
    this.envelope = envelope;
    this.problem = problem;
  }
}

/**
 * Consumes a queue's topic and delay topic in the queue's consumer group. Records are fetched into a
 * bounded buffer and handed out without regard to partition order (Celery's semantics), or, when
 * `ordered`, one at a time per key; each partition's ledger commits its lowest unfinished offset. See
 * docs/kafka.md for the guarantees and how rebalances are handled.
 */
export class KafkaConsumer implements Consumer {
  readonly #host: ConsumerHost;
  readonly #topics: QueueTopics;
  readonly #options: KafkaConsumerOptions;
  readonly #maxDeliveries: number;
  readonly #ordered: boolean;
  readonly #session: number;
  readonly #consumer: KafkaJsConsumer;
  readonly #owned = new Map<string, Owned>();
  /** The group's commits as read for the current assignment, per topic (see #load). */
  readonly #committed = new Map<string, Promise<GroupOffsets>>();
  #assignment: Partitions = {};
  #buffered = 0;
  #pausedForBuffer = false;
  #wake: (() => void) | undefined;
  #flushRunning: Promise<void> | undefined;
  #flushQueued: Promise<void> | undefined;
  #flushTimer: NodeJS.Timeout | undefined;
  #commitTimer: NodeJS.Timeout | undefined;
  #healthy = false;
  #closed = false;
  #rr = 0;
  /** Commits kafkajs reports having made (see #flush). */
  #commitsMade = 0;
  readonly #onClose: (() => void)[] = [];

  constructor(host: ConsumerHost, topics: QueueTopics, options: KafkaConsumerOptions) {
    this.#host = host;
    this.#topics = topics;
    this.#options = options;
    this.#maxDeliveries = options.maxDeliveries ?? 5;
    this.#ordered = options.ordered ?? false;
    const session = options.visibilityTimeoutMs ?? 30_000;
    this.#session = session;
    // kafkajs heartbeats between fetches: a fetch may wait no longer than the heartbeat interval.
    const heartbeat = Math.max(100, Math.min(1000, Math.floor(session / 3)));
    this.#consumer = host.kafka.consumer({
      groupId: topics.group,
      // The visibility timeout is Kafka's session timeout: a consumer silent that long is out of the
      // group, and its partitions (with what it held) go to the others.
      sessionTimeout: session,
      heartbeatInterval: heartbeat,
      rebalanceTimeout: Math.max(60_000, session),
      maxWaitTimeInMs: heartbeat,
      allowAutoTopicCreation: false,
      partitionAssigners: [stickyAssigner(() => this.#claim())],
      retry: { retries: 10, restartOnFailure: async () => !this.#closed },
    });
    const { GROUP_JOIN, CRASH, DISCONNECT, REBALANCING, STOP, COMMIT_OFFSETS } = this.#consumer.events;
    this.#consumer.on(COMMIT_OFFSETS, () => {
      this.#commitsMade++;
    });
    this.#consumer.on(GROUP_JOIN, ({ payload }) => this.#assigned(payload.memberAssignment));
    this.#consumer.on(REBALANCING, () => void this.flush());
    for (const event of [CRASH, DISCONNECT, STOP]) {
      this.#consumer.on(event, () => {
        this.#healthy = false;
      });
    }
    // A crashed consumer (the brokers away, say) rejoins as if new, and its partitions may go to others
    // meanwhile: what it fetched and has not handed out is no longer its to hand out. Running it anyway
    // would only run it twice.
    this.#consumer.on(CRASH, () => this.#disown());
  }

  get healthy(): boolean {
    return this.#healthy && !this.#closed;
  }

  onClose(listener: () => void): void {
    this.#onClose.push(listener);
  }

  /** Joins the group; resolves once this consumer has its first assignment. */
  async start(): Promise<void> {
    // kafkajs's run() returns before the group is joined: wait for the first assignment, or for the
    // crash that says why there will be none (a session timeout the brokers refuse, say).
    const joined = Promise.withResolvers<void>();
    const { GROUP_JOIN, CRASH } = this.#consumer.events;
    const offJoin = this.#consumer.on(GROUP_JOIN, () => joined.resolve());
    const offCrash = this.#consumer.on(CRASH, ({ payload }) => {
      if (!payload.restart || (payload.error as { type?: string }).type === 'INVALID_SESSION_TIMEOUT') {
        joined.reject(payload.error);
      }
    });
    try {
      await this.#consumer.connect();
      await this.#consumer.subscribe({ topics: [this.#topics.main, this.#topics.delay], fromBeginning: true });
      await this.#consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: false,
        eachBatch: (payload) => this.#onBatch(payload),
      });
      await joined.promise;
    } catch (error) {
      if ((error as { type?: string }).type === 'INVALID_SESSION_TIMEOUT') {
        throw new ConfigError(
          `Kafka refused the session timeout of ${this.#session} ms: the visibility timeout (--visibility-timeout, TASKFLEET_VISIBILITY_TIMEOUT) must lie within the brokers' group.min.session.timeout.ms and group.max.session.timeout.ms (6 s and 30 min by default)`,
        );
      }
      throw error;
    } finally {
      offJoin();
      offCrash();
    }
    this.#healthy = true;
    this.#flushTimer = setInterval(() => {
      if ([...this.#owned.values()].some((o) => o.ledger.dirty)) void this.flush();
    }, FLUSH_EVERY_MS);
    this.#flushTimer.unref();
  }

  /** What this member tells the group when it joins: keep my partitions, above all those with tasks running. */
  #claim(): MemberClaim {
    const busy: Partitions = {};
    for (const o of this.#owned.values()) if (o.inFlight > 0) busy[o.topic] = [...(busy[o.topic] ?? []), o.partition];
    return { owned: this.#assignment, busy };
  }

  /** Forgets every partition: buffers dropped, ledgers reloaded from Kafka when assigned again. */
  #disown(): void {
    for (const owned of this.#owned.values()) this.#buffered -= owned.ready.length + owned.delayed.length;
    this.#owned.clear();
    this.#committed.clear();
    this.#assignment = {};
    this.#pausedForBuffer = false;
  }

  #assigned(assignment: Partitions): void {
    this.#assignment = assignment;
    this.#committed.clear();
    this.#healthy = true;
    for (const [key, owned] of this.#owned) {
      if (!(assignment[owned.topic] ?? []).includes(owned.partition)) {
        // Another consumer owns it now and starts from the committed offset: drop what was fetched.
        // Deliveries handed out still run; their settlement no longer commits (see #finish).
        this.#buffered -= owned.ready.length + owned.delayed.length;
        this.#owned.delete(key);
        // kafkajs keeps a pause through rebalances: were the partition to come back, no batch would
        // ever arrive to load it, and its records would wait forever.
        if (owned.paused) this.#fetching('resume', [owned]);
      }
    }
    // A consumer kafkajs restarted after a crash fetches every partition: pause again what is paused here.
    const paused = [...this.#owned.values()].filter((o) => o.paused);
    if (paused.length > 0) this.#fetching('pause', paused);
    this.#wakeUp();
  }

  async #onBatch({ batch, resolveOffset }: EachBatchPayload): Promise<void> {
    const { topic, partition } = batch;
    if (this.#closed || !(this.#assignment[topic] ?? []).includes(partition)) return;
    const owned = this.#owned.get(`${topic}:${partition}`) ?? (await this.#load(topic, partition));
    if (this.#owned.get(`${topic}:${partition}`) !== owned) return; // revoked while loading
    const now = Date.now();
    for (const message of batch.messages) {
      if (!owned.ledger.take(Number(message.offset))) continue;
      if (message.headers?.[HEADER.purge] !== undefined) {
        this.#purged(owned, Number(message.offset));
        continue;
      }
      const delivery = new KafkaDelivery(owned, message, this.#options.maxMessageBytes);
      if (delivery.notBefore > now) heapPush(owned.delayed, delivery);
      else owned.ready.push(delivery);
      this.#buffered++;
    }
    if (batch.messages.length > 0) resolveOffset(batch.lastOffset());
    if (owned.delayed.length > DELAYED_HIGH) this.#pause([owned]);
    if (this.#buffered > BUFFER_HIGH && !this.#pausedForBuffer) {
      this.#pausedForBuffer = true;
      this.#pause([...this.#owned.values()]);
    }
    this.#wakeUp();
  }

  /** A purge marker: what this consumer fetched before it and has not handed out is dropped. */
  #purged(owned: Owned, marker: number): void {
    const keep = (d: KafkaDelivery) => {
      if (d.offset > marker) return true;
      owned.ledger.finish(d.offset);
      this.#buffered--;
      return false;
    };
    owned.ready = owned.ready.filter(keep);
    const delayed = owned.delayed.filter(keep);
    owned.delayed = [];
    for (const d of delayed) heapPush(owned.delayed, d);
    owned.ledger.finish(marker);
    void this.flush();
  }

  /** A partition newly owned: its ledger starts from the group's committed offset and metadata. */
  async #load(topic: string, partition: number): Promise<Owned> {
    const admin = await this.#host.admin();
    // One request per topic and assignment, not one per partition: a join hands out many at once. What it
    // reads cannot change meanwhile, since the partitions' previous owners are fenced by the new generation.
    let committed = this.#committed.get(topic);
    if (!committed) {
      committed = retrying(() => admin.fetchOffsets({ groupId: this.#topics.group, topics: [topic] }));
      this.#committed.set(topic, committed);
      committed.catch(() => this.#committed.delete(topic));
    }
    const { offset, metadata } = committedFor(await committed, topic, partition);
    const key = `${topic}:${partition}`;
    const existing = this.#owned.get(key);
    if (existing) return existing;
    const owned: Owned = {
      topic,
      partition,
      ledger: new PartitionLedger(offset, metadata),
      ready: [],
      delayed: [],
      inFlight: 0,
      busyKeys: new Map(),
      paused: false,
    };
    if ((this.#assignment[topic] ?? []).includes(partition)) this.#owned.set(key, owned);
    return owned;
  }

  #pause(partitions: Owned[]): void {
    const chosen = partitions.filter((o) => !o.paused);
    for (const o of chosen) o.paused = true;
    if (chosen.length > 0) this.#fetching('pause', chosen);
  }

  /**
   * Pauses or resumes fetching. Between a crash and its restart (a broker restart, say) kafkajs has no
   * consumer group and throws; the restarted one fetches everything until #assigned pauses it again.
   */
  #fetching(action: 'pause' | 'resume', partitions: Owned[]): void {
    try {
      this.#consumer[action](partitions.map((o) => ({ topic: o.topic, partitions: [o.partition] })));
    } catch {}
  }

  #resumeIfRoom(): void {
    const resume: Owned[] = [];
    if (this.#pausedForBuffer && this.#buffered < BUFFER_HIGH / 2) this.#pausedForBuffer = false;
    for (const o of this.#owned.values()) {
      if (o.paused && !this.#pausedForBuffer && o.delayed.length <= DELAYED_HIGH / 2) {
        o.paused = false;
        resume.push(o);
      }
    }
    if (resume.length > 0) this.#fetching('resume', resume);
  }

  async receive(max: number, signal: AbortSignal): Promise<Delivery[]> {
    while (!signal.aborted && !this.#closed) {
      const taken = this.#take(max);
      if (taken.length > 0) {
        // The hand-out counts are committed within moments: a consumer that dies running them leaves
        // counts the next owner reads, so a record that kills its consumers is caught.
        this.#commitSoon();
        return taken;
      }
      await this.#waitForWork(signal);
    }
    return [];
  }

  /** Takes up to `max` ready records, one partition after another in turn. */
  #take(max: number): KafkaDelivery[] {
    const now = Date.now();
    const owned = [...this.#owned.values()];
    for (const o of owned) {
      while (o.delayed.length > 0 && (o.delayed[0] as KafkaDelivery).notBefore <= now) {
        o.ready.push(heapPop(o.delayed) as KafkaDelivery);
      }
    }
    const taken: KafkaDelivery[] = [];
    let progress = true;
    while (taken.length < max && progress) {
      progress = false;
      for (let i = 0; i < owned.length && taken.length < max; i++) {
        const o = owned[(this.#rr + i) % owned.length] as Owned;
        const index = this.#ordered ? o.ready.findIndex((d) => !d.key || !o.busyKeys.has(d.key)) : 0;
        const delivery = index >= 0 ? o.ready[index] : undefined;
        if (!delivery) continue;
        o.ready.splice(index, 1);
        this.#buffered--;
        this.#handOut(delivery);
        taken.push(delivery);
        progress = true;
      }
      this.#rr++;
    }
    if (taken.length > 0) this.#resumeIfRoom();
    return taken;
  }

  #handOut(d: KafkaDelivery): void {
    d.deliveries = d.owner.ledger.handOut(d.offset);
    d.dropped = false;
    this.#takeOut(d);
    if (!d.problem && d.deliveries > this.#maxDeliveries) d.problem = poison(d.deliveries, this.#maxDeliveries);
  }

  /** Counts a delivery as out with its consumer (the ledger counts deliveries, see #handOut). */
  #takeOut(d: KafkaDelivery): void {
    const o = d.owner;
    d.out = true;
    o.inFlight++;
    if (d.key) o.busyKeys.set(d.key, (o.busyKeys.get(d.key) ?? 0) + 1);
  }

  /** Waits for new records, a delayed record coming due, a settlement (ordered mode), or the signal. */
  async #waitForWork(signal: AbortSignal): Promise<void> {
    let nextDue = Number.POSITIVE_INFINITY;
    for (const o of this.#owned.values()) if (o.delayed[0]) nextDue = Math.min(nextDue, o.delayed[0].notBefore);
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#wake = resolve;
    const timer = setTimeout(resolve, Math.max(1, Math.min(1000, nextDue - Date.now())));
    signal.addEventListener('abort', () => resolve(), { once: true });
    await promise;
    clearTimeout(timer);
    if (this.#wake === resolve) this.#wake = undefined;
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async settle(delivery: Delivery, settlement: Settlement): Promise<void> {
    const d = delivery as KafkaDelivery;
    try {
      if (settlement.kind === 'requeue') await this.#host.send(settlement.envelope, settlement.at);
      else if (settlement.kind === 'dead-letter') await this.#host.deadLetter(d, settlement.reason, settlement.detail);
    } catch (error) {
      this.drop(d);
      throw error;
    }
    // Settled after all, once its first settlement failed (a worker that then records FAILURE, say): it
    // is no longer waiting to be redelivered.
    if (d.dropped) this.#undrop(d);
    // An acknowledgement is the ledger's: Kafka learns of it with the next commit, moments later.
    // Were this consumer to die first, its partition's next owner would run the call again.
    this.#release(d, (ledger) => ledger.finish(d.offset));
    this.#commitSoon();
  }

  async release(deliveries: readonly Delivery[], { counted = false }: { counted?: boolean } = {}): Promise<void> {
    for (const delivery of [...deliveries].reverse()) {
      const d = delivery as KafkaDelivery;
      // Back to the head of its partition's line: the next receive (here, or the partition's next
      // owner, from the committed offset) gets it first. A counted release keeps the hand-out in the
      // ledger, so the next hand-out counts one more delivery.
      if (this.#release(d, (ledger) => (counted ? undefined : ledger.giveBack(d.offset)))) {
        d.owner.ready.unshift(d);
        this.#buffered++;
      }
    }
    await this.flush();
  }

  /**
   * As on Redis, a delivery that could not be settled is redelivered once the visibility timeout has
   * passed, counted: its hand-out stays in the ledger, and it waits with the delayed records until then.
   */
  drop(delivery: Delivery): void {
    const d = delivery as KafkaDelivery;
    if (!this.#release(d, () => {})) return; // ended already, or the partition moved: its new owner redelivers it
    d.notBefore = Date.now() + this.#session;
    d.dropped = true;
    heapPush(d.owner.delayed, d);
    this.#buffered++;
    this.#commitSoon();
  }

  /** Takes a dropped delivery back from the delayed records, as out again, to be settled now. */
  #undrop(d: KafkaDelivery): void {
    const o = d.owner;
    d.dropped = false;
    if (this.#owned.get(`${o.topic}:${o.partition}`) !== o || !o.delayed.includes(d)) return;
    const rest = o.delayed.filter((x) => x !== d);
    o.delayed = [];
    for (const x of rest) heapPush(o.delayed, x);
    this.#buffered--;
    this.#takeOut(d);
  }

  /** Ends a hand-out; false when the partition is no longer this consumer's (its new owner redelivers). */
  #release(d: KafkaDelivery, update: (ledger: PartitionLedger) => void): boolean {
    if (!d.out) return false; // ended already: settled, released or dropped
    d.out = false;
    const o = d.owner;
    o.inFlight--;
    if (d.key) {
      const n = (o.busyKeys.get(d.key) ?? 1) - 1;
      if (n > 0) o.busyKeys.set(d.key, n);
      else o.busyKeys.delete(d.key);
    }
    if (this.#owned.get(`${o.topic}:${o.partition}`) !== o) return false;
    update(o.ledger);
    if (this.#ordered) this.#wakeUp();
    return true;
  }

  /** Schedules a commit of what changed, at most one per COMMIT_EVERY_MS. */
  #commitSoon(): void {
    this.#commitTimer ??= setTimeout(() => {
      this.#commitTimer = undefined;
      void this.flush();
    }, COMMIT_EVERY_MS);
  }

  /**
   * Commits every changed ledger in one request. Calls made while a commit runs share the next one,
   * so a burst of settlements costs one round trip. A commit refused because a rebalance is under
   * way is retried by the timer; one for a partition given away is dropped with its ledger.
   */
  flush(): Promise<void> {
    this.#flushQueued ??= (async () => {
      await this.#flushRunning;
      this.#flushQueued = undefined;
      const changed = [...this.#owned.values()].filter((o) => o.ledger.dirty).map((o) => ({ o, ...o.ledger.commit() }));
      if (changed.length === 0) return;
      const made = this.#commitsMade;
      this.#flushRunning = this.#consumer
        .commitOffsets(
          changed.map(({ o, offset, metadata }) => ({
            topic: o.topic,
            partition: o.partition,
            offset: String(offset),
            metadata,
          })),
        )
        .then(
          () => {
            // While kafkajs restarts a crashed consumer, commitOffsets resolves without sending anything:
            // only a commit it reports having made counts, or the ledger would think Kafka up to date.
            if (this.#commitsMade === made) return;
            for (const { o, version } of changed) o.ledger.committed(version);
          },
          () => {},
        );
      await this.#flushRunning;
    })();
    return this.#flushQueued;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#healthy = false;
    clearInterval(this.#flushTimer);
    clearTimeout(this.#commitTimer);
    this.#wakeUp();
    // Fetched records not handed out are simply not committed: the partition's next owner reads them.
    await this.flush();
    await this.#consumer.disconnect().catch(() => {});
    for (const listener of this.#onClose) listener();
  }
}

function heapPush(heap: KafkaDelivery[], d: KafkaDelivery): void {
  heap.push(d);
  let i = heap.length - 1;
  while (i > 0) {
    const parent = (i - 1) >> 1;
    if ((heap[parent] as KafkaDelivery).notBefore <= d.notBefore) break;
    heap[i] = heap[parent] as KafkaDelivery;
    i = parent;
  }
  heap[i] = d;
}

function heapPop(heap: KafkaDelivery[]): KafkaDelivery | undefined {
  const top = heap[0];
  const last = heap.pop();
  if (heap.length === 0 || last === undefined) return top;
  let i = 0;
  for (;;) {
    const l = 2 * i + 1;
    const r = l + 1;
    let smallest = i;
    const at = (k: number) => (k === i ? last : (heap[k] as KafkaDelivery)).notBefore;
    if (l < heap.length && at(l) < at(smallest)) smallest = l;
    if (r < heap.length && at(r) < at(smallest)) smallest = r;
    if (smallest === i) break;
    heap[i] = heap[smallest] as KafkaDelivery;
    i = smallest;
  }
  heap[i] = last;
  return top;
}
