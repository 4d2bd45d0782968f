/**
 * Builds the console's page into dist/console/page (`npm run build` runs it): main.ts (with uPlot, the
 * graphs' library) bundled by esbuild into app.js, app.css (with uPlot's stylesheet) into app.css, beside
 * index.html. Nothing is fetched at run time.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { build } from 'esbuild';

const here = new URL('./', import.meta.url);
const out = new URL('../../../dist/console/page/', import.meta.url);
await mkdir(out, { recursive: true });
const bundle = (entry: string, outfile: string) =>
  build({
    entryPoints: [new URL(entry, here).pathname],
    bundle: true,
    format: 'esm',
    target: 'es2022',
    minify: true,
    outfile: new URL(outfile, out).pathname,
    logLevel: 'warning',
  });
await bundle('main.ts', 'app.js');
await bundle('app.css', 'app.css');
await copyFile(new URL('index.html', here), new URL('index.html', out));
