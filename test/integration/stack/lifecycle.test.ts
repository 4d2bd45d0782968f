/**
 * The stack never outlives its test run: whether the run passes, fails, crashes, is interrupted with
 * Ctrl-C or killed outright, every process of the stack exits and its directory is removed.
 * Each case runs a nested `node --test` with the real global setup and a Redis-only stack.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { isAlive, type StackInfo, sweepAbandonedStacks } from '../../stack/stack.ts';
import { eventually } from '../../support/eventually.ts';
import { spawnStack } from '../../support/stack.ts';

const fixture = new URL('fixtures/owner.fixture.ts', import.meta.url).pathname;
const globalSetup = new URL('../../support/global-setup.ts', import.meta.url).pathname;
const scratch = await mkdtemp(join(tmpdir(), 'taskfleet-lifecycle-'));
after(() => rm(scratch, { recursive: true, force: true }));

type Mode = 'pass' | 'fail' | 'crash' | 'hang';

/** A nested test run in its own process group, as a terminal would start it. */
function testRun(mode: Mode): { runner: ChildProcess; report: string } {
  const report = join(scratch, `${mode}-${randomUUID()}.json`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TASKFLEET_STACK_COMPONENTS: 'redis',
    FIXTURE_MODE: mode,
    FIXTURE_REPORT: report,
  };
  delete env.NODE_TEST_CONTEXT; // else the nested runner reports to us instead of running
  delete env.TASKFLEET_STACK_FILE; // else it would use this run's stack
  const runner = spawn(process.execPath, ['--test', `--test-global-setup=${globalSetup}`, fixture], {
    env,
    detached: true,
    stdio: 'ignore',
  });
  return { runner, report };
}

async function assertTornDown(info: StackInfo): Promise<void> {
  const pids = [info.pid, ...info.processes.map((p) => p.pid)];
  assert.ok(info.processes.some((p) => p.name === 'redis'));
  await eventually('every stack process to exit', () => pids.every((pid) => !isAlive(pid)), 15_000);
  await eventually(`${info.dir} to be removed`, () => !existsSync(info.dir), 15_000);
}

async function stackOf(report: string): Promise<StackInfo> {
  return JSON.parse(await eventually('the fixture to report its stack', () => readFile(report, 'utf8'), 60_000));
}

for (const mode of ['pass', 'fail', 'crash'] as const) {
  test(`a run whose test ends by ${mode} tears the stack down`, async () => {
    const { runner, report } = testRun(mode);
    const [code] = await once(runner, 'exit');
    assert.equal(code === 0, mode === 'pass', `exit code ${code}`);
    await assertTornDown(await stackOf(report));
  });
}

test('Ctrl-C (SIGINT to the process group) tears the stack down', async () => {
  const { runner, report } = testRun('hang');
  const info = await stackOf(report);
  process.kill(-(runner.pid as number), 'SIGINT');
  await once(runner, 'exit');
  await assertTornDown(info);
});

test('SIGKILL of the test runner tears the stack down', async () => {
  const { runner, report } = testRun('hang');
  const info = await stackOf(report);
  runner.kill('SIGKILL');
  await once(runner, 'exit');
  await assertTornDown(info);
  try {
    process.kill(-(runner.pid as number), 'SIGKILL'); // the runner's test process, if it outlived it
  } catch {}
});

test('SIGKILL of the supervisor itself: its processes die with it, the next start sweeps the directory', async () => {
  const owned = await spawnStack(['redis']);
  const { info } = owned;
  owned.supervisor.kill('SIGKILL');
  await eventually('redis to die with its supervisor', () => info.processes.every((p) => !isAlive(p.pid)), 15_000);
  assert.ok(existsSync(info.dir), 'a SIGKILLed supervisor cannot clean up after itself');
  await sweepAbandonedStacks();
  assert.ok(!existsSync(info.dir));
});

test('a component that dies while the stack runs is named, with the end of its log, on the stack’s stderr', async () => {
  const supervisorPath = new URL('../../stack/supervisor.ts', import.meta.url).pathname;
  const supervisor = spawn(process.execPath, [supervisorPath, '--json', 'redis'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let stderr = '';
  supervisor.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString();
  });
  const [line] = (await once(supervisor.stdout as NodeJS.ReadableStream, 'data')) as [Buffer];
  const { ready } = JSON.parse(line.toString()) as { ready: StackInfo };
  const redis = ready.processes.find((p) => p.name === 'redis');
  assert.ok(redis);
  process.kill(redis.pid, 'SIGKILL');
  await eventually('the supervisor to say that redis died', () => stderr.includes('redis exited'), 15_000);
  assert.match(stderr, /^stack: redis exited \(SIGKILL\) unexpectedly; the end of its log:/m);
  supervisor.stdin?.end();
  await once(supervisor, 'exit');
  await assertTornDown(ready);
});
