import { randomUUID } from 'node:crypto';
import {
  type Admin,
  type ITopicConfig,
  Kafka,
  type KafkaConfig,
  logLevel,
  type Message,
  type Producer,
  type SASLOptions,
} from 'kafkajs';
import { BrokerUnavailableError, TaskfleetError } from '../../errors.ts';
import {
  DEFAULT_MAX_MESSAGE_BYTES,
  type DeadLetterReason,
  type Envelope,
  encodeEnvelope,
} from '../../message/envelope.ts';
import type { Backlog, Broker, Consumer, ConsumerOptions, DeadLetter, SendOptions } from '../broker.ts';
import { boundedDetail, deadLetterCopy } from '../dead-letter.ts';
import {
  describeKafka,
  type KafkaBrokerOptions,
  kafkaOptionsFromUrl,
  type QueueTopics,
  queueTopics,
} from './config.ts';
import { HEADER, KafkaConsumer, type KafkaDelivery } from './consumer.ts';
import { decodeLedgerMetadata, partitionProgress } from './ledger.ts';
import { committedFor, headersOf } from './records.ts';
import { retrying } from './retry.ts';

/** Dead-letter record headers, beside the original's `task` and `id`. */
const DEAD = {
  reason: 'dead-reason',
  detail: 'dead-detail',
  deliveries: 'dead-deliveries',
  at: 'dead-at',
  source: 'dead-source',
  /** The message's size in bytes. */
  size: 'dead-size',
  /** The whole message's SHA-256, when the record holds only its head. */
  sha256: 'dead-sha256',
  /** On a marker record: the offsets of dead letters requeued. */
  requeued: 'requeued',
} as const;

/**
 * How the dead-letter topic is bounded, set when Taskfleet creates it: Kafka deletes whole segments,
 * oldest first, once they are older than the retention time or the partition is over the retention
 * size, so it holds at most about DEAD_RETENTION_BYTES + one segment, for at most DEAD_RETENTION_MS
 * (+ one segment's time, DEAD_SEGMENT_MS).
 */
export const DEAD_RETENTION_MS = 14 * 24 * 3600 * 1000;
export const DEAD_RETENTION_BYTES = 256 * 1024 * 1024;
export const DEAD_SEGMENT_BYTES = 16 * 1024 * 1024;
export const DEAD_SEGMENT_MS = 24 * 3600 * 1000;

/** Dead letters requeued per send: bounds what one step holds in memory. */
const REQUEUE_PAGE = 100;

interface TopicRecord {
  offset: string;
  value: string;
  headers: Record<string, string>;
  timestamp: string;
}

/**
 * Kafka as a broker. Per queue: a topic for tasks due now, a delay topic for later ones (countdown,
 * ETA, retry backoff; held by the consumers until due), and a one-partition dead-letter topic, all
 * named `<prefix>.<queue>[.delay|.dead]` and created on first use; one consumer group per queue.
 * Results, revoke and inspect live in the Redis result backend. See docs/kafka.md.
 */
export class KafkaBroker implements Broker {
  /** None: Kafka cannot record a member's result in one transaction with enqueueing the callback. */
  readonly chords = undefined;
  /** Kafka keeps no task history (docs/history.md). */
  readonly history = undefined;
  readonly options: KafkaBrokerOptions;
  readonly prefix: string;
  readonly maxMessageBytes: number;
  readonly partitions: number;
  readonly #kafka: Kafka;
  #admin: Promise<Admin> | undefined;
  #producer: Promise<Producer> | undefined;
  readonly #topics = new Map<string, Promise<QueueTopics>>();
  readonly #consumers = new Set<KafkaConsumer>();

  /** From a `kafka://` / `kafkas://` URL (credentials from the environment; see config.ts) or options. */
  constructor(target: string | KafkaBrokerOptions, overrides: Partial<KafkaBrokerOptions> = {}) {
    this.options = { ...(typeof target === 'string' ? kafkaOptionsFromUrl(target) : target), ...overrides };
    this.prefix = this.options.prefix ?? 'tf';
    this.maxMessageBytes = this.options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    this.partitions = this.options.partitions ?? 12;
    const { brokers, tls, sasl } = this.options;
    const config: KafkaConfig = {
      clientId: 'taskfleet',
      brokers,
      logLevel: logLevel.NOTHING,
      connectionTimeout: this.options.connectionTimeoutMs ?? 3000,
      ...(this.options.requestTimeoutMs !== undefined ? { requestTimeout: this.options.requestTimeoutMs } : {}),
      retry: { initialRetryTime: 100, maxRetryTime: 2000, retries: this.options.retries ?? 8 },
    };
    if (tls) config.ssl = tls === true ? true : { ...tls };
    // kafkajs's own names for the mechanisms; the password is never logged (logLevel NOTHING, describeKafka).
    if (sasl)
      config.sasl = { mechanism: sasl.mechanism, username: sasl.username, password: sasl.password } as SASLOptions;
    this.#kafka = new Kafka(config);
  }

  /** Where this broker connects, as it may be logged. */
  get url(): string {
    return describeKafka(this.options);
  }

  admin(): Promise<Admin> {
    this.#admin ??= (async () => {
      const admin = this.#kafka.admin();
      try {
        await admin.connect();
      } catch (error) {
        this.#admin = undefined;
        throw unreachable(this.url, error);
      }
      return admin;
    })();
    return this.#admin;
  }

  #producerClient(): Promise<Producer> {
    this.#producer ??= (async () => {
      // Not kafkajs's idempotent producer: it fails sends with OUT_OF_ORDER_SEQUENCE_NUMBER after a retry
      // (its sequence numbers go wrong when a request is re-partitioned). Retries that could store a call
      // twice are avoided instead by sending only to topics whose partitions take writes (#ensureTopics).
      const producer = this.#kafka.producer({ allowAutoTopicCreation: false });
      try {
        await producer.connect();
      } catch (error) {
        this.#producer = undefined;
        throw unreachable(this.url, error);
      }
      return producer;
    })();
    return this.#producer;
  }

  /** The queue's topics, created on first use when missing (a clear error when that is not allowed). */
  topics(queue: string): Promise<QueueTopics> {
    let topics = this.#topics.get(queue);
    if (!topics) {
      topics = this.#ensureTopics(queueTopics(this.prefix, queue));
      this.#topics.set(queue, topics);
      topics.catch(() => this.#topics.delete(queue));
    }
    return topics;
  }

  async #ensureTopics(topics: QueueTopics): Promise<QueueTopics> {
    await this.#createTopics(topics);
    // A new topic's leaders show in the metadata a moment before the broker serves them; a send then
    // gets NOT_LEADER for some partitions and kafkajs resends the whole batch, storing twice the calls
    // that had landed. ListOffsets answers NOT_LEADER alike: the topics are ready once it answers.
    const admin = await this.admin();
    for (const topic of [topics.main, topics.delay, topics.dead])
      await retrying(() => admin.fetchTopicOffsets(topic), 30_000);
    return topics;
  }

  async #createTopics(topics: QueueTopics): Promise<void> {
    const admin = await this.admin();
    const existing = new Set(await admin.listTopics());
    // A dead letter is at most a message with its headers (the detail is bounded): the topic must take it
    // even when the cluster's default record limit is lower than maxMessageBytes.
    const deadRecordBytes = Math.max(1_048_588, this.maxMessageBytes + 64 * 1024);
    const wanted: ITopicConfig[] = [
      { topic: topics.main, numPartitions: this.partitions },
      { topic: topics.delay, numPartitions: this.partitions },
      {
        topic: topics.dead,
        numPartitions: 1,
        configEntries: [
          { name: 'cleanup.policy', value: 'delete' },
          { name: 'retention.ms', value: String(DEAD_RETENTION_MS) },
          { name: 'retention.bytes', value: String(DEAD_RETENTION_BYTES) },
          { name: 'segment.bytes', value: String(DEAD_SEGMENT_BYTES) },
          { name: 'segment.ms', value: String(DEAD_SEGMENT_MS) },
          { name: 'max.message.bytes', value: String(deadRecordBytes) },
        ],
      },
    ]
      .filter((t) => !existing.has(t.topic))
      .map((t) => (this.options.replicationFactor ? { ...t, replicationFactor: this.options.replicationFactor } : t));
    if (wanted.length === 0) return;
    try {
      await admin.createTopics({ topics: wanted, waitForLeaders: true });
    } catch (error) {
      // Another worker may have created them meanwhile: only a topic still missing is a problem.
      const now = new Set(await admin.listTopics());
      const missing = wanted.filter((t) => !now.has(t.topic));
      if (missing.length > 0) {
        const list = missing
          .map((t) => `${t.topic} (${t.numPartitions} partition${t.numPartitions === 1 ? '' : 's'})`)
          .join(', ');
        throw new TaskfleetError(
          'KAFKA_TOPIC',
          `Kafka topic${missing.length > 1 ? 's' : ''} ${list} ${missing.length > 1 ? 'do' : 'does'} not exist and could not be created (${detailOf(error)}): create ${missing.length > 1 ? 'them' : 'it'}, e.g. kafka-topics.sh --bootstrap-server ${this.options.brokers[0]} --create --topic ${missing[0]?.topic} --partitions ${missing[0]?.numPartitions}, or let Taskfleet's user create topics`,
          { cause: error },
        );
      }
    }
  }

  async publish(envelopes: readonly Envelope[], { deadline }: SendOptions = {}): Promise<void> {
    if (envelopes.length === 0) return;
    const prepare = async () => {
      const now = Date.now();
      const byTopic = new Map<string, Message[]>();
      let topics: QueueTopics | undefined;
      for (const envelope of envelopes) {
        if (topics?.queue !== envelope.queue) topics = await this.topics(envelope.queue);
        const at = envelope.eta ?? 0;
        const [topic, message] = this.#record(topics, envelope, at > now ? at : undefined);
        const list = byTopic.get(topic);
        if (list) list.push(message);
        else byTopic.set(topic, [message]);
      }
      return { byTopic, producer: await this.#producerClient() };
    };
    const send = ({ byTopic, producer }: Awaited<ReturnType<typeof prepare>>) =>
      producer.sendBatch({ topicMessages: [...byTopic].map(([topic, messages]) => ({ topic, messages })), acks: -1 });
    if (!deadline) {
      await send(await prepare());
      return;
    }
    // Until the batch is handed to kafkajs nothing is sent; once it is, kafkajs retries it on its own,
    // and a call that gave up may still be stored: the error says which.
    let prepared: Awaited<ReturnType<typeof prepare>>;
    try {
      prepared = await deadline.race(prepare(), () => deadline.unavailable({ maybeSent: false, timedOut: true }));
    } catch (error) {
      if ((error as TaskfleetError).code !== 'UNREACHABLE') throw error;
      throw deadline.unavailable(
        { maybeSent: false, timedOut: false },
        detailOf((error as Error).cause ?? error),
        error,
      );
    }
    try {
      await deadline.race(send(prepared), () =>
        deadline.unavailable(
          { maybeSent: true, timedOut: true },
          'the Kafka client may still deliver it as it retries',
        ),
      );
    } catch (error) {
      if (error instanceof BrokerUnavailableError || !CONNECTION_FAILURE.test(detailOf(error))) throw error;
      throw deadline.unavailable({ maybeSent: true, timedOut: false }, detailOf(error), error);
    }
  }

  #record(topics: QueueTopics, envelope: Envelope, notBefore: number | undefined): [string, Message] {
    const headers: Record<string, string> = { [HEADER.task]: envelope.task, [HEADER.id]: envelope.id };
    if (notBefore !== undefined) headers[HEADER.notBefore] = String(notBefore);
    return [
      notBefore === undefined ? topics.main : topics.delay,
      // Without a key of its own a call may go to any partition (kafkajs spreads them): hashing its
      // id would cost time and buy nothing.
      {
        ...(envelope.key !== undefined ? { key: envelope.key } : {}),
        value: encodeEnvelope(envelope, this.maxMessageBytes),
        headers,
      },
    ];
  }

  /** Sends one envelope now, or to the delay topic when `at` lies ahead (retries, hand-backs). */
  async send(envelope: Envelope, at: number): Promise<void> {
    const [topic, message] = this.#record(
      await this.topics(envelope.queue),
      envelope,
      at > Date.now() ? at : undefined,
    );
    await (await this.#producerClient()).send({ topic, messages: [message], acks: -1 });
  }

  /** Joins the queue's group; while the brokers are unreachable it keeps trying, as warnings() does. */
  consume(queue: string, options: ConsumerOptions): Promise<Consumer> {
    return this.#whileUnreachable(async () => {
      const topics = await this.topics(queue).catch((error: unknown) => {
        throw unreachable(this.url, error);
      });
      const consumer = new KafkaConsumer(
        {
          kafka: this.#kafka,
          admin: () => this.admin(),
          send: (envelope, at) => this.send(envelope, at),
          deadLetter: (delivery, reason, detail) => this.#deadLetter(topics, delivery, reason, detail),
        },
        topics,
        { maxMessageBytes: this.maxMessageBytes, ...options },
      );
      try {
        await consumer.start();
      } catch (error) {
        await consumer.close();
        throw unreachable(this.url, error);
      }
      this.#consumers.add(consumer);
      consumer.onClose(() => this.#consumers.delete(consumer));
      return consumer;
    });
  }

  async #deadLetter(topics: QueueTopics, d: KafkaDelivery, reason: DeadLetterReason, detail: string): Promise<void> {
    const copy = deadLetterCopy(d.raw, reason);
    const headers: Record<string, string> = {
      // The original's headers, each bounded: a record's headers are untrusted input too.
      ...Object.fromEntries(Object.entries(d.headers).map(([name, value]) => [name, boundedDetail(value)])),
      [DEAD.reason]: reason,
      [DEAD.detail]: boundedDetail(detail),
      [DEAD.deliveries]: String(d.deliveries),
      [DEAD.at]: String(Date.now()),
      [DEAD.source]: d.receipt,
      [DEAD.size]: String(copy.size),
      ...(copy.sha256 ? { [DEAD.sha256]: copy.sha256 } : {}),
    };
    delete headers[HEADER.notBefore];
    const producer = await this.#producerClient();
    await producer.send({
      topic: topics.dead,
      messages: [{ key: d.key ?? null, value: copy.text, headers }],
      acks: -1,
    });
  }

  /**
   * Lag per partition from the group's committed offsets and the ledgers' metadata (see ledger.ts). A
   * group that never committed reads from the earliest retained record, so its lag is all of them.
   */
  async backlog(queue: string): Promise<Backlog> {
    const topics = queueTopics(this.prefix, queue);
    // This process's own consumers commit in the background: what they settled counts as settled.
    await Promise.all([...this.#consumers].map((c) => c.flush()));
    const admin = await this.admin();
    const existing = new Set(await admin.listTopics());
    const backlog: Backlog = { ready: 0, delayed: 0, due: 0, inFlight: 0, added: 0, delivered: 0 };
    if (!existing.has(topics.main)) return backlog; // nothing sent yet: no topic, no work
    const [main, delay, committed] = await Promise.all([
      admin.fetchTopicOffsets(topics.main),
      existing.has(topics.delay) ? admin.fetchTopicOffsets(topics.delay) : Promise.resolve([]),
      retrying(() =>
        admin.fetchOffsets({
          groupId: topics.group,
          topics: [topics.main, topics.delay].filter((t) => existing.has(t)),
        }),
      ),
    ]);
    backlog.partitions = main.length;
    for (const [topic, offsets] of [
      [topics.main, main],
      [topics.delay, delay],
    ] as const) {
      for (const { partition, high, low } of offsets) {
        const { offset, metadata } = committedFor(committed, topic, partition);
        const progress = partitionProgress(offset, metadata, Number(low), Number(high));
        if (topic === topics.main) backlog.ready += progress.waiting;
        else backlog.delayed += progress.waiting;
        backlog.inFlight += progress.handed;
        backlog.added = (backlog.added ?? 0) + Number(high);
        backlog.delivered = (backlog.delivered ?? 0) + progress.taken;
      }
    }
    return backlog;
  }

  /**
   * Deletes every record no worker holds: those never fetched (Kafka's delete-records below the end of
   * each partition) and those fetched but not handed out, which the consumers drop when they read the
   * purge marker written after them. It returns once the consumers have read their markers (5 s at most).
   */
  async purge(queue: string): Promise<number> {
    const topics = queueTopics(this.prefix, queue);
    const admin = await this.admin();
    const existing = new Set(await admin.listTopics());
    const names = [topics.main, topics.delay].filter((t) => existing.has(t));
    if (names.length === 0) return 0;
    const [committed, groups] = await Promise.all([
      retrying(() => admin.fetchOffsets({ groupId: topics.group, topics: names })),
      retrying(() => admin.describeGroups([topics.group])),
    ]);
    const consumers = groups.groups[0]?.members.length ?? 0;
    const producer = await this.#producerClient();
    let purged = 0;
    const markers: { topic: string; partition: number; offset: number }[] = [];
    for (const topic of names) {
      const cut: { partition: number; offset: string }[] = [];
      for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) {
        const { offset, metadata } = committedFor(committed, topic, partition);
        const count = (end: number) => partitionProgress(offset, metadata, Number(low), end).waiting;
        if (count(Number(high)) === 0) continue;
        if (consumers === 0) {
          purged += count(Number(high));
          cut.push({ partition, offset: high });
          continue;
        }
        // Everything before the marker goes, what producers sent since the reading above included.
        const [sent] = await producer.send({
          topic,
          acks: -1,
          messages: [{ partition, value: '', headers: { [HEADER.purge]: '1' } }],
        });
        const marker = Number(sent?.baseOffset ?? high);
        purged += count(marker);
        markers.push({ topic, partition, offset: marker });
        cut.push({ partition, offset: String(marker) });
      }
      if (cut.length > 0) await admin.deleteTopicRecords({ topic, partitions: cut });
    }
    await this.#markersRead(topics.group, markers);
    return purged;
  }

  /** Waits until the group has finished every marker (committed past it, or listed it finished). */
  async #markersRead(groupId: string, markers: { topic: string; partition: number; offset: number }[]): Promise<void> {
    const admin = await this.admin();
    const deadline = Date.now() + 5000;
    let waiting = markers;
    while (waiting.length > 0 && Date.now() < deadline) {
      const topics = [...new Set(waiting.map((m) => m.topic))];
      const committed = await retrying(() => admin.fetchOffsets({ groupId, topics }));
      waiting = waiting.filter((m) => {
        const { offset, metadata } = committedFor(committed, m.topic, m.partition);
        return !((offset ?? -1) > m.offset || decodeLedgerMetadata(metadata).done.includes(m.offset));
      });
      if (waiting.length > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  async deadLetters(queue: string, { limit = 100 }: { limit?: number } = {}): Promise<DeadLetter[]> {
    const letters: DeadLetter[] = [];
    await this.#eachLiveDeadLetter(queue, (letter) => {
      letters.push(letter);
      return letters.length < limit;
    });
    return letters;
  }

  /**
   * Sends dead letters back to their queue, a page at a time. Kafka cannot delete single records, so
   * a marker record in the dead-letter topic says which were requeued; listings leave those out.
   */
  async requeueDeadLetters(
    queue: string,
    ids?: readonly string[],
    { beforeEach }: { beforeEach?: (letters: readonly DeadLetter[]) => Promise<void> } = {},
  ): Promise<number> {
    const wanted = ids ? new Set(ids) : undefined;
    const topics = await this.topics(queue);
    const producer = await this.#producerClient();
    let page: DeadLetter[] = [];
    let requeued = 0;
    const send = async () => {
      if (page.length === 0) return;
      const letters = page;
      page = [];
      await beforeEach?.(letters);
      await producer.send({
        topic: topics.main,
        acks: -1,
        messages: letters.map((l) => ({
          key: l.taskId ?? null,
          value: l.raw,
          headers: {
            ...(l.task ? { [HEADER.task]: l.task } : {}),
            ...(l.taskId ? { [HEADER.id]: l.taskId } : {}),
          },
        })),
      });
      await producer.send({
        topic: topics.dead,
        acks: -1,
        messages: [{ value: '', headers: { [DEAD.requeued]: letters.map((l) => l.id).join(',') } }],
      });
      requeued += letters.length;
    };
    await this.#eachLiveDeadLetter(queue, async (letter) => {
      // A letter kept only as its head would be dead-lettered again at once: it stays where it is.
      if ((wanted && !wanted.has(letter.id)) || letter.sha256) return true;
      page.push(letter);
      if (page.length >= REQUEUE_PAGE) await send();
      return true;
    });
    await send();
    return requeued;
  }

  /**
   * Visits the dead letters not requeued, oldest first, until `visit` returns false. Two passes over
   * the topic: the requeue markers (ids only) first, since a marker comes after the letters it names;
   * then the letters, one at a time, so memory holds a page, never the whole topic.
   */
  async #eachLiveDeadLetter(queue: string, visit: (letter: DeadLetter) => Promise<boolean> | boolean): Promise<void> {
    const topics = queueTopics(this.prefix, queue);
    const admin = await this.admin();
    if (!(await admin.listTopics()).includes(topics.dead)) return;
    const requeued = new Set<string>();
    await this.#scanTopic(topics.dead, topics.group, (r) => {
      for (const id of (r.headers[DEAD.requeued] ?? '').split(',')) if (id) requeued.add(id);
      return true;
    });
    await this.#scanTopic(topics.dead, topics.group, (r) => {
      if (r.headers[DEAD.requeued] !== undefined || requeued.has(r.offset)) return true;
      const task = r.headers[HEADER.task];
      const taskId = r.headers[HEADER.id];
      const sha256 = r.headers[DEAD.sha256];
      return visit({
        id: r.offset,
        reason: (r.headers[DEAD.reason] ?? 'malformed') as DeadLetterReason,
        detail: r.headers[DEAD.detail] ?? '',
        raw: r.value,
        size: r.headers[DEAD.size] !== undefined ? Number(r.headers[DEAD.size]) : Buffer.byteLength(r.value),
        ...(sha256 ? { sha256 } : {}),
        ...(task ? { task } : {}),
        ...(taskId ? { taskId } : {}),
        deliveries: Number(r.headers[DEAD.deliveries] ?? 0),
        at: Number(r.headers[DEAD.at] ?? r.timestamp),
      });
    });
  }

  /**
   * Reads the records a topic holds now, in offset order per partition, with a short-lived group of its
   * own (removed after), until the end or until `visit` returns false. Each record is visited before the
   * next is read.
   */
  async #scanTopic(
    topic: string,
    groupPrefix: string,
    visit: (record: TopicRecord) => Promise<boolean> | boolean,
  ): Promise<void> {
    const admin = await this.admin();
    const ends = new Map<number, number>();
    for (const { partition, high, low } of await admin.fetchTopicOffsets(topic)) {
      if (Number(high) > Number(low)) ends.set(partition, Number(high));
    }
    if (ends.size === 0) return;
    const groupId = `${groupPrefix}.reader.${randomUUID()}`;
    const reader = this.#kafka.consumer({ groupId, maxWaitTimeInMs: 100, allowAutoTopicCreation: false });
    try {
      await reader.connect();
      await reader.subscribe({ topics: [topic], fromBeginning: true });
      const { promise, resolve, reject } = Promise.withResolvers<void>();
      reader.on(reader.events.CRASH, ({ payload }) => reject(payload.error));
      // A bound on a stall, not on the whole read: a long topic with work on each page may take longer.
      let timer: NodeJS.Timeout | undefined;
      const arm = () => {
        clearTimeout(timer);
        timer = setTimeout(() => reject(new Error(`reading ${topic}: no record for 30 s`)), 30_000);
      };
      arm();
      let stopped = false;
      await reader.run({
        eachMessage: async ({ partition, message }) => {
          arm();
          const end = ends.get(partition);
          if (end === undefined || stopped) return;
          if (Number(message.offset) < end) {
            const record = {
              offset: message.offset,
              value: message.value?.toString('utf8') ?? '',
              headers: headersOf(message.headers),
              timestamp: message.timestamp,
            };
            if (!(await visit(record))) {
              stopped = true;
              resolve();
              return;
            }
          }
          if (Number(message.offset) >= end - 1) ends.delete(partition);
          if (ends.size === 0) resolve();
        },
      });
      await promise.finally(() => clearTimeout(timer));
    } finally {
      await reader.disconnect().catch(() => {});
      await admin.deleteGroups([groupId]).catch(() => {});
    }
  }

  /**
   * A worker's first call: it waits for as long as the brokers are unreachable (a pod may start before
   * Kafka does), as the Redis connection does. Credentials refused are not worth waiting for.
   */
  async warnings(): Promise<string[]> {
    await this.#whileUnreachable(() => this.admin());
    return [];
  }

  /** Runs `call` again, backing off, for as long as it fails because the brokers cannot be reached. */
  async #whileUnreachable<T>(call: () => Promise<T>): Promise<T> {
    for (let wait = 200; ; wait = Math.min(2000, wait * 2)) {
      try {
        return await call();
      } catch (error) {
        if ((error as TaskfleetError).code !== 'UNREACHABLE') throw error;
        await new Promise((resolve) => setTimeout(resolve, wait));
      }
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.#consumers].map((c) => c.close()));
    const [producer, admin] = [this.#producer, this.#admin];
    this.#producer = undefined;
    this.#admin = undefined;
    await Promise.all([
      producer?.then((p) => p.disconnect()).catch(() => {}),
      admin?.then((a) => a.disconnect()).catch(() => {}),
    ]);
  }
}

function detailOf(error: unknown): string {
  // kafkajs gathers per-topic failures in an aggregate whose own message says only that there were some.
  const inner = (error as { errors?: unknown[] }).errors;
  if (Array.isArray(inner) && inner.length > 0) return [...new Set(inner.map(detailOf))].join('; ');
  return error instanceof Error ? error.message : String(error);
}

/** kafkajs' words for a connection that failed. Not any "timeout": "the session timeout is not within the range…" is a setting, not the network. */
const CONNECTION_FAILURE =
  /Connection (error|timeout)|connect |ECONNREFUSED|ENOTFOUND|ETIMEDOUT|Closed connection|Request timed out/i;

/** A connection failure, naming the brokers tried. */
function unreachable(url: string, error: unknown): Error {
  if (error instanceof TaskfleetError) return error;
  const message = detailOf(error);
  if (CONNECTION_FAILURE.test(message)) {
    return new TaskfleetError(
      'UNREACHABLE',
      `cannot reach the Kafka brokers at ${url} (${message}): is Kafka running there? Check the broker URL (--broker, TASKFLEET_BROKER).`,
      { cause: error },
    );
  }
  if (/SASL|authentication/i.test(message)) {
    return new TaskfleetError(
      'KAFKA_AUTH',
      `Kafka at ${url} refused the credentials (${message}): check TASKFLEET_KAFKA_USERNAME, TASKFLEET_KAFKA_PASSWORD and the SASL mechanism.`,
      { cause: error },
    );
  }
  return error instanceof Error ? error : new Error(message);
}
