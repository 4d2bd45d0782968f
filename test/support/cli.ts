/**
 * The `taskfleet` command as a user runs it: a child process of Node on the CLI's source.
 *
 *   const { code, stdout } = await taskfleet(['result', id, '--json'], { TASKFLEET_BROKER: url });
 *   const worker = spawnWorker(['--app', fixture], { TASKFLEET_BROKER: url, ... });
 *   await worker.log('worker started');
 *
 * Children get none of this process's TASKFLEET_* variables, only those a test passes, so a test
 * of flags is not helped by a stray variable. No child outlives its test: a worker still running
 * when the test that started it ends, passed or failed, is SIGKILLed, and the kernel kills every
 * child if this process dies.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import { once } from 'node:events';
import { after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';

export const cliPath = fileURLToPath(new URL('../../worker/src/cli/main.ts', import.meta.url));

/** This process's environment without TASKFLEET_*, with `taskfleet` resolving to source, plus `env`. */
export function cliEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('TASKFLEET_')));
  return { ...base, NODE_OPTIONS: '--conditions=source', ...env };
}

/**
 * Starts `node <argv>` through `setpriv --pdeathsig KILL`, so the kernel kills it if this process
 * dies, even by SIGKILL; setpriv execs, so the child's pid and signals are the script's.
 */
function spawnNode(argv: string[], env: Record<string, string>, options: SpawnOptions = {}): ChildProcess {
  return spawn('setpriv', ['--pdeathsig', 'KILL', '--', process.execPath, ...argv], {
    env: cliEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  });
}

function spawnTaskfleet(args: string[], env: Record<string, string>, options: SpawnOptions = {}): ChildProcess {
  return spawnNode([cliPath, ...args], env, options);
}

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Reads a child's output to its end; `what` names it if it is killed (its timeout passed). */
async function completion(child: ChildProcess, what: string): Promise<CliRun> {
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
  });
  const [code, signal] = (await once(child, 'close')) as [number | null, NodeJS.Signals | null];
  if (signal) throw new Error(`${what} was killed by ${signal}\n${stdout}\n${stderr}`);
  return { code, stdout, stderr };
}

/** Runs `taskfleet <args>` to completion. The timeout only bounds a command that hangs. */
export function taskfleet(args: string[], env: Record<string, string> = {}, timeoutMs = 30_000): Promise<CliRun> {
  const child = spawnTaskfleet(args, env, { timeout: timeoutMs, killSignal: 'SIGKILL' });
  return completion(child, `taskfleet ${args.join(' ')}`);
}

/**
 * Runs a script of Node's (a producer, as an application is one) to completion, with the environment
 * `taskfleet` gets (TASKFLEET_* only from `env`). The timeout only bounds a script that hangs.
 */
export function runScript(script: string, env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliRun> {
  return completion(spawnNode([script], env, { timeout: timeoutMs, killSignal: 'SIGKILL' }), script);
}

/** The lines of `output` that are not JSON objects: what a structured log must not contain. */
export function notJsonLines(output: string): string[] {
  return output
    .split('\n')
    .filter((line) => line.trim() !== '')
    .filter((line) => {
      try {
        const value: unknown = JSON.parse(line);
        return typeof value !== 'object' || value === null;
      } catch {
        return true;
      }
    });
}

/** One structured log line of a worker. */
export interface LogRecord {
  level: string;
  msg: string;
  [field: string]: unknown;
}

const workers = new Set<WorkerProcess>();
// Whatever ends this process, no worker outlives it.
process.on('exit', () => {
  for (const worker of workers) worker.signal('SIGKILL');
});

/** A running `taskfleet worker` (or another long-running command: `beat`). */
export class WorkerProcess {
  readonly child: ChildProcess;
  /** Every structured log line so far. */
  readonly logs: LogRecord[] = [];
  /** The last lines of output that were not JSON (warnings, crashes), for failure messages. */
  readonly text: string[] = [];
  /** Settles when the process has exited and its output is read. */
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  readonly command: string;

  constructor(args: string[], env: Record<string, string>, command = 'worker') {
    this.command = command;
    this.child = spawnTaskfleet([command, ...args], env);
    this.exited = once(this.child, 'close').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
    const read = (stream: NodeJS.ReadableStream) => {
      let partial = '';
      stream.setEncoding('utf8');
      // Read everything, always: a full pipe would block the worker.
      stream.on('data', (chunk: string) => {
        const lines = (partial + chunk).split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) this.#line(line);
      });
      stream.on('end', () => this.#line(partial));
    };
    read(this.child.stdout as NodeJS.ReadableStream);
    read(this.child.stderr as NodeJS.ReadableStream);
  }

  #line(line: string): void {
    if (line.trim() === '') return;
    try {
      const record = JSON.parse(line) as LogRecord;
      if (typeof record === 'object' && record !== null && typeof record.msg === 'string') {
        this.logs.push(record);
        return;
      }
    } catch {}
    this.text.push(line);
    if (this.text.length > 200) this.text.shift();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** Still running: not exited and not yet reaped. */
  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The first log line whose message matches, once it is written; an error if the worker exits first. */
  async log(msg: string | RegExp, timeoutMs = 30_000): Promise<LogRecord> {
    const find = () => this.logs.find((r) => (typeof msg === 'string' ? r.msg === msg : msg.test(r.msg)));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = find();
      if (found) return found;
      if (!this.running) {
        const exit = await this.exited; // its output is read to the end by then
        const late = find();
        if (late) return late;
        throw new Error(
          `${this.describe()} exited (${JSON.stringify(exit)}) without logging ${msg}:\n${this.output()}`,
        );
      }
      if (Date.now() > deadline) {
        throw new Error(`${this.describe()} did not log ${msg} within ${timeoutMs / 1000}s:\n${this.output()}`);
      }
      await sleep(20);
    }
  }

  /** How it exited, once it has; an error after `timeoutMs` (which only bounds a worker that hangs). */
  async exit(timeoutMs = 30_000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`${this.describe()} did not exit within ${timeoutMs / 1000}s:\n${this.output()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** The worker's id, from its start-up log line. */
  async id(): Promise<string> {
    return String((await this.log('worker started')).worker);
  }

  signal(signal: NodeJS.Signals): void {
    if (this.running) this.child.kill(signal);
  }

  describe(): string {
    return `${this.command} pid ${this.pid}`;
  }

  /** What the worker wrote that was not a structured log, and its last log lines. */
  output(): string {
    return [...this.text, ...this.logs.slice(-10).map((r) => JSON.stringify(r))].join('\n');
  }
}

/**
 * Starts `taskfleet worker <args>`. If it is still running when the test (or file) that started it
 * ends, passed or failed, it is SIGKILLed.
 */
export function spawnWorker(args: string[], env: Record<string, string> = {}, command = 'worker'): WorkerProcess {
  const worker = new WorkerProcess(args, env, command);
  workers.add(worker);
  void worker.exited.then(() => workers.delete(worker));
  after(async () => {
    worker.signal('SIGKILL');
    await worker.exited;
  });
  return worker;
}

/** Starts `taskfleet beat <args>`, killed as spawnWorker's workers are. */
export function spawnBeat(args: string[], env: Record<string, string> = {}): WorkerProcess {
  return spawnWorker(args, env, 'beat');
}
