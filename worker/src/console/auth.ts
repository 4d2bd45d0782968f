/**
 * Who is asking, and what they may do (docs/console.md, "Security"). The console answers on loopback
 * without credentials only when none are configured; beyond loopback it refuses to start without them.
 * Three ways to sign in, any of which may be configured at once:
 * - bearer tokens (TASKFLEET_CONSOLE_TOKEN: admin, TASKFLEET_CONSOLE_READONLY_TOKEN: read-only);
 * - basic auth (TASKFLEET_CONSOLE_USERS: `name:role:password`, comma- or newline-separated);
 * - a trusted header set by an auth proxy in front (TASKFLEET_CONSOLE_TRUSTED_HEADER names it; the
 *   users in TASKFLEET_CONSOLE_ADMINS are admins, everyone else read-only).
 * Every action also needs the CSRF token of GET /api/session (see {@link csrfFor}).
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { isIP } from 'node:net';
import { ConfigError } from '../errors.ts';
import type { Role } from './contract.ts';

export interface Principal {
  user: string;
  role: Role;
  /** How they signed in. */
  via: 'loopback' | 'bearer' | 'basic' | 'proxy';
}

export interface AuthConfig {
  /** sha256 of each token → its role. */
  readonly tokens: ReadonlyMap<string, Role>;
  /** user → sha256 of the password, and the role. */
  readonly users: ReadonlyMap<string, { password: Buffer; role: Role }>;
  /** Lower-cased name of the header an auth proxy puts the user in. */
  readonly trustedHeader?: string;
  readonly admins: ReadonlySet<string>;
  /** Everyone is read-only, whatever their credentials say (TASKFLEET_CONSOLE_READONLY=true). */
  readonly readOnly: boolean;
  /** The key of the CSRF tokens: derived from the credentials, so replicas agree; random without any. */
  readonly csrfKey: Buffer;
}

const sha256 = (text: string): Buffer => createHash('sha256').update(text).digest();

/** The console's auth settings from the environment; a malformed entry is refused, naming the variable. */
export function authFromEnv(env: NodeJS.ProcessEnv = process.env): AuthConfig {
  const tokens = new Map<string, Role>();
  for (const [name, role] of [
    ['TASKFLEET_CONSOLE_TOKEN', 'admin'],
    ['TASKFLEET_CONSOLE_READONLY_TOKEN', 'readonly'],
  ] as const) {
    const token = env[name]?.trim();
    if (!token) continue;
    if (token.length < 16)
      throw new ConfigError(`${name} must be at least 16 characters (use \`openssl rand -hex 32\`)`);
    tokens.set(sha256(token).toString('hex'), role);
  }
  const users = new Map<string, { password: Buffer; role: Role }>();
  for (const line of (env.TASKFLEET_CONSOLE_USERS ?? '').split(/[,\n]/)) {
    const entry = line.trim();
    if (!entry) continue;
    const [user = '', role = '', ...rest] = entry.split(':');
    const password = rest.join(':');
    if (!user || (role !== 'admin' && role !== 'readonly') || !password) {
      // The entry holds a password: say which one is wrong by its position and user, never print it.
      throw new ConfigError(
        `TASKFLEET_CONSOLE_USERS: each entry must be name:role:password with role admin or readonly (entry for ${JSON.stringify(user)} is not)`,
      );
    }
    users.set(user, { password: sha256(password), role });
  }
  const header = env.TASKFLEET_CONSOLE_TRUSTED_HEADER?.trim().toLowerCase();
  if (header !== undefined && header !== '' && !/^[a-z0-9-]+$/.test(header)) {
    throw new ConfigError('TASKFLEET_CONSOLE_TRUSTED_HEADER must be a header name, such as X-Forwarded-User');
  }
  const admins = new Set(
    (env.TASKFLEET_CONSOLE_ADMINS ?? '')
      .split(',')
      .map((a) => a.trim())
      .filter(Boolean),
  );
  const readOnly = env.TASKFLEET_CONSOLE_READONLY === 'true' || env.TASKFLEET_CONSOLE_READONLY === '1';
  const material = [...tokens.keys(), ...[...users].map(([u, p]) => `${u}:${p.password.toString('hex')}`), header];
  const configured = tokens.size > 0 || users.size > 0 || Boolean(header);
  return {
    tokens,
    users,
    ...(header ? { trustedHeader: header } : {}),
    admins,
    readOnly,
    csrfKey: configured ? sha256(`taskfleet-console-csrf\n${material.join('\n')}`) : randomBytes(32),
  };
}

export function hasCredentials(auth: AuthConfig): boolean {
  return auth.tokens.size > 0 || auth.users.size > 0 || auth.trustedHeader !== undefined;
}

/** 127.0.0.1, ::1, localhost: only this machine can connect. */
export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  const bare = host.replace(/^\[|\]$/g, '');
  if (isIP(bare) === 4) return bare.startsWith('127.');
  return bare === '::1';
}

/** Refuses to serve beyond loopback with no way to sign in. */
export function assertBindable(host: string, auth: AuthConfig): void {
  if (isLoopback(host) || hasCredentials(auth)) return;
  throw new ConfigError(
    `the console would answer on ${host} with no sign-in: set TASKFLEET_CONSOLE_TOKEN, TASKFLEET_CONSOLE_USERS or TASKFLEET_CONSOLE_TRUSTED_HEADER (docs/console.md), or bind to 127.0.0.1`,
  );
}

const sameBytes = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

/**
 * The principal of a request, or undefined (401). `openLoopback`: no credentials are configured and the
 * console listens on loopback, so any request from this machine is the local admin — but only when it
 * names a loopback Host, so a web page cannot reach it through a DNS name rebound to 127.0.0.1.
 */
export function authenticate(req: IncomingMessage, auth: AuthConfig, openLoopback: boolean): Principal | undefined {
  const limit = (p: Principal): Principal => (auth.readOnly ? { ...p, role: 'readonly' } : p);
  if (openLoopback) {
    const host = (req.headers.host ?? '').replace(/:\d+$/, '');
    return isLoopback(host) ? limit({ user: 'local', role: 'admin', via: 'loopback' }) : undefined;
  }
  const authorization = req.headers.authorization ?? '';
  const [scheme = '', credentials = ''] = authorization.split(' ', 2);
  if (scheme.toLowerCase() === 'bearer' && auth.tokens.size > 0) {
    const role = auth.tokens.get(sha256(credentials.trim()).toString('hex'));
    return role ? limit({ user: role === 'admin' ? 'token' : 'readonly-token', role, via: 'bearer' }) : undefined;
  }
  if (scheme.toLowerCase() === 'basic' && auth.users.size > 0) {
    const decoded = Buffer.from(credentials, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = decoded.slice(0, colon);
    const known = colon > 0 ? auth.users.get(user) : undefined;
    // Compared even for an unknown user, so the time taken does not tell which users exist.
    const ok = sameBytes(known?.password ?? sha256(''), sha256(decoded.slice(colon + 1))) && known !== undefined;
    return ok && known ? limit({ user, role: known.role, via: 'basic' }) : undefined;
  }
  if (auth.trustedHeader) {
    const value = req.headers[auth.trustedHeader];
    const user = (Array.isArray(value) ? value[0] : value)?.trim();
    if (user) return limit({ user, role: auth.admins.has(user) ? 'admin' : 'readonly', via: 'proxy' });
  }
  return undefined;
}

/** The CSRF token of a principal: an HMAC of who they are, so it is the same on every replica and load. */
export function csrfFor(auth: AuthConfig, principal: Principal): string {
  return createHmac('sha256', auth.csrfKey)
    .update(`${principal.via}\n${principal.user}\n${principal.role}`)
    .digest('base64url');
}

/**
 * Whether a state-changing request is safe from cross-site forgery: JSON only (a form cannot send it
 * cross-site without a preflight), same origin when the browser says where it comes from, and the
 * principal's CSRF token in `x-taskfleet-csrf`.
 */
export function csrfProblem(req: IncomingMessage, auth: AuthConfig, principal: Principal): string | undefined {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json') return 'actions take a JSON body (content-type: application/json)';
  if (req.headers['sec-fetch-site'] === 'cross-site') return 'cross-site requests may not act';
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== 'null') {
    let host: string | undefined;
    try {
      host = new URL(origin).host;
    } catch {}
    if (host !== req.headers.host) return 'the request comes from another origin';
  } else if (origin === 'null') return 'the request comes from an opaque origin';
  const given = req.headers['x-taskfleet-csrf'];
  const expected = csrfFor(auth, principal);
  if (typeof given !== 'string' || !sameBytes(Buffer.from(given), Buffer.from(expected))) {
    return 'missing or wrong x-taskfleet-csrf header: take it from GET /api/session';
  }
  return undefined;
}
