/**
 * The task history on Redis, per queue (keys.ts): a stream of entries, oldest first, written by
 * settle.lua as calls settle; a hash from each task id to its latest entry; and a list of the entries
 * in order, which trimming reads. All three are written and trimmed by the same script call, so they
 * stay within the history's bounds together.
 */
import { ConfigError } from '../../errors.ts';
import { entryFrom, type HistoryEntry, type HistoryState } from '../../history/entry.ts';
import type { HistoryPage, HistoryQuery, HistoryStore } from '../../history/store.ts';
import { assertQueueName } from '../../queue-name.ts';
import type { Redis } from './connection.ts';
import { queueKeys } from './keys.ts';

const STATES: ReadonlySet<string> = new Set<HistoryState>(['SUCCESS', 'FAILURE', 'RETRY', 'REVOKED']);
/** A stream entry id: where a page stopped. */
const CURSOR = /^\d{1,20}-\d{1,20}$/;
const MAX_LIMIT = 1000;

export class RedisHistory implements HistoryStore {
  readonly #redis: Redis;
  readonly #prefix: string;

  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
  }

  async entry(queue: string, id: string): Promise<HistoryEntry | undefined> {
    const keys = this.#keys(queue);
    const at = await this.#redis.hget(keys.historyIndex, id);
    if (at === null) return undefined;
    const [found] = (await this.#redis.xrange(keys.history, at, at)) as [string, string[]][];
    return found ? entryFrom(found[1]) : undefined;
  }

  async list(queue: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    const keys = this.#keys(queue);
    const limit = wholeNumber('limit', query.limit ?? 50, MAX_LIMIT);
    const scanLimit = wholeNumber('scanLimit', query.scanLimit ?? 20_000, Number.MAX_SAFE_INTEGER);
    if (query.state !== undefined && !STATES.has(query.state)) {
      throw new ConfigError(`state must be one of ${[...STATES].join(', ')}, not ${JSON.stringify(query.state)}`);
    }
    if (query.cursor !== undefined && !CURSOR.test(query.cursor)) {
      throw new ConfigError(
        `cursor must be a page's next (such as 1733000000000-0), not ${JSON.stringify(query.cursor)}`,
      );
    }
    const since = query.since === undefined ? undefined : wholeNumber('since', query.since, Number.MAX_SAFE_INTEGER, 0);
    const until = query.until === undefined ? undefined : wholeNumber('until', query.until, Number.MAX_SAFE_INTEGER, 0);
    const start = since === undefined ? '-' : String(since);
    // An end of `(<ms>` alone would mean `(<ms>-<max>`: entries of that very millisecond would pass.
    let end = query.cursor !== undefined ? `(${query.cursor}` : until === undefined ? '+' : `(${until}-0`;
    const likely = prefilter(query);
    // Unfiltered, every entry read is kept: read a page. Filtered, read more at a time.
    const filtered =
      query.task !== undefined || query.state !== undefined || query.worker !== undefined || query.root !== undefined;
    const entries: HistoryEntry[] = [];
    let scanned = 0;
    let last: string | undefined;
    let exhausted = false;
    while (entries.length < limit && scanned < scanLimit) {
      const count = Math.min(filtered ? Math.max(4 * limit, 500) : limit - entries.length, scanLimit - scanned);
      const chunk = (await this.#redis.xrevrange(keys.history, end, start, 'COUNT', count)) as [string, string[]][];
      for (const [id, fields] of chunk) {
        scanned++;
        last = id;
        // The filters are on how the call ended: its outcome (`o`) is all a non-match needs reading.
        const outcome = fields[fields.indexOf('o') + 1];
        if (outcome === undefined || !likely(outcome)) continue;
        const entry = entryFrom(fields);
        if (entry !== undefined && matches(entry, query)) {
          entries.push(entry);
          if (entries.length === limit) break;
        }
      }
      if (chunk.length < count) {
        // The range ends here: nothing is left unless this page filled up before the chunk's end.
        exhausted = chunk.length === 0 || last === chunk[chunk.length - 1]?.[0];
        break;
      }
      end = `(${last}`;
    }
    return { entries, scanned, ...(!exhausted && last !== undefined ? { next: last } : {}) };
  }

  async size(queue: string): Promise<number> {
    return this.#redis.xlen(this.#keys(queue).history);
  }

  #keys(queue: string) {
    assertQueueName(queue);
    return queueKeys(this.#prefix, queue);
  }
}

function wholeNumber(name: string, value: number, max: number, min = 1): number {
  if (!(Number.isSafeInteger(value) && value >= min && value <= max)) {
    throw new ConfigError(`${name} must be a whole number from ${min} to ${max.toLocaleString('en')}, not ${value}`);
  }
  return value;
}

/** A cheap test on an entry's JSON that every match passes (most others fail), before parsing it. */
function prefilter(query: HistoryQuery): (json: string) => boolean {
  const needles = [
    query.task !== undefined ? `"task":${JSON.stringify(query.task)}` : undefined,
    query.state !== undefined ? `"state":${JSON.stringify(query.state)}` : undefined,
    query.worker !== undefined ? `"worker":${JSON.stringify(query.worker)}` : undefined,
  ].filter((n): n is string => n !== undefined);
  return (json) => needles.every((n) => json.includes(n));
}

function matches(entry: HistoryEntry, query: HistoryQuery): boolean {
  return (
    (query.task === undefined || entry.task === query.task) &&
    (query.state === undefined || entry.state === query.state) &&
    (query.worker === undefined || entry.worker === query.worker) &&
    (query.root === undefined || entry.rootId === query.root)
  );
}
