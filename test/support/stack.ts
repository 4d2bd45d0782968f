/**
 * How a test reaches the real components:
 *
 *   const { url } = await useRedis();
 *   const { brokers } = await useKafka();
 *   const { kubeconfig } = await useKube();
 *
 * Under `make test-*` the stack is started once for the whole run by global-setup.ts, which hands
 * its details to every test process through TASKFLEET_STACK_FILE. A test file run on its own
 * (`node --test test/integration/x.test.ts`) starts a private stack instead, owned by its process.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import type { Socket } from 'node:net';
import { createInterface } from 'node:readline';
import type { KafkaEndpoint } from '../stack/kafka.ts';
import type { KubeEndpoint } from '../stack/kube.ts';
import type { RedisEndpoint } from '../stack/redis.ts';
import { type HelmEndpoint, parseComponents, type StackComponent, type StackInfo } from '../stack/stack.ts';
import type { SupervisorMessage } from '../stack/supervisor.ts';

export const stackFileVariable = 'TASKFLEET_STACK_FILE';
const supervisorPath = new URL('../stack/supervisor.ts', import.meta.url).pathname;

export interface OwnedStack {
  info: StackInfo;
  supervisor: ChildProcess;
  /** Closes the supervisor's input and waits for it to finish tearing down. */
  stop(): Promise<void>;
}

/**
 * Spawns a supervisor owned by this process through a pipe on its standard input, and waits until
 * the stack is up. When this process exits in any way, the pipe closes and the stack is torn down.
 */
export async function spawnStack(components: readonly StackComponent[]): Promise<OwnedStack> {
  const supervisor = spawn(process.execPath, [supervisorPath, '--json', ...components], {
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => supervisor.once('exit', () => resolve()));
  const lines = createInterface({ input: supervisor.stdout! });
  const message = await new Promise<SupervisorMessage>((resolve, reject) => {
    lines.once('line', (line) => resolve(JSON.parse(line) as SupervisorMessage));
    supervisor.once('exit', (code) =>
      reject(new Error(`the stack supervisor exited with code ${code} before reporting`)),
    );
  });
  lines.close();
  supervisor.stdout?.destroy(); // it says nothing more; an open pipe would keep this process alive
  if ('error' in message) throw new Error(`the test stack did not start: ${message.error}`);
  return {
    info: message.ready,
    supervisor,
    async stop() {
      supervisor.stdin?.end();
      await exited;
    },
  };
}

let stack: Promise<StackInfo> | undefined;

/** The running stack: the run's shared one, or one started for this process alone. */
export function useStack(): Promise<StackInfo> {
  stack ??= (async () => {
    const file = process.env[stackFileVariable];
    if (file) return JSON.parse(await readFile(file, 'utf8')) as StackInfo;
    const owned = await spawnStack(parseComponents(process.env.TASKFLEET_STACK_COMPONENTS));
    // Neither the pipe nor the child may keep this process alive; its exit is what stops the stack.
    owned.supervisor.unref();
    (owned.supervisor.stdin as Socket).unref();
    return owned.info;
  })();
  return stack;
}

async function component<T>(name: StackComponent, pick: (info: StackInfo) => T | undefined): Promise<T> {
  const info = await useStack();
  const endpoint = pick(info);
  if (endpoint === undefined) {
    throw new Error(`this run's stack has no ${name}: include it in TASKFLEET_STACK_COMPONENTS (or unset it)`);
  }
  return endpoint;
}

export const useRedis = (): Promise<RedisEndpoint> => component('redis', (i) => i.redis);
export const useKafka = (): Promise<KafkaEndpoint> => component('kafka', (i) => i.kafka);
export const useKube = (): Promise<KubeEndpoint> => component('kube', (i) => i.kube);
export const useHelm = (): Promise<HelmEndpoint> => component('helm', (i) => i.helm);
