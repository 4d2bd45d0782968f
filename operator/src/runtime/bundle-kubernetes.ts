/**
 * Build step (`npm run build`, after `tsc -b`): writes `operator/dist/runtime/kubernetes.js` — which
 * `tsc` emits as a re-export of the `@kubernetes/client-node` root — as a bundle of the same exports
 * that holds only the package's own code they reach. The package's dependencies (undici, js-yaml, …)
 * stay imports, loaded from node_modules as before, and an import of one whose bindings nothing reaches
 * is dropped. A deployed operator loads about 25 MB less (docs/benchmarks.md, "Operator").
 *
 *   node operator/src/runtime/bundle-kubernetes.ts
 */
import { build, type Plugin } from 'esbuild';

const packageName = '@kubernetes/client-node';

/** The package itself is bundled; every other package stays an import, dropped when nothing uses it. */
const onlyThePackage: Plugin = {
  name: 'only-the-package',
  setup(bundle) {
    bundle.onResolve({ filter: /^[^./]/ }, (args) => {
      const fromThePackage = args.importer.includes(`/node_modules/${packageName}/`);
      if (args.path === packageName && !fromThePackage) return undefined;
      return { external: true, sideEffects: false };
    });
  },
};

await build({
  entryPoints: [new URL('./kubernetes.ts', import.meta.url).pathname],
  outfile: new URL('../../dist/runtime/kubernetes.js', import.meta.url).pathname,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  banner: { js: `// ${packageName}, tree-shaken to these exports by operator/src/runtime/bundle-kubernetes.ts` },
  plugins: [onlyThePackage],
  logLevel: 'warning',
});
