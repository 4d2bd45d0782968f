/**
 * What a dead-letter store keeps of a message, shared by the adapters: the dead-letter store is
 * written by untrusted input (anyone who can write to a queue), so every letter is bounded.
 */
import { createHash } from 'node:crypto';
import { type DeadLetterReason, InvalidMessageError } from '../message/envelope.ts';

/** How much of a message that can never run as it is (too large, malformed) a dead letter keeps. */
export const DEAD_LETTER_HEAD_BYTES = 4096;
/** @defaultValue 10,000: how many dead letters a Redis queue keeps (about: `XADD … MAXLEN ~`). */
export const DEFAULT_MAX_DEAD_LETTERS = 10_000;
/** The longest detail a dead letter keeps, in characters. */
export const MAX_DETAIL_CHARS = 2000;

/** Reasons whose messages no requeue can make run: they are kept as their head only. */
const NEVER_RUNNABLE: ReadonlySet<DeadLetterReason> = new Set(['too-large', 'malformed']);

export interface DeadLetterCopy {
  /** The message, or its head. */
  text: string;
  /** The message's size in bytes. */
  size: number;
  /** The whole message's SHA-256 (hex), when `text` is only its head. */
  sha256?: string;
}

/**
 * The message whole, except when it can never run as it is and is longer than the head: then its
 * first DEAD_LETTER_HEAD_BYTES (cut at a character boundary), its size and its SHA-256, enough to tell
 * what it was and to find it at its producer, at a bounded cost whatever was sent.
 */
export function deadLetterCopy(raw: string, reason: DeadLetterReason): DeadLetterCopy {
  const bytes = Buffer.from(raw, 'utf8');
  if (!NEVER_RUNNABLE.has(reason) || bytes.length <= DEAD_LETTER_HEAD_BYTES) return { text: raw, size: bytes.length };
  // A multi-byte character cut in two decodes as U+FFFD: drop it rather than keep a character never sent.
  const head = bytes
    .subarray(0, DEAD_LETTER_HEAD_BYTES)
    .toString('utf8')
    .replace(/\uFFFD+$/, '');
  return { text: head, size: bytes.length, sha256: createHash('sha256').update(bytes).digest('hex') };
}

/** A detail as a dead letter keeps it: at most MAX_DETAIL_CHARS. */
export function boundedDetail(detail: string): string {
  return detail.length > MAX_DETAIL_CHARS ? `${detail.slice(0, MAX_DETAIL_CHARS - 1)}…` : detail;
}

/** The problem of a message delivered more than maxDeliveries times. */
export function poison(deliveries: number, maxDeliveries: number): InvalidMessageError {
  return new InvalidMessageError(
    'poison',
    `delivered ${deliveries} times (the limit is ${maxDeliveries}) without finishing: its workers died running it, or could not record its outcome, each time`,
  );
}
