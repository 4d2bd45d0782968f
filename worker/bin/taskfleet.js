#!/usr/bin/env node
// The `taskfleet` command. Plain JavaScript that any Node can parse, so that it can say which Node the
// CLI needs before loading it: the CLI is compiled for Node 24 and runs the tasks module (TypeScript)
// with Node's own type stripping. It loads the CLI through the package's own `taskfleet/cli` export,
// under the same conditions as the tasks module's `import 'taskfleet'`: one copy of the SDK.
import { readFileSync } from 'node:fs';

const manifest = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
/** The oldest Node it runs on, from the package's `engines` (`>=24.11.0`). */
const MINIMUM = /(\d+)\.(\d+)/.exec(manifest.engines.node).slice(1).map(Number);

function tooOld(version) {
  const [major, minor] = version.split('.').map(Number);
  return major < MINIMUM[0] || (major === MINIMUM[0] && minor < MINIMUM[1]);
}

if (tooOld(process.versions.node)) {
  process.stderr.write(
    `taskfleet: needs Node ${MINIMUM.join('.')} or newer, and this is Node ${process.versions.node} (${process.execPath}). ` +
      'Install Node 24 and put it first on PATH; in the Taskfleet repository, `npx taskfleet …` runs it on the Node 24 ' +
      'that npm installed into node_modules.\n',
  );
  process.exit(1);
}

import('taskfleet/cli').then(
  async ({ main }) => {
    const code = await main(process.argv.slice(2));
    if (code >= 0) process.exit(code);
  },
  (error) => {
    if (error?.code === 'ERR_MODULE_NOT_FOUND' && String(error.message).includes('/dist/')) {
      process.stderr.write(
        `taskfleet: ${manifest.name} ${manifest.version} is not built (no dist/): run \`npm run build\` in the repository first.\n`,
      );
      process.exit(1);
    }
    throw error;
  },
);
