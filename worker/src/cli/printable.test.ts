import assert from 'node:assert/strict';
import { test } from 'node:test';
import { printable, printableJson } from './printable.ts';

test('terminal escapes, C1 controls and bidi overrides are shown escaped, not sent to the terminal', () => {
  assert.equal(printable('ok\u001b]0;pwned\u0007\u001b[2J'), 'ok\\x1b]0;pwned\\x07\\x1b[2J');
  assert.equal(printable('a\nb\tc\r\u007f'), 'a\\x0ab\\x09c\\x0d\\x7f');
  assert.equal(printable('csi\u009b31m'), 'csi\\x9b31m');
  assert.equal(printable('evil\u202egnp.exe'), 'evil\\u202egnp.exe');
  assert.equal(printable('plain ünïcödé 名前 ✓'), 'plain ünïcödé 名前 ✓');
  assert.equal(printable(undefined), 'undefined');
});

test('JSON output stays the same JSON, with nothing a terminal would obey', () => {
  const value = { task: 'x\u001b[31m\u009b\u202e', n: 1 };
  const text = printableJson(value);
  assert.deepEqual(JSON.parse(text), value);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: asserting their absence
  assert.doesNotMatch(text, /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/);
});
