/**
 * Request paths to the API server, built in one place. Every name is checked as the API server checks
 * it (a DNS-1123 subdomain, a namespace a DNS-1123 label) and encoded as its own path segment
 * (encodeURIComponent, as @kubernetes/client-node's generated clients do). Encoding alone is not enough:
 * `..` survives it and URL resolution collapses it, and the API server decodes `%2F` back into `/` before
 * routing. So, as client-go does, a name that is not valid is refused before anything is sent.
 */
import { TaskfleetError } from 'taskfleet';
import { type NameKind, nameProblem, quoteName } from '../api/names.ts';

/** A name the operator will not put into a request path. Its message names the resource, never a value read from a Secret. */
export class InvalidNameError extends TaskfleetError {
  override name = 'InvalidNameError';
  constructor(message: string) {
    super('INVALID_NAME', message);
  }
}

export interface ResourcePath {
  /** API group; '' for the core group (`/api/v1`). */
  group: string;
  version: string;
  /** The resource's plural, e.g. `deployments`. */
  resource: string;
  namespace?: string;
  name?: string;
  subresource?: string;
}

/** Group, version, resource and subresource come from the operator's code, not a spec; checked all the same. */
const FIXED_SEGMENT = /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/;

/**
 * `/api/v1/namespaces/<ns>/secrets/<name>`, `/apis/apps/v1/namespaces/<ns>/deployments/<name>/scale`, … —
 * or an InvalidNameError (code INVALID_NAME) naming what is wrong, before any request exists.
 */
export function apiPath(ref: ResourcePath): string {
  const { group, version, resource, namespace, name, subresource } = ref;
  for (const [what, segment] of [
    ['group', group],
    ['version', version],
    ['resource', resource],
    ['subresource', subresource],
  ] as const) {
    if (segment === undefined || (what === 'group' && segment === '')) continue;
    if (!FIXED_SEGMENT.test(segment))
      throw new InvalidNameError(`${what} ${quoteName(segment)} is not a valid path segment`);
  }
  if (subresource !== undefined && name === undefined) {
    throw new InvalidNameError(`subresource ${subresource} of ${resource} needs an object name`);
  }
  const parts = group === '' ? ['api', version] : ['apis', group, version];
  if (namespace !== undefined) parts.push('namespaces', segment('label', namespace, 'namespace'));
  parts.push(resource);
  if (name !== undefined) parts.push(segment('subdomain', name, `${resource} name`));
  if (subresource !== undefined) parts.push(subresource);
  return `/${parts.join('/')}`;
}

function segment(kind: NameKind, value: string, what: string): string {
  const problem = nameProblem(kind, value);
  if (problem) throw new InvalidNameError(`refusing to send a request for ${what} ${quoteName(value)}: it ${problem}`);
  return encodeURIComponent(value);
}

/**
 * The last check in front of every request, whoever built its path: refuses a path that URL resolution
 * or the API server would read differently from how it is written — a `.` or `..` segment, an empty one,
 * or an escape (`%2F` is decoded to `/` before routing). Paths from {@link apiPath} always pass.
 */
export function assertSafePath(path: string): void {
  const [pathname = ''] = path.split('?', 1);
  if (!pathname.startsWith('/')) throw new InvalidNameError(`request path ${quoteName(pathname)} is not absolute`);
  const segments = pathname.slice(1).split('/');
  for (const s of segments) {
    if (s === '' || s === '.' || s === '..' || s.includes('%') || s.includes('\\')) {
      throw new InvalidNameError(
        `refusing to send a request to ${quoteName(pathname)}: a path segment is empty, "." or "..", or escaped`,
      );
    }
  }
}
