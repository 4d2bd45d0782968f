/**
 * Memory floors: the RSS of a Node process that only loads what the operator loads, step by step, with
 * given Node flags. It says how much of the operator's RSS is there before a single TaskQueue.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);
const operatorDir = new URL('../../operator/', import.meta.url).pathname;
const operatorModule = new URL('../../operator/src/runtime/operator.ts', import.meta.url).href;

export interface Floor {
  what: string;
  rss: number;
}

const steps: { what: string; imports: string[] }[] = [
  { what: 'Node alone', imports: [] },
  { what: '+ ioredis, prom-client', imports: ['ioredis', 'prom-client'] },
  { what: '+ @kubernetes/client-node', imports: ['ioredis', 'prom-client', '@kubernetes/client-node'] },
  { what: "the operator's modules from source (TypeScript stripped on load)", imports: [operatorModule] },
];

/** RSS after each step's imports and a second of quiet, in a fresh process each. */
export async function measureFloors(nodeFlags: readonly string[]): Promise<Floor[]> {
  const floors: Floor[] = [];
  for (const step of steps) {
    const code = `${step.imports.map((m) => `await import(${JSON.stringify(m)});`).join(' ')}
setTimeout(() => console.log(process.memoryUsage().rss), 1000);`;
    const { stdout } = await run(process.execPath, [...nodeFlags, '--input-type=module', '-e', code], {
      cwd: operatorDir,
      env: { ...process.env, NODE_OPTIONS: '--conditions=source' },
    });
    floors.push({ what: step.what, rss: Number(stdout.trim()) });
  }
  return floors;
}
