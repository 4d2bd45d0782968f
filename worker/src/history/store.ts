import type { HistoryEntry, HistoryState } from './entry.ts';

/** Which entries of a queue's history to list, newest first. Every filter given must match. */
export interface HistoryQuery {
  task?: string;
  state?: HistoryState;
  worker?: string;
  /** Only the calls of this workflow (their rootId: the first call's id, or the group's or chord's it starts with). */
  root?: string;
  /**
   * Written at or after this time (epoch ms, by Redis's clock: an entry is written as its call settles,
   * within moments of its `finishedAt`).
   */
  since?: number;
  /** Written before this time (epoch ms); with a `cursor`, the cursor decides where the page starts. */
  until?: number;
  /** Entries per page. @defaultValue 50 */
  limit?: number;
  /** Where the previous page stopped (its `next`). */
  cursor?: string;
  /**
   * The most entries one page looks through to fill itself: a rare filter over a long history then
   * answers in bounded time with fewer entries and a `next` to go on from. @defaultValue 20,000
   */
  scanLimit?: number;
}

export interface HistoryPage {
  entries: HistoryEntry[];
  /** Where to go on from, when older entries remain (pass it as `cursor`). */
  next?: string;
  /** Entries looked through for this page. */
  scanned: number;
}

/** A broker's task history (brokers/redis/history.ts), as Broker.history exposes it. */
export interface HistoryStore {
  /** The latest entry of a task on a queue: how its last attempt ended. */
  entry(queue: string, id: string): Promise<HistoryEntry | undefined>;
  /** A page of the queue's history, newest first. */
  list(queue: string, query?: HistoryQuery): Promise<HistoryPage>;
  /** How many entries the queue's history holds. */
  size(queue: string): Promise<number>;
}
