import { createHash } from 'node:crypto';

/**
 * JSON with every object's keys sorted, so two equal values always give the same text. The API server
 * returns custom resources with their keys sorted (it stores them as maps), while the operator builds
 * objects in its own field order: comparing plain `JSON.stringify` texts would call them different.
 * `undefined` members are dropped, as JSON.stringify drops them.
 */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) => {
    if (v === null || typeof v !== 'object' || Array.isArray(v)) return v;
    const sorted: Record<string, unknown> = {};
    for (const k of Object.keys(v).sort()) sorted[k] = (v as Record<string, unknown>)[k];
    return sorted;
  });
}

/** A short digest of `canonicalJson(value)`: equal values, equal hashes. */
export function hashOf(value: unknown): string {
  return createHash('sha256').update(canonicalJson(value)).digest('base64url').slice(0, 22);
}
