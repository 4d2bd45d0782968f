/**
 * `node --test --test-global-setup=test/support/global-setup.ts`: one stack for the whole run.
 * TASKFLEET_STACK_COMPONENTS (e.g. `redis,kube`) narrows what starts; by default everything does.
 */
import { parseComponents } from '../stack/stack.ts';
import { type OwnedStack, spawnStack, stackFileVariable } from './stack.ts';

let stack: OwnedStack | undefined;

export async function globalSetup(): Promise<void> {
  const started = Date.now();
  stack = await spawnStack(parseComponents(process.env.TASKFLEET_STACK_COMPONENTS));
  // Test files run in child processes, which inherit this environment.
  process.env[stackFileVariable] = `${stack.info.dir}/stack.json`;
  console.error(`test stack up in ${((Date.now() - started) / 1000).toFixed(1)}s: ${stack.info.dir}`);
}

export async function globalTeardown(): Promise<void> {
  await stack?.stop();
}
