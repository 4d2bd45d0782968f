import type { IHeaders } from 'kafkajs';

/** A record's headers as strings (the first value of a repeated header). */
export function headersOf(headers: IHeaders | undefined): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (value !== undefined) result[name] = String(Array.isArray(value) ? value[0] : value);
  }
  return result;
}

/** What admin.fetchOffsets answers for a group: per topic, per partition, the offset and its metadata. */
export type GroupOffsets = {
  topic: string;
  partitions: { partition: number; offset: string; metadata: string | null }[];
}[];

/**
 * A group's commit for one partition: its offset (undefined when the group never committed there, which
 * Kafka reports as -1) and the ledger metadata that came with it.
 */
export function committedFor(
  committed: GroupOffsets,
  topic: string,
  partition: number,
): { offset: number | undefined; metadata: string | null | undefined } {
  const entry = committed.find((t) => t.topic === topic)?.partitions.find((p) => p.partition === partition);
  const offset = entry && Number(entry.offset) >= 0 ? Number(entry.offset) : undefined;
  return { offset, metadata: entry?.metadata };
}
