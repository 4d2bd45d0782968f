import type { HistoryStore } from '../history/store.ts';
import type { ChordFailure, ChordRef } from '../message/canvas-spec.ts';
import type { DeadLetterReason, Envelope, InvalidMessageError } from '../message/envelope.ts';
import type { JsonValue } from '../message/json.ts';
import type { ScheduleStore } from '../schedule/store.ts';
import type { Deadline } from './deadline.ts';

/**
 * The broker-neutral contract. An adapter (brokers/redis, brokers/kafka) implements it without
 * exposing its client's types; test/conformance runs one suite against every adapter.
 *
 * Delivery is at-least-once: a delivery stays owned by its consumer until it is settled, and a
 * consumer that dies leaves its deliveries to be redelivered to another after the visibility timeout.
 */
export interface Broker {
  /** Sends messages: onto the queue now, or held until `eta` when it lies in the future. */
  publish(envelopes: readonly Envelope[], options?: SendOptions): Promise<void>;
  /** Opens a consumer of one queue. */
  consume(queue: string, options: ConsumerOptions): Promise<Consumer>;
  /** How much work a queue holds: what the operator scales on. */
  backlog(queue: string): Promise<Backlog>;
  /** Deletes every message of a queue that no worker holds (ready and delayed); returns how many. */
  purge(queue: string): Promise<number>;
  /** The oldest dead letters of a queue, up to `limit` (100). */
  deadLetters(queue: string, options?: { limit?: number }): Promise<DeadLetter[]>;
  /**
   * Puts dead letters back on their queue (all of them, or those with the given ids); returns how many.
   * It goes through the store a page at a time, and only through the letters there when it began (a
   * letter requeued and dead-lettered again meanwhile stays). `beforeEach` runs on each page before it
   * is requeued. A letter kept only as its head (`sha256` set) cannot run again and is left in place.
   */
  requeueDeadLetters(
    queue: string,
    ids?: readonly string[],
    options?: { beforeEach?: (letters: readonly DeadLetter[]) => Promise<void> },
  ): Promise<number>;
  /**
   * The broker's chords, on a broker that can record a member's result atomically with enqueueing the
   * callback (its definition declares `capabilities.chords`); undefined on one that cannot.
   */
  /**
   * Deletes dead letters (all of them without `ids`): the number deleted. Absent where the broker cannot
   * delete single records (Kafka).
   */
  deleteDeadLetters?(queue: string, ids?: readonly string[]): Promise<number>;
  readonly chords: Chords | undefined;
  /**
   * The task history workers keep on this broker (Redis: ConsumerOptions.history); undefined on a
   * broker that keeps none (Kafka).
   */
  readonly history: HistoryStore | undefined;
  /** Problems with the broker's configuration that can lose tasks, in words; empty when there are none. */
  warnings(): Promise<string[]>;
  close(): Promise<void>;
}

/**
 * How a producer's call is sent. With a `deadline` (the app's brokerTimeout), the adapter gives up when
 * it passes, or when the connection fails, with a BrokerUnavailableError that says whether anything may
 * have been sent — and sends nothing after giving up. Without one (the worker's own sends), it waits for
 * the broker as long as it takes.
 */
export interface SendOptions {
  deadline?: Deadline;
}

export interface ConsumerOptions {
  /** This consumer's name, unique in the fleet (worker id). */
  consumer: string;
  /**
   * How long a delivery may go without a sign of life from its consumer before another takes it.
   * Running deliveries are kept alive by the consumer itself, so this bounds recovery time after a
   * crash, not how long a task may run.
   * @defaultValue 30_000
   */
  visibilityTimeoutMs?: number;
  /**
   * A message delivered more than this many times (its consumers keep dying on it, or its outcome
   * keeps failing to be recorded) is dead-lettered as poison instead of being delivered again.
   * Counted across everything that puts the same call back: redelivery after the visibility timeout,
   * a release `counted`, a settlement that failed. Not counted: a release of a call that never started
   * (shutdown, rebalance); a retry starts its count afresh.
   * @defaultValue 5
   */
  maxDeliveries?: number;
  maxMessageBytes?: number;
  /**
   * Redis: the dead-letter stream is trimmed to about this many letters (`XADD … MAXLEN ~`), oldest
   * first. Kafka bounds its dead-letter topic by retention instead (docs/kafka.md).
   * @defaultValue 10_000
   */
  maxDeadLetters?: number;
  /**
   * Kafka: run calls that share a partition key one at a time, in the order they were sent. Unordered
   * by default (Celery's semantics). Redis ignores it.
   * @defaultValue false
   */
  ordered?: boolean;
  /**
   * The result backend is this broker's own store (Redis: the same server): settle() may then store
   * the result a settlement carries, atomically with the settlement (see Consumer.storesResults). A
   * broker that cannot ignores it.
   */
  storeResults?: boolean;
  /**
   * Keep the task history (Redis): every settlement that carries a history entry appends it to the
   * queue's history in the same call, within these bounds. A broker that cannot ignores it.
   */
  history?: HistoryLimits;
}

/** How much task history a queue keeps: whichever bound is reached first (docs/history.md). */
export interface HistoryLimits {
  /** Entries kept at most; the oldest go first. */
  readonly maxEntries: number;
  /** Entries older than this (ms) are removed as new ones are written. */
  readonly maxAgeMs: number;
  /** The most bytes one entry takes: its outcome, and the message it ran when that fits beside it. */
  readonly maxEntryBytes: number;
}

/** One message handed to a consumer. Settle it exactly once. */
export interface Delivery {
  /** The broker's handle on this delivery (opaque). */
  readonly receipt: string;
  /** The decoded envelope, or undefined when the message is invalid (see `problem`). */
  readonly envelope: Envelope | undefined;
  /** Why the message cannot run: it must be dead-lettered with this reason. */
  readonly problem: InvalidMessageError | undefined;
  /** The message as the broker holds it, for dead-lettering. */
  readonly raw: string;
  /**
   * How many times this message has been delivered, this time included: deliveries before a counted
   * release or a failed settlement included (see ConsumerOptions.maxDeliveries).
   */
  readonly deliveries: number;
  /** When the broker accepted the message (epoch ms): the start of its queue wait. */
  readonly enqueuedAt: number;
}

/** A call's result as a settlement carries it to a consumer that stores results (Consumer.storesResults). */
export interface SettledResult {
  /** The call's id. */
  readonly id: string;
  /** The result record, as JSON. */
  readonly json: string;
  /** How long it is kept, ms. */
  readonly ttlMs: number;
}

export type Settlement =
  /** Done: remove it. */
  (
    | { kind: 'ack' }
    /**
     * Acknowledge it and enqueue `envelope` (a retry, or the same message later) at `at` (epoch ms). The
     * enqueued message starts its delivery count afresh: it is a new attempt, or a call that did not run.
     */
    | { kind: 'requeue'; envelope: Envelope; at: number }
    /** Move it to the dead-letter store with the reason. */
    | { kind: 'dead-letter'; reason: DeadLetterReason; detail: string }
  ) & {
    /**
     * The call's result, stored with the settlement in one atomic write: only for a consumer whose
     * `storesResults` is true (the others are given none, and store it first through the backend).
     */
    result?: SettledResult;
    /**
     * The call's entry in the task history, written with the settlement: only for a consumer whose
     * `keepsHistory` is true (the others are given none).
     */
    history?: SettledHistory;
  };

/**
 * A history entry as a settlement carries it (Consumer.keepsHistory): the consumer writes it with the
 * message it settles, when that fits beside it (HistoryLimits.maxEntryBytes).
 */
export interface SettledHistory {
  /** The call's id. */
  readonly id: string;
  /** How the attempt ended (history/entry.ts, outcomeJson); absent: the settlement's `result` says. */
  readonly outcome?: string;
}

export interface Consumer {
  /**
   * Waits until at least one delivery is available and returns up to `max`, most urgent first; returns
   * an empty list if `signal` aborts first, and takes nothing then: what arrives as it aborts is kept
   * for the next call, or handed back when the consumer closes. Deliveries whose consumer died are
   * recovered here too.
   */
  receive(max: number, signal: AbortSignal): Promise<Delivery[]>;
  /**
   * Settles a delivery. When it fails, the delivery is dropped (see `drop`) before the error is thrown:
   * it is redelivered, counted, never held and kept alive forever.
   */
  settle(delivery: Delivery, settlement: Settlement): Promise<void>;
  /**
   * Hands unsettled deliveries back for immediate redelivery to any consumer. With `counted`, this
   * delivery counts toward maxDeliveries: the call ran here and its outcome was not recorded (a
   * recording that failed, a call abandoned at shutdown). Without it — calls handed back before they
   * started (shutdown, rebalance) — it does not.
   */
  release(deliveries: readonly Delivery[], options?: { counted?: boolean }): Promise<void>;
  /**
   * Gives up on a delivery that could not be settled: it is no longer kept alive, and is redelivered
   * (counted) after the visibility timeout, as if its consumer had died. Never throws.
   */
  drop(delivery: Delivery): void;
  /** True while connected and consuming. */
  readonly healthy: boolean;
  /**
   * settle() stores a settlement's `result` with it, atomically (opened with `storeResults` on a broker
   * that is also the result backend). Settlements made in the same tick then cost one round trip for
   * every result and acknowledgement together.
   */
  readonly storesResults?: boolean;
  /** settle() writes a settlement's `history` entry with it (opened with `history` on a Redis broker). */
  readonly keepsHistory?: boolean;
  /** Stops keeping deliveries alive and disconnects; unsettled deliveries are redelivered later. */
  close(): Promise<void>;
}

export interface Backlog {
  /** Messages waiting to be delivered now. */
  ready: number;
  /** Messages waiting for a future time (countdown, ETA, retry backoff). */
  delayed: number;
  /** Of the delayed, those already due (the promoter will move them within a moment). */
  due: number;
  /** Delivered and not yet settled. */
  inFlight: number;
  /** Messages ever added / ever delivered, for rates; undefined where the broker cannot tell. */
  added?: number;
  delivered?: number;
  /** Kafka: the topic's partitions, the most consumers that can share the queue's work. */
  partitions?: number;
  /** Dead letters kept; undefined where the broker cannot count them cheaply. */
  deadLetters?: number;
  /** When the oldest ready message was added (epoch ms, broker's clock); absent when none is ready or unknown. */
  oldestReadyAt?: number;
}

export interface DeadLetter {
  id: string;
  reason: DeadLetterReason;
  detail: string;
  /**
   * The message as it was received; for a message that can never run as it is (too large, malformed)
   * and is longer than DEAD_LETTER_HEAD_BYTES, only its head: then `sha256` is set.
   */
  raw: string;
  /** The size of the message as received, in bytes. */
  size: number;
  /** The SHA-256 (hex) of the whole message, when `raw` holds only its head. */
  sha256?: string;
  task?: string;
  taskId?: string;
  deliveries: number;
  at: number;
}

/** What a broker with chords does for them (Broker.chords). */
export interface Chords {
  /**
   * Opens a chord before its members are published: the state their results are recorded against,
   * and the callback message they complete. Opening a chord that exists already does nothing.
   */
  openChord(chord: ChordOpening, options?: SendOptions): Promise<void>;
  /**
   * Records a chord member's final outcome. The call that records the last missing result enqueues
   * the callback, atomically with the recording, so it is enqueued exactly once; the first failure
   * enqueues it to fail instead. A slot recorded already, or a chord that is over, changes nothing.
   */
  completeChordMember(slot: ChordRef, outcome: ChordMemberOutcome, ttlMs: number): Promise<ChordProgress>;
}

/** A chord to open: see Chords.openChord. */
export interface ChordOpening {
  /** The chord's id: its callback's task id. */
  id: string;
  /** How many member results it waits for. */
  size: number;
  /** The nesting of the results list when members are groups (see ChordSpec.shape); unset when flat. */
  shape?: string;
  /**
   * The callback call, with only its own arguments: the list of member results is put before them
   * when the chord completes. Its queue is where the chord's state lives.
   */
  callback: Envelope;
  /** How long the chord's state is kept (ms), renewed by each member's result. */
  ttlMs: number;
}

export type ChordMemberOutcome = { ok: true; value: JsonValue } | { ok: false; failure: ChordFailure };

/**
 * What recording a member did: `recorded` its result; `completed` the chord, enqueueing the callback;
 * `failed` the chord, enqueueing the callback to fail; `duplicate` nothing (its slot was filled
 * already, or the chord is over); `unknown` nothing (no such chord: never opened, or expired).
 */
export type ChordProgress = 'recorded' | 'completed' | 'failed' | 'duplicate' | 'unknown';

/** How the app opens a broker: the settings every adapter takes. */
export interface BrokerSettings {
  prefix: string;
  maxMessageBytes: number;
  /** About how many dead letters each queue keeps, on a broker that bounds them by count. */
  maxDeadLetters: number;
}

export interface BrokerDefinition {
  /** The broker's name in messages: "Redis". */
  readonly name: string;
  /** The URL schemes it takes, without the colon: `redis`, `rediss`. */
  readonly schemes: readonly string[];
  /** How its URLs look, for the error that lists what is supported: "a redis:// or rediss:// URL". */
  readonly usage: string;
  /**
   * What it can do beyond the Broker contract. `chords`: Broker.chords is there (member results
   * recorded atomically with enqueueing the callback). `resultBackend`: its URL may serve as the result
   * backend too (a CLI command given only --broker uses it for both). `schedules`: beat and the
   * operator can fire periodic tasks through it (each tick recorded and enqueued in one transaction).
   */
  readonly capabilities: { readonly chords: boolean; readonly resultBackend: boolean; readonly schedules: boolean };
  /**
   * Throws a ConfigError that says what to change when the URL, or a queue name under the prefix,
   * cannot be used; `from` names where the URL came from.
   */
  validate(url: string, from: string, names: { prefix: string; queue: string }): void;
  /** The broker as the worker, beat and CLI use it: its calls wait for the broker as long as it takes. */
  open(url: string, settings: BrokerSettings): Broker;
  /**
   * The broker as an application's calls use it: a connection that never holds a call back to send it
   * once the broker is back, so that a call that gave up is never sent. Absent when the worker's client
   * already behaves so, and the producer shares it.
   */
  openProducer?(url: string, settings: BrokerSettings): Broker;
  /**
   * One attempt to reach it (the worker's own connections would wait in silence), throwing an
   * UNREACHABLE TaskfleetError with the reason; `what` names its role ("the broker"), `setting` the
   * flag or variable that sets the URL.
   */
  assertReachable(url: string, where: { what: string; setting: string }): Promise<void>;
  /**
   * Whether an error (one link of a cause chain) is the broker refusing a message for what it is (too
   * large, invalid), which sending it again cannot change: the worker then fails or dead-letters the
   * call instead of handing it back. Absent: the broker has no such refusals beyond Taskfleet's own.
   */
  refusesForGood?(error: unknown): boolean;
  /**
   * The store periodic tasks fire through on this broker, with `broker` one it opened (present exactly
   * when `capabilities.schedules` is): each tick recorded and enqueued in one transaction.
   */
  scheduleStore?(broker: Broker, prefix: string): ScheduleStore;
}
