import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { SerializationError } from '../errors.ts';
import { assertJson } from './json.ts';

/** Asserts that assertJson refuses `value` with exactly `message`. */
function assertRefused(value: unknown, path: string, message: string): void {
  assert.throws(
    () => assertJson(value, path),
    (error: unknown) => {
      assert.ok(error instanceof SerializationError, `not a SerializationError: ${error}`);
      assert.equal(error.code, 'NOT_JSON');
      assert.equal(error.message, message);
      return true;
    },
  );
}

describe('assertJson', () => {
  test('accepts everything that survives a JSON round trip unchanged', () => {
    const values: unknown[] = [
      'text',
      '',
      0,
      -1.5,
      Number.MAX_SAFE_INTEGER,
      true,
      false,
      null,
      [],
      {},
      [1, 'two', [3, [4]], { five: null }],
      { user: { id: 7, tags: ['a', 'b'], address: { city: 'Oslo' } } },
    ];
    for (const value of values) {
      assert.doesNotThrow(() => assertJson(value, 'value'), JSON.stringify(value));
      assert.deepEqual(JSON.parse(JSON.stringify(value)), value);
    }
  });

  test('accepts an object without a prototype: JSON carries it as a plain object', () => {
    assert.doesNotThrow(() => assertJson(Object.assign(Object.create(null), { bare: true }), 'value'));
  });

  test('the same object twice is not a cycle', () => {
    const shared = { id: 1 };
    assert.doesNotThrow(() => assertJson([shared, shared, { again: shared }], 'args'));
  });

  test('refuses each kind JSON would change or drop, saying what to pass instead', () => {
    const cases: [unknown, string][] = [
      [undefined, 'undefined is not JSON; pass null, or leave the argument out'],
      [Number.NaN, 'NaN is not a finite number; JSON would turn it into null'],
      [Number.POSITIVE_INFINITY, 'Infinity is not a finite number; JSON would turn it into null'],
      [Number.NEGATIVE_INFINITY, '-Infinity is not a finite number; JSON would turn it into null'],
      [10n, 'a bigint is not JSON; pass it as a string'],
      [() => 1, 'a function is not JSON; pass data, not code'],
      [Symbol('s'), 'a symbol is not JSON; pass data, not code'],
      [new Date(0), 'a Date is not JSON; pass date.toISOString() or a timestamp'],
      [new Map(), 'a Map is not plain JSON; pass an ID or a plain object instead'],
      [new Set([1]), 'a Set is not plain JSON; pass an ID or a plain object instead'],
      [new (class User {})(), 'a User is not plain JSON; pass an ID or a plain object instead'],
      [/x/, 'a RegExp is not plain JSON; pass an ID or a plain object instead'],
      [new Uint8Array(2), 'a Uint8Array is not plain JSON; pass an ID or a plain object instead'],
    ];
    for (const [value, why] of cases) assertRefused(value, 'argument 1', `argument 1 cannot be sent: ${why}`);
  });

  test('names where in the value the problem is', () => {
    assertRefused(
      [1, 2, undefined],
      'args',
      'args[2] cannot be sent: undefined is not JSON; pass null, or leave the argument out',
    );
    assertRefused(
      { user: { created: new Date(0) } },
      'argument 2 of signup',
      'argument 2 of signup.user.created cannot be sent: a Date is not JSON; pass date.toISOString() or a timestamp',
    );
    assertRefused(
      { items: [{ price: 1 }, { price: Number.NaN }] },
      'order',
      'order.items[1].price cannot be sent: NaN is not a finite number; JSON would turn it into null',
    );
    assertRefused([[[1n]]], 'deep', 'deep[0][0][0] cannot be sent: a bigint is not JSON; pass it as a string');
  });

  test('refuses a cycle, naming where it closes', () => {
    const node: Record<string, unknown> = { name: 'a' };
    node.self = node;
    assertRefused(node, 'tree', 'tree.self cannot be sent: it refers to itself (a cycle)');
    const list: unknown[] = [1];
    list.push({ back: list });
    assertRefused(list, 'list', 'list[1].back cannot be sent: it refers to itself (a cycle)');
  });

  test('a property whose value is undefined is refused: JSON would drop the key', () => {
    assertRefused(
      { a: 1, b: undefined },
      'opts',
      'opts.b cannot be sent: undefined is not JSON; pass null, or leave the argument out',
    );
  });
});
