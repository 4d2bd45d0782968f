/**
 * Builds the console's page into dist/console/page (`npm run build` runs it): main.ts bundled with
 * esbuild into app.js, beside index.html and app.css. Nothing is fetched at run time.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { build } from 'esbuild';

const here = new URL('./', import.meta.url);
const out = new URL('../../../dist/console/page/', import.meta.url);
await mkdir(out, { recursive: true });
await build({
  entryPoints: [new URL('main.ts', here).pathname],
  bundle: true,
  format: 'esm',
  target: 'es2022',
  minify: true,
  outfile: new URL('app.js', out).pathname,
  logLevel: 'warning',
});
for (const file of ['index.html', 'app.css']) await copyFile(new URL(file, here), new URL(file, out));
