import type { Condition, TaskQueueStatus } from '../api/types.ts';

/**
 * Status fields compared for "did anything change" (rates rounded so noise does not cause writes). Key
 * order does not count — the API server hands a status back with its keys sorted — nor does the order of
 * the conditions. Compared in place, without copies: this runs on every poll of every queue.
 */
export function sameStatus(a: TaskQueueStatus | undefined, b: TaskQueueStatus): boolean {
  const x = (a ?? {}) as Record<string, unknown>;
  const y = b as unknown as Record<string, unknown>;
  for (const key of keysOf(x, y)) {
    const u = x[key];
    const v = y[key];
    if (key === 'rates') {
      if (!sameRates(u as TaskQueueStatus['rates'], v as TaskQueueStatus['rates'])) return false;
    } else if (key === 'conditions') {
      if (!sameConditions((u ?? []) as Condition[], (v ?? []) as Condition[])) return false;
    } else if (!deepEqual(u, v)) {
      return false;
    }
  }
  return true;
}

function sameRates(a: TaskQueueStatus['rates'], b: TaskQueueStatus['rates']): boolean {
  if (a === undefined || b === undefined) return a === b;
  const round = (x: number | undefined) => (x === undefined ? undefined : Math.round(x * 100) / 100);
  return (
    round(a.arrival) === round(b.arrival) &&
    round(a.completion) === round(b.completion) &&
    round(a.perReplica) === round(b.perReplica)
  );
}

function sameConditions(a: readonly Condition[], b: readonly Condition[]): boolean {
  if (a.length !== b.length) return false;
  for (const c of b) {
    if (
      !deepEqual(
        a.find((d) => d.type === c.type),
        c,
      )
    )
      return false;
  }
  return true;
}

/** The keys of both objects whose value is not undefined (JSON drops those). */
function* keysOf(x: Record<string, unknown>, y: Record<string, unknown>): Generator<string> {
  for (const key in x) if (x[key] !== undefined) yield key;
  for (const key in y) if (y[key] !== undefined && x[key] === undefined) yield key;
}

/** JSON equality: key order does not count, an undefined member is an absent one. */
function deepEqual(u: unknown, v: unknown): boolean {
  if (u === v) return true;
  if (typeof u !== 'object' || typeof v !== 'object' || u === null || v === null) return false;
  if (Array.isArray(u) !== Array.isArray(v)) return false;
  if (Array.isArray(u)) {
    const w = v as unknown[];
    if (u.length !== w.length) return false;
    for (let i = 0; i < u.length; i++) if (!deepEqual(u[i], w[i])) return false;
    return true;
  }
  const x = u as Record<string, unknown>;
  const y = v as Record<string, unknown>;
  for (const key in x) if (x[key] !== undefined && !deepEqual(x[key], y[key])) return false;
  for (const key in y) if (y[key] !== undefined && x[key] === undefined) return false;
  return true;
}
