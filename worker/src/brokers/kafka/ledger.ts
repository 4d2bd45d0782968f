/**
 * What one consumer knows about one partition it owns: which records it has taken, handed out and
 * finished. Kafka keeps one number per partition and group, the committed offset; the ledger commits
 * the lowest unfinished offset, so nothing is skipped, and keeps what lies above it in the commit's
 * metadata string, so that whoever owns the partition next
 * - skips the records finished above the committed offset (few are repeated), and
 * - counts deliveries of the records handed out and never finished (a record whose consumers keep
 *   dying on it is dead-lettered as poison, as on Redis).
 *
 * The metadata is `k:<ranges>;d:<ranges>`: `k` the records handed out and unfinished, each range with
 * `*n` when delivered n > 1 times, `d` the records finished. Offsets are JavaScript numbers: exact
 * up to 2^53, far beyond any partition's life.
 */

/** Kafka's default `offset.metadata.max.bytes` is 4096; stay well under it. */
export const MAX_METADATA_CHARS = 3000;

export class PartitionLedger {
  /** Records taken from the partition and not finished, in offset order (finished ones leave from the head). */
  readonly #open: number[] = [];
  #head = 0;
  /** Finished records at or above the commit point. */
  readonly #done = new Set<number>();
  /** Deliveries so far of records handed out and not finished (this owner's and earlier owners'). */
  readonly #handed = new Map<number, number>();
  /** The next offset this ledger has not taken yet. */
  #next: number;
  /** Bumped by every change; a commit records the version it wrote. */
  #version = 0;
  #committedVersion = 0;

  /**
   * @param committed the group's committed offset; undefined when it has never committed, in which
   * case the first record taken sets the start (consumers read from the earliest retained record).
   */
  constructor(committed: number | undefined, metadata?: string | null) {
    this.#next = committed ?? 0;
    const prior = decodeLedgerMetadata(metadata);
    for (const offset of prior.done) if (offset >= this.#next) this.#done.add(offset);
    for (const [offset, count] of prior.handed) if (offset >= this.#next) this.#handed.set(offset, count);
  }

  /**
   * Takes a fetched record. Returns false when it is not to be delivered: taken already (a re-fetch after a
   * rebalance this consumer kept the partition through) or finished by an earlier owner.
   */
  take(offset: number): boolean {
    if (offset < this.#next) return false;
    this.#next = offset + 1;
    if (this.#done.has(offset)) {
      this.#version++; // with nothing open below it, the commit point moves past it
      return false;
    }
    this.#open.push(offset);
    return true;
  }

  /** Records a hand-out; returns how many times the record has now been delivered. */
  handOut(offset: number): number {
    const count = (this.#handed.get(offset) ?? 0) + 1;
    this.#handed.set(offset, count);
    this.#version++;
    return count;
  }

  /** A hand-out undone: the record was given back without running. */
  giveBack(offset: number): void {
    const count = (this.#handed.get(offset) ?? 1) - 1;
    if (count > 0) this.#handed.set(offset, count);
    else this.#handed.delete(offset);
    this.#version++;
  }

  finish(offset: number): void {
    this.#handed.delete(offset);
    this.#done.add(offset);
    this.#version++;
    // The commit point moves past every finished record at the head.
    while (this.#head < this.#open.length && this.#done.has(this.#open[this.#head] as number)) this.#head++;
    if (this.#head > 1024 && this.#head * 2 > this.#open.length) {
      this.#open.splice(0, this.#head);
      this.#head = 0;
    }
  }

  /** The offset to commit: the lowest unfinished record taken, or the next to take. */
  get commitOffset(): number {
    return this.#head < this.#open.length ? (this.#open[this.#head] as number) : this.#next;
  }

  /** True when something changed since the last commit that succeeded. */
  get dirty(): boolean {
    return this.#version !== this.#committedVersion;
  }

  /** The offset and metadata to commit now; call `committed(version)` once Kafka has them. */
  commit(): { offset: number; metadata: string; version: number } {
    const offset = this.commitOffset;
    for (const o of this.#done) if (o < offset) this.#done.delete(o);
    return { offset, metadata: encodeLedgerMetadata(this.#handed, this.#done, offset), version: this.#version };
  }

  committed(version: number): void {
    if (version > this.#committedVersion) this.#committedVersion = version;
  }
}

export interface LedgerMetadata {
  handed: Map<number, number>;
  done: number[];
}

/** Reads the metadata a ledger committed; anything unreadable (another client's) counts as nothing. */
export function decodeLedgerMetadata(metadata: string | null | undefined): LedgerMetadata {
  const result: LedgerMetadata = { handed: new Map(), done: [] };
  if (!metadata) return result;
  for (const part of metadata.split(';')) {
    const [kind, ranges] = [part.slice(0, 2), part.slice(2)];
    if ((kind !== 'k:' && kind !== 'd:') || !ranges) continue;
    for (const range of ranges.split(',')) {
      const match = /^(\d+)(?:-(\d+))?(?:\*(\d+))?$/.exec(range);
      if (!match) return { handed: new Map(), done: [] };
      const start = Number(match[1]);
      const end = match[2] === undefined ? start : Number(match[2]);
      const count = match[3] === undefined ? 1 : Number(match[3]);
      if (end < start || end - start > 1_000_000) return { handed: new Map(), done: [] };
      for (let o = start; o <= end; o++) {
        if (kind === 'k:') result.handed.set(o, count);
        else result.done.push(o);
      }
    }
  }
  return result;
}

/**
 * Writes the metadata, at most MAX_METADATA_CHARS long. When it would be longer, the finished records
 * furthest from the commit point are left out first (after a crash they would run again), then the
 * delivery counts (a poison record would take longer to be caught).
 */
export function encodeLedgerMetadata(
  handed: ReadonlyMap<number, number>,
  done: Iterable<number>,
  from: number,
): string {
  const k = ranges(
    [...handed].filter(([o]) => o >= from).sort((a, b) => a[0] - b[0]),
    (count) => (count > 1 ? `*${count}` : ''),
  );
  const d = ranges(
    [...done]
      .filter((o) => o >= from)
      .sort((a, b) => a - b)
      .map((o) => [o, 1] as [number, number]),
    () => '',
  );
  let text = `k:${k.join(',')};d:${d.join(',')}`;
  while (text.length > MAX_METADATA_CHARS && d.length > 0) {
    d.length = Math.floor(d.length / 2);
    text = `k:${k.join(',')};d:${d.join(',')}`;
  }
  while (text.length > MAX_METADATA_CHARS && k.length > 0) {
    k.length = Math.floor(k.length / 2);
    text = `k:${k.join(',')};d:`;
  }
  return text;
}

/** Runs of consecutive offsets with the same count, as `a-b` or `a`, each with its count's suffix. */
function ranges(sorted: [number, number][], suffix: (count: number) => string): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < sorted.length) {
    const [start, count] = sorted[i] as [number, number];
    let end = start;
    while (i + 1 < sorted.length && sorted[i + 1]?.[0] === end + 1 && sorted[i + 1]?.[1] === count) {
      end++;
      i++;
    }
    out.push(`${end === start ? start : `${start}-${end}`}${suffix(count)}`);
    i++;
  }
  return out;
}

/**
 * What a committed offset and its metadata say about a partition, for the backlog: records waiting
 * (never delivered, or given back), handed out and unfinished, and taken in all.
 */
export function partitionProgress(
  committed: number | undefined,
  metadata: string | null | undefined,
  low: number,
  high: number,
): { waiting: number; handed: number; taken: number } {
  // A group that never committed reads from the earliest retained record (see docs/kafka.md). After a
  // purge the group's position may lie below the earliest record: what it holds is still in flight.
  const from = committed ?? low;
  const start = Math.max(from, low);
  const { handed, done } = decodeLedgerMetadata(metadata);
  const handedCount = [...handed.keys()].filter((o) => o >= from && o < high).length;
  const handedAbove = [...handed.keys()].filter((o) => o >= start && o < high).length;
  const finished = done.filter((o) => o >= start && o < high).length;
  return {
    waiting: Math.max(0, high - start - handedAbove - finished),
    handed: handedCount,
    // Only grows (while the partition is not purged): the records ever taken out of waiting.
    taken: start + handedAbove + finished,
  };
}
