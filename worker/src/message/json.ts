import { SerializationError } from '../errors.ts';
import type { JsonValue } from './json-value.ts';

export type { JsonValue };

/**
 * Whether texts together fit in `maxBytes` of UTF-8. Buffer.byteLength is exact but costs a pass; a
 * string of n UTF-16 units is at most 3n bytes, so most texts need no exact count.
 */
export function fitsIn(maxBytes: number, ...texts: string[]): boolean {
  let length = 0;
  for (const text of texts) length += text.length;
  if (length * 3 <= maxBytes) return true;
  let bytes = 0;
  for (const text of texts) bytes += Buffer.byteLength(text);
  return bytes <= maxBytes;
}

/**
 * Throws a SerializationError naming the first part of `value` that JSON would silently change or
 * drop: undefined, functions, symbols, bigints, NaN and Infinity, Dates, Maps, Sets, class
 * instances, cycles. `path` names the value in the message, e.g. `args[1].user`.
 */
export function assertJson(value: unknown, path: string, seen: Set<object> = new Set()): asserts value is JsonValue {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) fail(path, `${value} is not a finite number; JSON would turn it into null`);
      return;
    case 'undefined':
      fail(path, 'undefined is not JSON; pass null, or leave the argument out');
      break;
    case 'bigint':
      fail(path, 'a bigint is not JSON; pass it as a string');
      break;
    case 'function':
    case 'symbol':
      fail(path, `a ${typeof value} is not JSON; pass data, not code`);
      break;
    case 'object': {
      if (value === null) return;
      if (seen.has(value)) fail(path, 'it refers to itself (a cycle)');
      if (value instanceof Date) fail(path, 'a Date is not JSON; pass date.toISOString() or a timestamp');
      seen.add(value);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) assertJson(value[i], `${path}[${i}]`, seen);
      } else {
        const proto = Object.getPrototypeOf(value);
        if (proto !== Object.prototype && proto !== null) {
          const kind = (value as object).constructor?.name ?? 'an object with a prototype';
          fail(path, `a ${kind} is not plain JSON; pass an ID or a plain object instead`);
        }
        for (const [key, field] of Object.entries(value)) assertJson(field, `${path}.${key}`, seen);
      }
      seen.delete(value);
    }
  }
}

function fail(path: string, why: string): never {
  throw new SerializationError(`${path} cannot be sent: ${why}`);
}
