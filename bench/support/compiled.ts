import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The benchmarks measure Taskfleet as users run it: the compiled package (`taskfleet` → worker/dist),
 * not its TypeScript sources stripped on load. Tests and tools run the sources through the `source`
 * export condition (the Makefile exports NODE_OPTIONS=--conditions=source), so a bench must make sure
 * it did not inherit that condition, and that dist/ was built from the sources as they are.
 */
const WORKER = fileURLToPath(new URL('../../worker/', import.meta.url));
const DIST_ENTRY = join(WORKER, 'dist', 'index.js');
const REBUILD = 'run `npm run build` (or `make build`) first';

/** Where `taskfleet` resolves from the bench, under the conditions this process runs with. */
function resolvedEntry(): string {
  return fileURLToPath(import.meta.resolve('taskfleet'));
}

/**
 * Throws unless `taskfleet` resolves to worker/dist. Every process that loads our package calls it,
 * children included: a child started with `--conditions=source` would measure the sources.
 */
export function assertRunsDist(): void {
  const entry = resolvedEntry();
  if (entry !== DIST_ENTRY) {
    throw new Error(
      `bench: 'taskfleet' resolves to ${entry}, not the compiled ${DIST_ENTRY}: Node runs with --conditions=source ` +
        `(NODE_OPTIONS=${JSON.stringify(process.env.NODE_OPTIONS ?? '')}, flags ${JSON.stringify(process.execArgv.join(' '))}). ` +
        'Run the bench without it, e.g. `NODE_OPTIONS= node bench/worker.ts`; `make bench-worker` does.',
    );
  }
}

/** The newest file under `dir` (mtime), skipping what `skip` names. */
function newest(dir: string, skip: (name: string) => boolean = () => false): { path: string; mtimeMs: number } {
  let best = { path: dir, mtimeMs: 0 };
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || skip(entry.name)) continue;
    const path = join(entry.parentPath, entry.name);
    const { mtimeMs } = statSync(path);
    if (mtimeMs > best.mtimeMs) best = { path, mtimeMs };
  }
  return best;
}

/**
 * Throws unless the package resolves to worker/dist (assertRunsDist) and dist/ is at least as new as
 * every source it is built from. Unit tests are not built, so they do not count. A build that finds
 * nothing to re-emit still touches the build info, so it counts as the build's time.
 */
export function assertCompiledAndFresh(): void {
  assertRunsDist();
  let built: { path: string; mtimeMs: number };
  try {
    statSync(DIST_ENTRY);
    const dist = newest(join(WORKER, 'dist'));
    const info = join(WORKER, 'tsconfig.tsbuildinfo');
    const infoMtime = statSync(info, { throwIfNoEntry: false })?.mtimeMs ?? 0;
    built = infoMtime > dist.mtimeMs ? { path: info, mtimeMs: infoMtime } : dist;
  } catch {
    throw new Error(`bench: ${DIST_ENTRY} is missing: the bench measures the compiled package; ${REBUILD}`);
  }
  const source = newest(join(WORKER, 'src'), (name) => name.endsWith('.test.ts'));
  if (source.mtimeMs > built.mtimeMs) {
    const at = (ms: number) => new Date(ms).toISOString();
    throw new Error(
      `bench: worker/dist is older than worker/src (${source.path} changed at ${at(source.mtimeMs)}, ` +
        `after the last build at ${at(built.mtimeMs)}); ${REBUILD}`,
    );
  }
}

/** `--conditions=source` in every spelling Node accepts: `--conditions=X`, `--conditions X`, `-C X`, `-C=X`. */
function withoutSourceCondition(options: string): string {
  const kept: string[] = [];
  const tokens = options.split(/\s+/).filter(Boolean);
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i] as string;
    if (token === '--conditions=source' || token === '-C=source') continue;
    if ((token === '--conditions' || token === '-C') && tokens[i + 1] === 'source') {
      i++;
      continue;
    }
    kept.push(token);
  }
  return kept.join(' ');
}

/**
 * The environment for the bench's child processes: this one's, with the `source` condition taken out
 * of NODE_OPTIONS, so that no child loads Taskfleet's sources in place of dist/.
 */
export function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  const options = withoutSourceCondition(env.NODE_OPTIONS ?? '');
  if (options) env.NODE_OPTIONS = options;
  else delete env.NODE_OPTIONS;
  return env;
}
