/**
 * The `taskfleet` command as npm installs it: node_modules/.bin/taskfleet, linked by `npm ci` to the
 * package's launcher (worker/bin/taskfleet.js), which checks the Node version and then loads the
 * compiled CLI from dist/ (`make test` builds it first).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readlinkSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repo = fileURLToPath(new URL('../../..', import.meta.url));
const bin = join(repo, 'node_modules/.bin/taskfleet');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `command args` with the given PATH first and no NODE_OPTIONS (no `source` condition: dist/). */
async function run(command: string, args: string[], path: string, cwd = process.cwd()): Promise<Run> {
  const env = { HOME: process.env.HOME ?? '/root', PATH: `${path}:/usr/local/bin:/usr/bin:/bin` };
  try {
    const { stdout, stderr } = await promisify(execFile)(command, args, { env, cwd, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

/** A Node older than 24 on this machine (Debian's), to run the launcher under. */
function oldNode(): string {
  for (const candidate of ['/usr/bin/node', '/usr/local/bin/node', '/bin/node']) {
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('no Node outside node_modules: this test needs the machine’s own (older) Node');
}

test('npm ci links node_modules/.bin/taskfleet to the launcher, which runs the built CLI on Node 24', async () => {
  assert.equal(readlinkSync(bin), '../taskfleet/bin/taskfleet.js');
  assert.ok(existsSync(join(repo, 'worker/dist/cli/main.js')), 'worker/dist is built (make build)');
  const help = await run(bin, ['--help'], join(repo, 'node_modules/.bin'));
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^taskfleet — Celery-style background tasks for TypeScript/);
  const usage = await run(bin, ['no-such-command'], join(repo, 'node_modules/.bin'));
  assert.equal(usage.code, 2);
  assert.match(usage.stderr, /taskfleet: unknown command "no-such-command"/);
});

test('under a Node older than 24.11 the command exits 1 and says which Node it needs', async () => {
  const node = oldNode();
  const { stdout: version } = await run(node, ['--version'], '');
  const major = Number(/^v(\d+)/.exec(version)?.[1]);
  assert.ok(major < 24, `${node} is Node ${version.trim()}, not older than 24`);
  const result = await run(node, [bin, 'worker', '--app', 'tasks.ts'], '');
  assert.equal(result.code, 1);
  assert.equal(result.stdout, '');
  assert.equal(
    result.stderr,
    `taskfleet: needs Node 24.11 or newer, and this is Node ${version.trim().slice(1)} (${node}). Install Node 24 and put it first on PATH; in the Taskfleet repository, \`npx taskfleet …\` runs it on the Node 24 that npm installed into node_modules.\n`,
  );
});

test('in the repository, npx runs taskfleet and node on the Node 24 of node_modules, an older node first on PATH', async () => {
  const node = oldNode();
  const path = dirname(node); // the machine's npm and its older node, nothing of node_modules
  const help = await run('npx', ['taskfleet', '--help'], path, repo);
  assert.equal(help.code, 0, help.stderr);
  assert.match(help.stdout, /^taskfleet — Celery-style background tasks for TypeScript/);
  const version = await run('npx', ['node', '--version'], path, repo);
  assert.equal(version.code, 0, version.stderr);
  assert.match(version.stdout, /^v24\./);
});
