/**
 * Memory floors: the RSS of a Node process that only loads what the operator loads, step by step, with
 * given NODE_OPTIONS. It says how much of the operator's RSS is there before a single TaskQueue, and
 * what each dependency costs.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { deployedEnv, kubernetesModule, operatorModule } from './deployed.ts';

const run = promisify(execFile);
const operatorDir = new URL('../../operator/', import.meta.url).pathname;
const operatorSource = new URL('../../operator/src/runtime/operator.ts', import.meta.url).pathname;

export interface Floor {
  what: string;
  rss: number;
}

const steps: { what: string; imports: string[]; source?: boolean }[] = [
  { what: 'Node alone', imports: [] },
  { what: '+ ioredis, prom-client', imports: ['ioredis', 'prom-client'] },
  {
    what: '+ `@kubernetes/client-node` (the package root)',
    imports: ['ioredis', 'prom-client', '@kubernetes/client-node'],
  },
  {
    what: "+ only KubeConfig's own file (`@kubernetes/client-node/dist/config.js`)",
    imports: ['ioredis', 'prom-client', '@kubernetes/client-node/dist/config.js'],
  },
  {
    what: '+ KubeConfig and makeInformer tree-shaken from the root (`operator/dist/runtime/kubernetes.js`, what the operator loads)',
    imports: ['ioredis', 'prom-client', kubernetesModule],
  },
  { what: 'the compiled operator (`operator/dist`, as deployed)', imports: [operatorModule] },
  {
    what: 'for comparison: the operator from its sources (`--conditions=source`, TypeScript stripped on load)',
    imports: [operatorSource],
    source: true,
  },
];

/** RSS after each step's imports and a second of quiet, in a fresh process each. */
export async function measureFloors(nodeOptions: string): Promise<Floor[]> {
  const floors: Floor[] = [];
  for (const step of steps) {
    const code = `${step.imports.map((m) => `await import(${JSON.stringify(m)});`).join(' ')}
setTimeout(() => console.log(process.memoryUsage().rss), 1000);`;
    const options = step.source ? `${nodeOptions} --conditions=source`.trim() : nodeOptions;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', code], {
      cwd: operatorDir,
      env: deployedEnv(options),
    });
    floors.push({ what: step.what, rss: Number(stdout.trim()) });
  }
  return floors;
}
