import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KafkaEndpoint, startKafka } from './kafka.ts';
import { type KubeEndpoint, startKube } from './kube.ts';
import { type Service, StackError } from './process.ts';
import { type RedisEndpoint, startRedis } from './redis.ts';
import { cachePath, versions } from './versions.ts';

export type StackComponent = 'redis' | 'kafka' | 'kube' | 'helm';
export const allComponents: readonly StackComponent[] = ['redis', 'kafka', 'kube', 'helm'];

export interface HelmEndpoint {
  bin: string;
  version: string;
  /** Keeps Helm's cache, config and data inside the stack's directory. */
  env: Record<string, string>;
}

/** Connection details of a running stack: what tests receive. */
export interface StackInfo {
  /** The stack's temporary directory: logs, data, certificates. Removed at teardown. */
  dir: string;
  /** The process that owns the stack; when it ends, the stack ends. */
  pid: number;
  redis?: RedisEndpoint;
  kafka?: KafkaEndpoint;
  kube?: KubeEndpoint;
  helm?: HelmEndpoint;
  node: string;
  /** Every process of the stack, for tests that prove none outlives it. */
  processes: { name: string; pid: number }[];
}

export interface RunningStack {
  info: StackInfo;
  /** Stops every process, then removes the directory. Safe to call twice. */
  stop(): Promise<void>;
}

export const stackDirPrefix = 'taskfleet-stack-';
const here = new URL('.', import.meta.url).pathname;

/** Parses a list such as `redis,kube`; an unknown name is an error that lists the known ones. */
export function parseComponents(list: string | undefined): StackComponent[] {
  if (list === undefined || list.trim() === '' || list === 'all') return [...allComponents];
  const names = list.split(/[\s,]+/).filter(Boolean);
  for (const name of names) {
    if (!(allComponents as readonly string[]).includes(name)) {
      throw new StackError(`unknown stack component '${name}': choose from ${allComponents.join(', ')}`);
    }
  }
  return names as StackComponent[];
}

/** Runs build.sh for what `components` need; cached builds return at once. */
export async function buildComponents(components: readonly StackComponent[]): Promise<void> {
  const targets: string[] = [];
  if (components.includes('kafka')) targets.push('kafka');
  if (components.includes('kube')) targets.push('etcd', 'kube');
  if (components.includes('helm')) targets.push('helm');
  if (targets.length === 0) return;
  const build = spawn('bash', [join(here, 'build.sh'), ...targets], { stdio: ['ignore', 'inherit', 'inherit'] });
  const [code] = await once(build, 'exit');
  if (code !== 0) throw new StackError(`building the stack failed (build.sh ${targets.join(' ')} exited ${code})`);
}

/**
 * Starts the components (in parallel) in a new temporary directory. If any fails to start, the others
 * are stopped and the directory removed before the error is thrown.
 */
export async function startStack(components: readonly StackComponent[]): Promise<RunningStack> {
  await sweepAbandonedStacks();
  await buildComponents(components);
  const dir = await mkdtemp(join(tmpdir(), stackDirPrefix));
  await writeFile(join(dir, 'owner.pid'), String(process.pid));
  const services: Service[] = [];
  let stopped: Promise<void> | undefined;
  const stop = () => {
    stopped ??= (async () => {
      // Reverse start order within each component: the controller manager before the API server before etcd.
      await Promise.all(services.toReversed().map((service) => service.stop()));
      await rm(dir, { recursive: true, force: true });
    })();
    return stopped;
  };
  const info: StackInfo = { dir, pid: process.pid, node: process.version, processes: [] };
  const track = async <T>(start: Promise<{ endpoint: T; services: Service[] }>): Promise<T> => {
    const started = await start;
    services.push(...started.services);
    return started.endpoint;
  };
  const starts: Promise<unknown>[] = [];
  if (components.includes('redis')) starts.push(track(startRedis(dir)).then((e) => (info.redis = e)));
  if (components.includes('kafka')) starts.push(track(startKafka(dir)).then((e) => (info.kafka = e)));
  if (components.includes('kube')) starts.push(track(startKube(dir)).then((e) => (info.kube = e)));
  if (components.includes('helm')) starts.push(helm(dir).then((e) => (info.helm = e)));
  const results = await Promise.allSettled(starts);
  const failure = results.find((r) => r.status === 'rejected');
  if (failure) {
    await stop();
    throw failure.reason;
  }
  info.processes = services.map(({ name, pid }) => ({ name, pid }));
  // A component that dies while the stack runs fails every test after it with a vague "connection
  // refused": say which one died and why, on the stderr a test run shows.
  for (const service of services) {
    service.exited.catch((error: Error) => {
      if (stopped === undefined) console.error(`stack: ${error.message}`);
    });
  }
  await writeFile(join(dir, 'stack.json'), JSON.stringify(info, null, 2));
  return { info, stop };
}

async function helm(dir: string): Promise<HelmEndpoint> {
  const home = join(dir, 'helm');
  const env = {
    HELM_CACHE_HOME: join(home, 'cache'),
    HELM_CONFIG_HOME: join(home, 'config'),
    HELM_DATA_HOME: join(home, 'data'),
  };
  await Promise.all(Object.values(env).map((d) => mkdir(d, { recursive: true })));
  return { bin: join(cachePath('helm'), 'bin', 'helm'), version: versions.HELM_VERSION, env };
}

/**
 * Removes the directories of stacks whose owner died without tearing down (SIGKILL of the owner itself).
 * Their processes are already gone: each was started with a parent-death signal.
 */
export async function sweepAbandonedStacks(): Promise<string[]> {
  const swept: string[] = [];
  for (const name of await readdir(tmpdir())) {
    if (!name.startsWith(stackDirPrefix)) continue;
    const dir = join(tmpdir(), name);
    const owner = Number(await readFile(join(dir, 'owner.pid'), 'utf8').catch(() => 'NaN'));
    if (Number.isInteger(owner) ? isAlive(owner) : await isYoung(dir)) continue;
    await rm(dir, { recursive: true, force: true });
    swept.push(dir);
  }
  return swept;
}

/** A directory without an owner yet may be one that another stack is creating this instant. */
async function isYoung(dir: string): Promise<boolean> {
  const info = await stat(dir).catch(() => undefined);
  return info !== undefined && Date.now() - info.mtimeMs < 60_000;
}

/** Whether a process runs; a zombie (exited, not yet reaped by its parent) does not. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false; // gone between the two checks
  }
}
