import { readFile } from 'node:fs/promises';
import { relative } from 'node:path';
import { fileURLToPath } from 'node:url';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** A share of the busy CPU time (idle excluded), by function and by where the code lives. */
export interface ProfileSummary {
  busyMs: number;
  functions: { name: string; where: string; share: number }[];
  places: { where: string; share: number }[];
}

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

/** Where code lives, coarsely: our files by path, a package by name, Node's own internals as one. */
function place(url: string): string {
  if (!url) return '(native / V8)';
  if (url.startsWith('node:')) return 'node: internals';
  const path = url.startsWith('file:') ? fileURLToPath(url) : url;
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path)?.[1];
  if (pkg) return pkg;
  return relative(ROOT, path);
}

/** Self time by function from a `node --cpu-prof` profile: where the process itself spent its CPU. */
export async function summariseProfile(file: string, top = 15): Promise<ProfileSummary> {
  const profile = JSON.parse(await readFile(file, 'utf8')) as CpuProfile;
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; the time after it belongs to it.
  for (let i = 0; i < profile.samples.length; i++) {
    const id = profile.samples[i] as number;
    self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i + 1] ?? 0));
  }
  const byFunction = new Map<string, { name: string; where: string; us: number }>();
  const byPlace = new Map<string, number>();
  let busy = 0;
  for (const [id, us] of self) {
    const { functionName, url, lineNumber } = (nodes.get(id) as ProfileNode).callFrame;
    if (functionName === '(idle)') continue;
    busy += us;
    const where = url ? `${place(url)}:${lineNumber + 1}` : place(url);
    const key = `${functionName}@${where}`;
    const entry = byFunction.get(key) ?? { name: functionName || '(anonymous)', where, us: 0 };
    entry.us += us;
    byFunction.set(key, entry);
    const p = place(url);
    byPlace.set(p, (byPlace.get(p) ?? 0) + us);
  }
  return {
    busyMs: busy / 1000,
    functions: [...byFunction.values()]
      .sort((a, b) => b.us - a.us)
      .slice(0, top)
      .map(({ name, where, us }) => ({ name, where, share: us / busy })),
    places: [...byPlace.entries()]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 10)
      .map(([where, us]) => ({ where, share: us / busy })),
  };
}
