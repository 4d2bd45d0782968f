import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { pathToFileURL } from 'node:url';
import { ERASABLE_ONLY, importFailure } from './app-module.ts';

/** What Node throws importing a module of `text`, written to a file of its own. */
async function thrownBy(name: string, text: string): Promise<{ error: unknown; file: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'app-module-'));
  after(() => rm(dir, { recursive: true, force: true }));
  const file = join(dir, name);
  await writeFile(file, text);
  try {
    await import(pathToFileURL(file).href);
  } catch (error) {
    return { error, file };
  }
  throw new Error(`${name} imported without an error`);
}

test('a syntax error: file:line:column of the caret', async () => {
  const { error, file } = await thrownBy('syntax.ts', 'export const a = 1;\nconst x = ;\n');
  assert.equal(importFailure(error), `${file}:2:11: Expression expected`);
});

test('TypeScript that does not erase: where, and what to write instead', async () => {
  const oneLine = await thrownBy('enum.ts', 'enum Color { Red }\n');
  assert.equal(
    importFailure(oneLine.error),
    `${oneLine.file}:1:1: TypeScript enum is not supported in strip-only mode. ${ERASABLE_ONLY}`,
  );
  const spanning = await thrownBy('enums.ts', 'export const a = 1;\n  export enum Color {\n  Red,\n}\n');
  assert.equal(
    importFailure(spanning.error),
    `${spanning.file}:2:3: TypeScript enum is not supported in strip-only mode. ${ERASABLE_ONLY}`,
  );
  const property = await thrownBy('property.ts', 'export class Mailer {\n  constructor(private url: string) {}\n}\n');
  assert.match(importFailure(property.error), new RegExp(`^${property.file}:2:\\d+: .*${ERASABLE_ONLY.slice(0, 40)}`));
});

test('a throw while importing: the message and its first frame in the module', async () => {
  const { error, file } = await thrownBy(
    'throws.ts',
    'function load(): never {\n  throw new Error("no SMTP_URL");\n}\nload();\n',
  );
  assert.equal(importFailure(error), `no SMTP_URL (at ${file}:2:9)`);
});

test('what has no location stays as it is', () => {
  assert.equal(importFailure('a string'), 'a string');
  const bare = new Error('no stack');
  bare.stack = 'Error: no stack';
  assert.equal(importFailure(bare), 'no stack');
});
