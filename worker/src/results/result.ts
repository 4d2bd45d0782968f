import type { SendOptions } from '../brokers/broker.ts';
import type { RecordedError } from '../errors.ts';
import type { JsonValue } from '../message/json.ts';

/** Celery's states. PENDING means "unknown": never seen, not yet started (without trackStarted), or expired. */
export type TaskState = 'PENDING' | 'STARTED' | 'RETRY' | 'SUCCESS' | 'FAILURE' | 'REVOKED';

export const READY_STATES: ReadonlySet<TaskState> = new Set(['SUCCESS', 'FAILURE', 'REVOKED']);

/** What the result backend keeps per task id. */
export interface ResultRecord {
  id: string;
  task: string;
  state: Exclude<TaskState, 'PENDING'>;
  result?: JsonValue;
  error?: RecordedError;
  /** Runs so far, this one included. */
  attempts: number;
  queue: string;
  worker?: string;
  startedAt?: number;
  finishedAt?: number;
  /** For RETRY: when the next attempt is due (epoch ms). */
  retryAt?: number;
  parentId?: string;
  rootId?: string;
}

/**
 * Where results live. Redis is the one implementation; the interface keeps runtime code neutral. A
 * producer's calls carry a `deadline` (see SendOptions); the worker's wait for Redis as long as it takes.
 */
export interface ResultBackend {
  store(record: ResultRecord, ttlMs: number): Promise<void>;
  get(id: string, options?: SendOptions): Promise<ResultRecord | undefined>;
  /**
   * Resolves with the record once it is in a ready state; undefined if `timeoutMs` passes first. A
   * `deadline` bounds subscribing and the first read, not the wait.
   */
  waitReady(id: string, timeoutMs: number, options?: SendOptions): Promise<ResultRecord | undefined>;
  forget(id: string, options?: SendOptions): Promise<void>;
  close(): Promise<void>;
}

/** @defaultValue one day, as Celery's result_expires. */
export const DEFAULT_RESULT_TTL_MS = 24 * 60 * 60 * 1000;
