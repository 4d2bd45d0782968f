/**
 * Which failures to record an outcome will not go away on retry. Running the call again would fail
 * the same way, so the worker fails it (FAILURE, its workflow told) or dead-letters it, never hands it
 * back to run again. Every other failure (a broker or backend unreachable, a timeout) is handed back
 * and counted toward maxDeliveries, so even a failure misjudged as passing ends, as poison.
 */
import { BROKERS } from '../brokers/registry.ts';
import { TaskfleetError } from '../errors.ts';
import { InvalidMessageError } from '../message/envelope.ts';

/** Codes of Taskfleet errors that say the input or the configuration is wrong, not the weather. */
const PERMANENT_CODES: ReadonlySet<string> = new Set([
  'BAD_ENVELOPE',
  'BAD_PRIORITY',
  'NOT_JSON',
  'CONFIG',
  'CANVAS_TOO_DEEP',
  'CANVAS_TOO_LARGE',
  'CANVAS_INVALID',
  'EMPTY_CHORD',
  'UNKNOWN_TASK',
  'CHORD_SLOT_INVALID',
  'ETA_BEYOND_HORIZON',
  'RESULT_TOO_LARGE',
]);

export function isPermanent(error: unknown): boolean {
  // Causes first: a client wraps the broker's refusal once retries are spent, and WorkflowError its cause.
  for (let e: unknown = error, depth = 0; e && depth < 5; e = (e as { cause?: unknown }).cause, depth++) {
    if (e instanceof InvalidMessageError) return true;
    if (e instanceof TaskfleetError && PERMANENT_CODES.has(e.code)) return true;
    if (BROKERS.some((broker) => broker.refusesForGood?.(e))) return true;
  }
  return false;
}
