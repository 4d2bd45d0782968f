import { resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Taskfleet } from '../app.ts';
import { TaskfleetError } from '../errors.ts';

/** Imports the module `--app` names and finds the app it exports (default, `app`, or any Taskfleet export). */
export async function loadApp(module: string): Promise<Taskfleet> {
  const url = pathToFileURL(resolve(process.cwd(), module)).href;
  let exports: Record<string, unknown>;
  try {
    exports = (await import(url)) as Record<string, unknown>;
  } catch (error) {
    throw new TaskfleetError('APP_IMPORT', `could not import --app ${module}: ${importFailure(error)}`, {
      cause: error,
    });
  }
  const isApp = (x: unknown): x is Taskfleet =>
    x instanceof Taskfleet ||
    (typeof x === 'object' && x !== null && 'tasks' in x && typeof (x as Taskfleet).configure === 'function');
  const app = [exports.default, exports.app, ...Object.values(exports)].find(isApp);
  if (!app) {
    throw new TaskfleetError(
      'APP_EXPORT',
      `--app ${module} exports no Taskfleet app: add \`export const app = new Taskfleet({...})\``,
    );
  }
  return app;
}

/** This package's own directory: frames in it are the SDK's, not the tasks module's. */
const PACKAGE_DIR = fileURLToPath(new URL('../..', import.meta.url));

/**
 * What went wrong importing a tasks module, with where, on one line: `file:line:column: message` for a
 * syntax error (its stack starts with Node's code frame: `file:line`, then the source, marked), `message (at file:line:column)` for a throw (its first frame outside Node and this package).
 * TypeScript that type stripping cannot erase gets the hint of what to write instead.
 */
export function importFailure(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const lines = (error.stack ?? '').split('\n');
  const file = /^(.+):(\d+)$/.exec(lines[0] ?? '');
  const column = codeFrameColumn(lines.slice(1, 40));
  let text: string;
  if (error instanceof SyntaxError && file && column !== undefined) {
    text = `${file[1]}:${file[2]}:${column}: ${error.message}`;
  } else {
    const where = throwSite(error.stack ?? '');
    text = where ? `${error.message} (at ${where})` : error.message;
  }
  const code = (error as { code?: unknown }).code;
  return code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX' ? `${text}. ${ERASABLE_ONLY}` : text;
}

/**
 * The column a code frame points at: under a one-line span, its caret (`      ^^^`); a span over
 * several lines marks them `  > ` instead, and starts where its first marked line does.
 */
function codeFrameColumn(frame: string[]): number | undefined {
  const caret = frame.find((l) => /^ *\^+\s*$/.test(l));
  if (caret !== undefined) return caret.indexOf('^') + 1;
  const marked = frame.find((l) => l.startsWith('  > '));
  return marked === undefined ? undefined : marked.slice(4).search(/\S|$/) + 1;
}

/** The first stack frame outside Node's internals and this package, as `file:line:column`. */
function throwSite(stack: string): string | undefined {
  for (const match of stack.matchAll(/^ {4}at (?:.*\()?(file:\/\/[^\s)]+?|\/[^\s)]+?):(\d+):(\d+)\)?$/gm)) {
    const [, location, line, column] = match as unknown as [string, string, string, string];
    const file = location.startsWith('file:') ? fileURLToPath(location) : location;
    if (file.startsWith(PACKAGE_DIR) || file.includes('/node_modules/')) continue;
    return `${file}:${line}:${column}`;
  }
  return undefined;
}

export const ERASABLE_ONLY =
  'Node runs a tasks module by stripping its types, so it may use only TypeScript that erases: write a ' +
  "const object for an enum (`const Color = { Red: 'red' } as const`), fields assigned in the constructor for " +
  'parameter properties, and modules for namespaces — TypeScript\'s `"erasableSyntaxOnly": true` finds them — ' +
  'or compile the module to JavaScript and pass that to --app.';
