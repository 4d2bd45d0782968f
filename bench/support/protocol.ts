/**
 * What the benchmark's parent and its consumer children say to each other. The parent passes a
 * ChildConfig as the child's one argument (JSON); the child answers with one JSON message per line on
 * stdout. Its logs go to stderr, so stdout carries nothing else.
 */

/** A wall clock in epoch ms with microsecond resolution, shared by every process on the machine. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export type ContenderName = 'ours' | 'bullmq' | 'bare';

/**
 * drain: consume `tasks` calls already enqueued, as fast as possible.
 * share: one of several workers draining the same queue: load the contender, report ready, start
 * consuming on the parent's `go` (a line on stdin), report progress (its count so far) every
 * PROGRESS_MS, and report done on the parent's `report`, once the workers' counts add up to the tasks.
 * latency: start on an empty queue, report ready, then time each call from its enqueue to its start.
 * baseline: load no contender, report ready and exit: the memory of the harness itself (Node, and
 * the TypeScript it strips), which every contender's figure includes.
 */
export type Mode = 'drain' | 'share' | 'latency' | 'baseline';

/** How often a worker in share mode reports its count. */
export const PROGRESS_MS = 50;

/** What the parent writes to a child's stdin, one per line (share mode). */
export type ParentCommand = 'go' | 'report';

export interface ChildConfig {
  contender: ContenderName;
  mode: Mode;
  host: string;
  port: number;
  queue: string;
  tasks: number;
  concurrency: number;
  /** ours only: the task's ignoreResult. */
  ignoreResult: boolean;
  /** ours only: keep the task history (off by default). */
  history?: boolean;
  /** drain only: write a CPU profile of the drain (first completion to last) to this file. */
  profile?: string;
}

export type ChildMessage =
  | { type: 'ready'; rssIdle: number }
  | { type: 'progress'; count: number }
  | {
      type: 'done';
      /** First and last completion (drain, share) or start (latency), epoch ms. */
      first: number;
      last: number;
      count: number;
      failures: number;
      /** CPU time (user + system) the process used from the first completion to the last, µs. */
      cpuMicros: number;
      rssPeak: number;
      /** latency: ms from enqueue to start, one per call. */
      latencies: number[];
    };

/** What a contender's consumer tells the child as calls go through. */
export interface ConsumerHooks {
  /** The handler began, with the call's argument (in latency mode, when it was enqueued). */
  started(arg: number): void;
  /** The outcome is recorded and the message acknowledged. */
  completed(ok: boolean): void;
}

/** A contender's consumer, running: close it to stop. */
export type StartConsumer = (config: ChildConfig, hooks: ConsumerHooks) => Promise<() => Promise<void>>;

/** A contender's producer, in the parent. Every call carries one number, its argument. */
export interface Producer {
  /** Enqueues `count` calls in chunks of `chunk`, one chunk at a time. */
  bulk(count: number, chunk: number): Promise<void>;
  /** Enqueues one call. */
  one(arg: number): Promise<void>;
  close(): Promise<void>;
}
