import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { useHelm, useKube } from './stack.ts';

const run = promisify(execFile);

/**
 * Runs the stack's Helm against the stack's cluster, with its cache, config and data in the stack's
 * directory; returns stdout, or throws with everything Helm said (`helm lint` reports on stdout).
 */
export async function helm(args: readonly string[]): Promise<string> {
  const [bin, kube] = [await useHelm(), await useKube()];
  try {
    return (await run(bin.bin, args, { env: { ...process.env, ...bin.env, KUBECONFIG: kube.kubeconfig } })).stdout;
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    const said = [stdout?.trim(), stderr?.trim()].filter(Boolean).join('\n');
    throw new Error(`helm ${args.join(' ')}: ${said || (error as Error).message}`);
  }
}
