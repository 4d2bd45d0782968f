import { execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { cacheDir } from '../../test/stack/versions.ts';
import { childEnv } from '../support/compiled.ts';
import type { ChildMessage } from '../support/protocol.ts';

/**
 * Celery 5 as the worker benchmark's anchor for a Celery user: the same no-op task, on the same
 * private redis-server, measured in the same run. Celery runs from a throwaway venv in the cache
 * (`${TASKFLEET_CACHE:-~/.cache/taskfleet}/bench/celery-<version>/`), made on first use; it is no
 * dependency of the project or its tests. Its Python side is tasks.py (the app, the task and the
 * worker's report) and enqueue.py (the producer).
 */
export const CELERY_VERSION = '5.7.0';
/** What the venv holds, pinned: Celery with its Redis extra, and what it runs on for Redis. */
const REQUIREMENTS = [`celery[redis]==${CELERY_VERSION}`, 'kombu==5.7.0', 'billiard==4.3.2', 'redis==8.2.0'];
const HERE = fileURLToPath(new URL('.', import.meta.url));

const run = promisify(execFile);

export interface CeleryVariant {
  label: string;
  /** prefork: processes; threads: one process, a thread per slot. */
  pool: 'prefork' | 'threads';
  concurrency: number;
  /** Acknowledge after the call (Taskfleet's semantics), or on receipt. */
  acksLate: boolean;
  ignoreResult: boolean;
}

const POOLS = [
  { pool: 'prefork', concurrency: 2 },
  { pool: 'threads', concurrency: 50 },
] as const;

/** Every pool with `acks_late` on and off, results stored and ignored. */
export const CELERY_VARIANTS: CeleryVariant[] = POOLS.flatMap(({ pool, concurrency }) =>
  [true, false].flatMap((acksLate) =>
    [false, true].map((ignoreResult) => ({
      label: `celery-${pool}-${acksLate ? 'late' : 'early'}-${ignoreResult ? 'ignore' : 'store'}`,
      pool,
      concurrency,
      acksLate,
      ignoreResult,
    })),
  ),
);

/** --quick: each pool as Taskfleet runs by default (acknowledged after the call, results stored). */
export const QUICK_CELERY_VARIANTS = CELERY_VARIANTS.filter((v) => v.acksLate && !v.ignoreResult);

export interface CeleryInstall {
  python: string;
  versions: { python: string; celery: string; kombu: string; redis: string };
}

/** python3 can make a venv (Debian ships `venv`'s pip in python3-venv); as root, installs it if not. */
async function ensureVenvModule(progress: (line: string) => void): Promise<void> {
  const canMakeVenv = () =>
    run('python3', ['-c', 'import ensurepip, venv']).then(
      () => true,
      () => false,
    );
  await run('python3', ['--version']).catch(() => {
    throw new Error('bench: python3 is missing, and Celery runs on it: install Debian’s python3');
  });
  if (await canMakeVenv()) return;
  if (process.getuid?.() !== 0) {
    throw new Error('bench: python3 cannot make a venv for Celery: install Debian’s python3-venv (as root)');
  }
  progress('python3 cannot make a venv: apt-get install python3-venv');
  const env = { ...childEnv(), DEBIAN_FRONTEND: 'noninteractive' };
  await run('apt-get', ['update'], { env });
  await run('apt-get', ['install', '-y', '--no-install-recommends', 'python3-venv'], { env });
  if (!(await canMakeVenv())) throw new Error('bench: python3 still cannot make a venv after installing python3-venv');
}

/**
 * The venv with Celery, made on first use and reused while REQUIREMENTS stay the same: the list is
 * written into it last, so a venv whose install failed halfway is made again.
 */
export async function installCelery(progress: (line: string) => void): Promise<CeleryInstall> {
  const dir = join(cacheDir, 'bench', `celery-${CELERY_VERSION}`);
  const python = join(dir, 'bin', 'python');
  const stamp = join(dir, 'requirements.txt');
  const wanted = `${REQUIREMENTS.join('\n')}\n`;
  if ((await readFile(stamp, 'utf8').catch(() => '')) !== wanted) {
    await ensureVenvModule(progress);
    progress(`installing ${REQUIREMENTS.join(' ')} into ${dir}`);
    await rm(dir, { recursive: true, force: true });
    await run('python3', ['-m', 'venv', dir]);
    await run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...REQUIREMENTS], {
      env: childEnv(),
      maxBuffer: 1 << 24,
    });
    await writeFile(stamp, wanted);
  }
  const { stdout } = await run(python, [
    '-c',
    'import json, platform, celery, kombu, redis; print(json.dumps({"python": platform.python_version(), ' +
      '"celery": celery.__version__, "kombu": kombu.__version__, "redis": redis.__version__}))',
  ]);
  return { python, versions: JSON.parse(stdout) as CeleryInstall['versions'] };
}

/** Where a Celery app sends and stores: Redis databases of their own on the bench's server. */
export interface CeleryTarget {
  host: string;
  port: number;
  brokerDb: number;
  backendDb: number;
  queue: string;
  acksLate: boolean;
  ignoreResult: boolean;
}

function envFor(target: CeleryTarget, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const url = (db: number) => `redis://${target.host}:${target.port}/${db}`;
  return {
    ...childEnv(),
    BENCH_BROKER: url(target.brokerDb),
    BENCH_BACKEND: url(target.backendDb),
    BENCH_QUEUE: target.queue,
    BENCH_ACKS_LATE: target.acksLate ? '1' : '0',
    BENCH_IGNORE_RESULT: target.ignoreResult ? '1' : '0',
    ...extra,
  };
}

/** Runs enqueue.py: `bulk` (group().apply_async() per chunk) or `one` (apply_async in a loop). */
export async function enqueue(
  install: CeleryInstall,
  target: CeleryTarget,
  mode: 'bulk' | 'one',
  count: number,
  chunk = 1,
): Promise<{ seconds: number; cpuMicros: number }> {
  const { stdout } = await run(install.python, ['enqueue.py', mode, String(count), String(chunk)], {
    cwd: HERE,
    env: envFor(target),
    maxBuffer: 1 << 20,
  });
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as { seconds: number; cpuMicros: number };
}

type Done = Extract<ChildMessage, { type: 'done' }>;

export interface CeleryWorker {
  /** Consuming (Celery's worker_ready). */
  ready: Promise<void>;
  /** The last of `tasks` calls completed; `cpuMicros` and `rssPeak` are of its processes together. */
  done: Promise<Done>;
  /** Stops it (its stdin closes: it kills its process group) and waits until it has gone. */
  stop(): Promise<void>;
}

/**
 * Starts one Celery worker process (`celery worker`, its pool processes under it with prefork),
 * without gossip, mingle or heartbeats: a lone worker has no peers to hear from. Its logs are kept
 * and shown only if it fails.
 */
export function startWorker(
  install: CeleryInstall,
  target: CeleryTarget,
  variant: CeleryVariant,
  tasks: number,
  timeoutMs: number,
): CeleryWorker {
  const args = ['-m', 'celery', '-A', 'tasks', 'worker', '--pool', variant.pool, '--concurrency'];
  args.push(String(variant.concurrency), '--without-gossip', '--without-mingle', '--without-heartbeat');
  args.push('--loglevel', 'WARNING', '--hostname', `${variant.label}@%h`);
  const child = spawn(install.python, args, {
    cwd: HERE,
    env: envFor(target, { BENCH_ROLE: 'worker', BENCH_TASKS: String(tasks) }),
    stdio: ['pipe', 'ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let logs = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    logs = (logs + text).slice(-20_000);
  });
  const ready = Promise.withResolvers<void>();
  const done = Promise.withResolvers<Done>();
  const fail = (error: Error) => {
    ready.reject(error);
    done.reject(error);
  };
  const timer = setTimeout(() => {
    fail(new Error(`${variant.label} did not finish within ${timeoutMs / 1000} s\n${logs}`));
    child.stdin?.end();
  }, timeoutMs);
  const reports = child.stdio[3];
  if (!reports) throw new Error('the Celery worker has no report pipe');
  createInterface({ input: reports as NodeJS.ReadableStream }).on('line', (line) => {
    const message = JSON.parse(line) as ChildMessage;
    if (message.type === 'ready') ready.resolve();
    else if (message.type === 'done') {
      clearTimeout(timer);
      done.resolve(message);
    }
  });
  let stopping = false;
  const exited = once(child, 'exit').then(([code, signal]) => {
    clearTimeout(timer);
    if (!stopping) fail(new Error(`${variant.label} exited with ${signal ?? `code ${code}`}\n${logs}`));
  });
  ready.promise.catch(() => {});
  done.promise.catch(() => {});
  return {
    ready: ready.promise,
    done: done.promise,
    async stop() {
      stopping = true;
      child.stdin?.end();
      await exited;
    },
  };
}
