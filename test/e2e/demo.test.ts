/**
 * `make demo`, end to end: demo/main.ts in its quick mode as a child process, on a local stack of its
 * own. A run to the end scales the fleet out and back to 0 and draws a valid picture; a run interrupted
 * with SIGINT mid-burst stops. Either way no process the demo started outlives it: every descendant it
 * had (the stack supervisor and its components, the operator and worker pods, helm) is gone, and so is
 * the stack's directory.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { eventually } from '../support/eventually.ts';

const demo = new URL('../../demo/main.ts', import.meta.url).pathname;

interface DemoRun {
  code: number | null;
  output: string;
  /** Every descendant seen while the demo ran: pid → its start time and command, to tell a reused pid apart. */
  descendants: Map<number, { start: string; command: string }>;
  seconds: number;
  /** What the console printed at the start answered while the demo ran: its session, and its overview's queues. */
  console?: { role?: string; queues?: string[]; taskQueues?: string[] } | Error;
}

/** Runs the demo; `interrupt` (checked on each line of output) says when to send it SIGINT. */
async function runDemo(svg: string, interrupt?: (output: string) => boolean): Promise<DemoRun> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    TASKFLEET_DEMO_QUICK: '1',
    TASKFLEET_DEMO_SVG: svg,
    NODE_OPTIONS: '--conditions=source',
  };
  // The demo's own local stack, whatever this run's environment points at.
  for (const name of ['KUBECONFIG', 'TASKFLEET_STACK_FILE', 'NODE_TEST_CONTEXT']) delete env[name];
  const started = Date.now();
  const child = spawn(process.execPath, [demo], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const pid = child.pid as number;
  let output = '';
  let interrupted = false;
  let console: Promise<DemoRun['console']> | undefined;
  const onData = (chunk: Buffer) => {
    output += chunk.toString();
    const url = /the console: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(output)?.[1];
    if (url && !console) console = askConsole(url);
    if (interrupt && !interrupted && interrupt(output)) {
      interrupted = true;
      child.kill('SIGINT');
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const descendants = new Map<number, { start: string; command: string }>();
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  let running = true;
  void exited.then(() => {
    running = false;
  });
  while (running) {
    for (const [p, info] of descendantsOf(pid)) descendants.set(p, info);
    await sleep(300);
  }
  const code = await exited;
  return { code, output, descendants, seconds: (Date.now() - started) / 1000, console: await console };
}

/** The console's session and overview, read as a script would (docs/console.md). */
async function askConsole(url: string): Promise<DemoRun['console']> {
  try {
    const session = (await (await fetch(new URL('/api/session', url))).json()) as { role?: string };
    const overview = (await (await fetch(new URL('/api/overview', url))).json()) as {
      queues?: { name: string }[];
      kubernetes?: { taskQueues: { name: string }[] };
    };
    return {
      ...(session.role ? { role: session.role } : {}),
      queues: (overview.queues ?? []).map((q) => q.name),
      taskQueues: (overview.kubernetes?.taskQueues ?? []).map((q) => q.name),
    };
  } catch (error) {
    return error as Error;
  }
}

/** The processes below `root` now, from /proc. */
function descendantsOf(root: number): Map<number, { start: string; command: string }> {
  const parent = new Map<number, number>();
  const info = new Map<number, { start: string; command: string }>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = procStat(Number(entry));
    if (!stat) continue;
    parent.set(Number(entry), stat.ppid);
    info.set(Number(entry), { start: stat.start, command: stat.command });
  }
  const found = new Map<number, { start: string; command: string }>();
  let frontier = [root];
  while (frontier.length > 0) {
    const next: number[] = [];
    for (const [p, pp] of parent) {
      if (frontier.includes(pp) && !found.has(p)) {
        found.set(p, info.get(p) as { start: string; command: string });
        next.push(p);
      }
    }
    frontier = next;
  }
  return found;
}

/** ppid, start time (clock ticks since boot) and command of a live process; undefined if gone or a zombie. */
function procStat(pid: number): { ppid: number; start: string; command: string } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command is in parentheses and may hold spaces; the fields after it are space-separated.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z') return undefined;
    const command = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ').trim();
    return { ppid: Number(fields[1]), start: fields[19] as string, command };
  } catch {
    return undefined;
  }
}

/** Waits (a teardown takes a moment) until none of `run`'s descendants is alive; returns those that are. */
async function survivors(run: DemoRun): Promise<string[]> {
  const alive = () =>
    [...run.descendants]
      .filter(([pid, { start }]) => procStat(pid)?.start === start)
      .map(([pid, { command }]) => `${pid} ${command}`);
  await eventually('the demo’s processes to be gone', () => alive().length === 0, 15_000).catch(() => {});
  return alive();
}

const stackDirOf = (output: string) => /files in (\S+taskfleet-stack-\S+?);?\s/.exec(output)?.[1];

/** An SVG that parses as XML would: one root, every tag closed in order, attributes quoted. */
function assertWellFormedSvg(svg: string): void {
  assert.match(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*viewBox="0 0 \d+ \d+"/);
  const open: string[] = [];
  for (const [, closing, name, attributes, selfClosing] of svg.matchAll(/<(\/?)([a-z]+)([^>]*?)(\/?)>/g)) {
    assert.doesNotMatch(attributes as string, /=[^"]/, `unquoted attribute in <${name}${attributes}>`);
    if (closing) assert.equal(open.pop(), name, `</${name}> closes <${open.at(-1)}>`);
    else if (!selfClosing) open.push(name as string);
  }
  assert.deepEqual(open, [], 'every element is closed');
  assert.doesNotMatch(svg.replace(/&(amp|lt|gt|quot);/g, ''), /&/, 'every & is escaped');
}

test('make demo (quick): the fleet scales 0 → N → 0, the picture is written, nothing is left running', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'demo-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const svgPath = join(dir, 'demo.svg');
  const run = await runDemo(svgPath);
  t.diagnostic(`the demo ran ${run.seconds.toFixed(1)} s; ${run.descendants.size} processes below it`);
  assert.equal(run.code, 0, run.output);

  const peak = Number(/peak (\d+) ready workers/.exec(run.output)?.[1]);
  assert.ok(peak >= 2, `peak ready workers: ${peak}\n${run.output}`);
  assert.match(run.output, /back to 0: no replicas, no pods/);
  assert.deepEqual(run.console, { role: 'admin', queues: ['thumbnails'], taskQueues: ['thumbnails'] });
  assert.match(run.output, /1,800 tasks sent in 2 bursts, all done/);
  assert.match(run.output, new RegExp(`Wrote ${svgPath}`));

  const svg = await readFile(svgPath, 'utf8');
  assertWellFormedSvg(svg);
  const scaleLines = svg.match(/stroke-dasharray="3 3"\/>/g)?.length ?? 0;
  assert.ok(scaleLines >= 3, `scale events marked: ${scaleLines - 1} (one dash is the legend's)`);
  assert.match(svg, /<polyline points="[\d., ]+"/, 'the backlog line');
  assert.equal(svg.match(/<path d="M/g)?.length, 2, 'ready and desired replicas');
  assert.match(svg, /0 → [2-6] → 0/);

  // The pods ran as processes below the demo: the operator's and the workers'.
  const commands = [...run.descendants.values()].map((d) => d.command);
  assert.ok(
    commands.some((c) => c.includes('worker/src/cli/main.ts worker')),
    'worker pods ran',
  );
  assert.ok(
    commands.some((c) => c.includes('kube-apiserver')),
    'the stack ran',
  );
  assert.deepEqual(await survivors(run), []);
  const stackDir = stackDirOf(run.output);
  assert.ok(stackDir, 'the demo says where the stack lives');
  assert.equal(existsSync(stackDir), false, `${stackDir} is removed`);
});

test('make demo, interrupted (SIGINT) mid-burst: it stops, and nothing is left running', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'demo-test-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  const svgPath = join(dir, 'demo.svg');
  // Once the first burst has workers busy on it.
  const run = await runDemo(svgPath, (output) =>
    /ready [1-9]/.test(output.split('sent burst 1 of 2')[1]?.split('\n').slice(1).join('\n') ?? ''),
  );
  t.diagnostic(`the demo ran ${run.seconds.toFixed(1)} s; ${run.descendants.size} processes below it`);
  assert.equal(run.code, 130, run.output);
  assert.match(run.output, /interrupted \(SIGINT\): stopping everything the demo started/);
  assert.equal(existsSync(svgPath), false, 'an interrupted run draws no picture');
  const commands = [...run.descendants.values()].map((d) => d.command);
  assert.ok(
    commands.some((c) => c.includes('worker/src/cli/main.ts worker')),
    'worker pods were running',
  );
  assert.deepEqual(await survivors(run), []);
  const stackDir = stackDirOf(run.output);
  assert.ok(stackDir);
  assert.equal(existsSync(stackDir), false, `${stackDir} is removed`);
});
