/**
 * What the Kafka benchmark's parent and its consumer children say to each other, and what a contender
 * module provides. The parent passes a ChildConfig as the child's one argument (JSON); the child
 * answers with one JSON message per line on stdout, its logs going to stderr.
 */
export { now } from '../support/protocol.ts';

export const CONTENDERS = ['ours', 'bare-kafkajs', 'bare-platformatic'] as const;
export type ContenderName = (typeof CONTENDERS)[number];

/** Every topic the bench drains has this many partitions, as the issue sets. */
export const PARTITIONS = 12;

/**
 * How much one fetch may bring, for both bare loops: kafkajs's defaults. @platformatic/kafka's own
 * (50 MiB, per partition too) would fetch a whole 100,000-task topic at once, so its loop would measure
 * its fetch size and pay for it in memory, not the client's work per record.
 */
export const FETCH_MAX_BYTES = 10 * 2 ** 20;
export const FETCH_MAX_BYTES_PER_PARTITION = 2 ** 20;

/**
 * drain: consume and commit `tasks` records already on the topic, as fast as possible.
 * baseline: load no contender, report the process's memory and exit (the harness in every figure).
 */
export type Mode = 'drain' | 'baseline';

export interface ChildConfig {
  contender: ContenderName;
  mode: Mode;
  /** Bootstrap addresses, host:port. */
  brokers: string[];
  /** Our queue name; the bare loops use it as the topic name. */
  queue: string;
  topic: string;
  groupId: string;
  tasks: number;
  /** ours only: the worker's concurrency. */
  concurrency: number;
}

export type ChildMessage =
  | { type: 'baseline'; rss: number }
  | {
      type: 'done';
      /** Epoch ms: right before the consumer was started (connect, join, first fetch all come after). */
      started: number;
      /** First and last completion (consumed and committed), epoch ms. */
      first: number;
      last: number;
      count: number;
      failures: number;
      /** CPU time (user + system) the process used from `started` to the last completion, µs. */
      cpuMicros: number;
      rssPeak: number;
    };

/** What a contender's consumer tells the child as records go through. */
export interface ConsumerHooks {
  /** A record is done: decoded and its offset committed (ours: its outcome counted once settled). */
  completed(ok: boolean): void;
}

/** A contender's consumer, running: call the result to stop it. */
export type StartConsumer = (config: ChildConfig, hooks: ConsumerHooks) => Promise<() => Promise<void>>;

/** A contender's producer, in the parent. */
export interface Producer {
  /** Sends `count` tasks in batches of `chunk`, one batch at a time, each acknowledged by the broker. */
  bulk(count: number, chunk: number): Promise<void>;
  close(): Promise<void>;
}

/** A contender module (bench/kafka/<name>.ts). */
export interface Contender {
  /** The topic a queue's tasks go to: the bench creates it, with PARTITIONS partitions, before sending. */
  topicFor(queue: string): string;
  /** The consumer group the contender commits in: the bench reads its offsets to check the drain. */
  groupFor(queue: string): string;
  producer(brokers: string[], queue: string): Producer;
  startConsumer: StartConsumer;
}
