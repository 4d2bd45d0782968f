/**
 * The operator as a deployment runs it: the compiled `operator/dist/main.js` (the image's
 * `taskfleet-operator`), with the Node flags the Helm chart passes (`nodeOptions` in
 * charts/taskfleet/values.yaml, set as NODE_OPTIONS) and the image's NODE_ENV. Never the TypeScript
 * sources: stripping types on load costs memory and start time that a deployed operator does not pay.
 */
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parse } from 'yaml';

const root = new URL('../../', import.meta.url).pathname;

/** The compiled entry point, as `taskfleet-operator` links it. */
export const operatorMain = join(root, 'operator/dist/main.js');
/** The compiled module that holds the whole operator (what main.js loads, without starting anything). */
export const operatorModule = join(root, 'operator/dist/runtime/operator.js');
/**
 * What the operator runs of `@kubernetes/client-node`: `npm run build` bundles it, tree-shaken, over
 * what `tsc` emits there (a re-export of the package root; operator/src/runtime/bundle-kubernetes.ts).
 */
export const kubernetesModule = join(root, 'operator/dist/runtime/kubernetes.js');

/** What `helm install` with the chart's defaults puts in the operator container's NODE_OPTIONS. */
export function chartNodeOptions(): string {
  const values = parse(readFileSync(join(root, 'charts/taskfleet/values.yaml'), 'utf8')) as { nodeOptions?: string };
  return values.nodeOptions ?? '';
}

/**
 * The environment of a deployed operator process: this one's, less NODE_OPTIONS (the tests'
 * `--conditions=source` would make `taskfleet` resolve to its sources), plus the image's NODE_ENV and
 * the given NODE_OPTIONS when there are any.
 */
export function deployedEnv(nodeOptions: string, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const { NODE_OPTIONS: _dropped, ...env } = process.env;
  return { ...env, NODE_ENV: 'production', ...(nodeOptions ? { NODE_OPTIONS: nodeOptions } : {}), ...extra };
}

/** Every file under `dir` (recursively) whose name passes `keep`. */
function filesUnder(dir: string, keep: (name: string) => boolean): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && keep(entry.name))
    .map((entry) => join(entry.parentPath, entry.name));
}

/**
 * Refuses (throws, saying what to run) when a package's build is missing or older than its sources:
 * each `src/**.ts` that is not a test must have its `dist/**.js`, and none may be newer than the package's
 * `tsconfig.tsbuildinfo` (what `tsc -b` itself compares: it leaves a `.js` whose emit did not change
 * untouched, but stamps the build info); each Lua script must have an identical copy in dist/; and the
 * operator's `@kubernetes/client-node` must be the bundle `npm run build` makes, not tsc's re-export.
 */
export function assertBuilt(): void {
  const stale: string[] = [];
  for (const pkg of ['worker', 'operator']) {
    const src = join(root, pkg, 'src');
    const dist = join(root, pkg, 'dist');
    const info = join(root, pkg, 'tsconfig.tsbuildinfo');
    let builtAt = 0;
    try {
      builtAt = statSync(info).mtimeMs;
    } catch {
      stale.push(`${pkg} was never built (no ${relative(root, info)})`);
      continue;
    }
    for (const source of filesUnder(src, (name) => name.endsWith('.ts') && !name.endsWith('.test.ts'))) {
      const built = join(dist, relative(src, source).replace(/\.ts$/, '.js'));
      if (!existsSync(built)) stale.push(`${relative(root, built)} is missing`);
      else if (statSync(source).mtimeMs > builtAt) stale.push(`${relative(root, source)} changed since the build`);
    }
    for (const script of filesUnder(src, (name) => name.endsWith('.lua'))) {
      const copy = join(dist, relative(src, script));
      if (!existsSync(copy) || !readFileSync(copy).equals(readFileSync(script))) {
        stale.push(`${relative(root, copy)} is not a copy of ${relative(root, script)}`);
      }
    }
  }
  if (
    existsSync(kubernetesModule) &&
    /from\s*["']@kubernetes\/client-node["']/.test(readFileSync(kubernetesModule, 'utf8'))
  ) {
    stale.push(`${relative(root, kubernetesModule)} is tsc's re-export of the package root, not the bundle`);
  }
  if (stale.length > 0) {
    const shown = stale.slice(0, 5).join('; ') + (stale.length > 5 ? `; and ${stale.length - 5} more` : '');
    throw new Error(
      `the benchmark runs the compiled operator, as a deployment does, and the build is not current: ${shown}. ` +
        'Run `npm run build` at the repository root, then the benchmark again.',
    );
  }
}
