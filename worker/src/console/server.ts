/**
 * `taskfleet console`: the web console's HTTP server (docs/console.md). The page (built into
 * dist/console/page by `npm run build`), the JSON API it uses (described at /api/openapi.json), and
 * /api/events, which pushes each tick of the sampler (series.ts: the overview and a graph point) as
 * Server-Sent Events. Every action is checked (role, CSRF)
 * and written to the log with who did it.
 */
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { HistoryState } from '../history/entry.ts';
import type { HistoryQuery } from '../history/store.ts';
import type { Logger } from '../observe/logger.ts';
import { ApiError, apiErrorFrom, type ConsoleApi, checkedQueue } from './api.ts';
import {
  type AuthConfig,
  assertBindable,
  authenticate,
  csrfFor,
  csrfProblem,
  hasCredentials,
  isLoopback,
  type Principal,
} from './auth.ts';
import type { Session, TaskFilter } from './contract.ts';
import { openApiDocument } from './openapi.ts';
import { type SampleListener, Sampler, withRates } from './series.ts';

export interface ConsoleServerOptions {
  api: ConsoleApi;
  auth: AuthConfig;
  logger: Logger;
  host?: string;
  port?: number;
  /** How often the sampler reads the overview: the graphs' points and /api/events' pushes. @defaultValue 2000 ms */
  refreshMs?: number;
  /** Where the built page is. @defaultValue dist/console/page next to this module's package */
  pageDir?: string;
}

export interface ConsoleServer {
  readonly server: Server;
  /** http://host:port/ */
  readonly url: string;
  close(): Promise<void>;
}

/** The most event streams open at once; more get 503 (each costs a share of one overview read). */
const MAX_STREAMS = 200;
/** The largest request body read. */
const MAX_BODY = 256 * 1024;

const PAGE_FILES: Record<string, string> = {
  '/': 'index.html',
  '/index.html': 'index.html',
  '/app.js': 'app.js',
  '/app.css': 'app.css',
};
const TYPES: Record<string, string> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

const SECURITY_HEADERS = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
  'cache-control': 'no-store',
};

/** The built page: dist/console/page, whether this module runs from dist/ or from src/ (tests). */
function defaultPageDir(): string {
  const here = fileURLToPath(new URL('.', import.meta.url));
  return here.replace(/[/\\]src[/\\]console[/\\]?$/, '/dist/console/').replace(/[/\\]?$/, '/page/');
}

export async function startConsole(options: ConsoleServerOptions): Promise<ConsoleServer> {
  const { api, auth, logger } = options;
  const host = options.host ?? '127.0.0.1';
  const refreshMs = options.refreshMs ?? 2000;
  assertBindable(host, auth);
  const openLoopback = isLoopback(host) && !hasCredentials(auth);
  const pageDir = options.pageDir ?? defaultPageDir();
  const sampler = new Sampler(api, refreshMs, logger);
  const streams = new EventStreams(refreshMs);
  sampler.listen(streams.push);
  sampler.start();

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'application/json; charset=utf-8', ...headers });
    res.end(JSON.stringify(body));
  };
  const fail = (res: ServerResponse, error: ApiError) =>
    send(
      res,
      error.status,
      { error: { code: error.code, message: error.message } },
      error.status === 401 && auth.users.size > 0 ? { 'www-authenticate': 'Basic realm="taskfleet console"' } : {},
    );

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? '/', 'http://console.invalid');
    const path = url.pathname;
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      res.end('ok\n');
      return;
    }
    const page = PAGE_FILES[path];
    if (page && req.method === 'GET') {
      // The page is public (it holds no data); everything it shows comes through the API.
      const body = await readFile(`${pageDir}${page}`).catch(() => undefined);
      if (!body) {
        res.writeHead(503, { 'content-type': 'text/plain' });
        res.end('the console page is not built: run `npm run build`\n');
        return;
      }
      res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': TYPES[page.split('.').pop() as string] as string });
      res.end(body);
      return;
    }
    if (!path.startsWith('/api/')) throw new ApiError(404, 'NOT_FOUND', `nothing at ${path}`);
    if (path === '/api/openapi.json') return send(res, 200, openApiDocument);
    const principal = authenticate(req, auth, openLoopback);
    if (!principal) {
      throw new ApiError(
        401,
        'UNAUTHENTICATED',
        openLoopback
          ? 'the console answers only requests for a loopback host'
          : 'sign in: a bearer token, basic auth or the auth proxy',
      );
    }
    if (req.method === 'POST') return act(req, res, path, principal);
    if (req.method !== 'GET') throw new ApiError(405, 'METHOD', `${req.method} is not allowed here`);
    if (path === '/api/session') {
      const session: Session = {
        user: principal.user,
        role: principal.role,
        csrf: csrfFor(auth, principal),
        broker: api.broker,
        history: api.keepsHistory,
        refreshMs,
      };
      return send(res, 200, session);
    }
    if (path === '/api/overview') return send(res, 200, withRates(await api.overview(), sampler.latest));
    if (path === '/api/events') return streams.open(res, SECURITY_HEADERS);
    const parts = segments(path);
    if (parts[0] === 'tasks' && parts.length === 2) {
      return send(res, 200, await api.task(parts[1] as string, url.searchParams.get('queue') ?? undefined));
    }
    if (parts[0] === 'queues' && parts.length === 3) {
      const queue = parts[1] as string;
      if (parts[2] === 'tasks') return send(res, 200, await api.tasks(queue, queryFrom(url.searchParams)));
      if (parts[2] === 'latency') return send(res, 200, await api.latency(queue));
      if (parts[2] === 'series') return send(res, 200, sampler.series(checkedQueue(queue)));
      if (parts[2] === 'dead-letters') {
        return send(res, 200, await api.deadLetters(queue, whole(url.searchParams, 'limit', 1000) ?? 100));
      }
    }
    throw new ApiError(404, 'NOT_FOUND', `nothing at ${path}`);
  };

  const act = async (req: IncomingMessage, res: ServerResponse, path: string, who: Principal): Promise<void> => {
    const problem = csrfProblem(req, auth, who);
    if (problem) throw new ApiError(403, 'CSRF', problem);
    if (who.role !== 'admin') throw new ApiError(403, 'READ_ONLY', `${who.user} has the read-only role: it cannot act`);
    const body = await readBody(req);
    const parts = segments(path);
    const audit = (action: string, fields: Record<string, unknown>) =>
      logger.info('console action', { action, user: who.user, role: who.role, via: who.via, ...fields });
    if (parts.join('/') === 'tasks/revoke') {
      const ids = stringList(body.ids, 'ids');
      if (!ids) throw new ApiError(400, 'BAD_REQUEST', 'revoke needs `ids`');
      const terminate = body.terminate === true;
      const count = await api.revoke(ids, terminate);
      audit(terminate ? 'terminate' : 'revoke', { ids: ids.length, first: ids[0] });
      return send(res, 200, { revoked: count });
    }
    if (parts[0] === 'queues' && parts.length >= 3) {
      const queue = parts[1] as string;
      const verb = parts.slice(2).join('/');
      const ids = stringList(body.ids, 'ids');
      if (verb === 'tasks/retry') {
        const filter = body.filter === undefined ? undefined : filterFrom(body.filter);
        const out = await api.retry(queue, { ...(ids ? { ids } : {}), ...(filter ? { filter } : {}) });
        audit('retry', { queue, retried: out.retried.length, skipped: out.skipped.length, filter: Boolean(filter) });
        return send(res, 200, out);
      }
      if (verb === 'dead-letters/requeue') {
        const requeued = await api.requeueDeadLetters(queue, ids);
        audit('requeue dead letters', { queue, requeued, all: !ids });
        return send(res, 200, { requeued });
      }
      if (verb === 'dead-letters/delete') {
        const deleted = await api.deleteDeadLetters(queue, ids);
        audit('delete dead letters', { queue, deleted, all: !ids });
        return send(res, 200, { deleted });
      }
      if (verb === 'purge') {
        const purged = await api.purge(queue, body.confirm);
        audit('purge', { queue, purged });
        return send(res, 200, { purged });
      }
    }
    throw new ApiError(404, 'NOT_FOUND', `no action at ${path}`);
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((error: unknown) => {
      const apiError = apiErrorFrom(error);
      if (apiError.status >= 500) logger.error('console request failed', { path: req.url?.split('?')[0], error });
      if (!res.headersSent) fail(res, apiError);
      else res.end();
    });
  });
  server.listen(options.port ?? 5555, host);
  await once(server, 'listening');
  const address = server.address() as AddressInfo;
  const shown = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    server,
    url: `http://${shown}:${address.port}/`,
    close: async () => {
      sampler.stop();
      streams.close();
      server.closeAllConnections();
      server.close();
      await once(server, 'close');
    },
  };
}

/** The open event streams: each sample is pushed to all of them (an overview and a point per tick). */
class EventStreams {
  readonly #streams = new Set<ServerResponse>();
  readonly #refreshMs: number;
  #last: string | undefined;

  constructor(refreshMs: number) {
    this.#refreshMs = refreshMs;
  }

  open(res: ServerResponse, headers: Record<string, string>): void {
    if (this.#streams.size >= MAX_STREAMS)
      throw new ApiError(503, 'BUSY', `at most ${MAX_STREAMS} event streams at once`);
    res.writeHead(200, { ...headers, 'content-type': 'text/event-stream; charset=utf-8', connection: 'keep-alive' });
    res.write(`retry: ${this.#refreshMs}\n\n`);
    this.#streams.add(res);
    res.on('close', () => this.#streams.delete(res));
    if (this.#last) res.write(this.#last);
  }

  readonly push: SampleListener = (sample) => {
    let events: string;
    if ('problem' in sample) events = event('problem', { message: sample.problem });
    else {
      this.#last = event('overview', sample.overview);
      events = `${this.#last}${event('point', sample.point)}`;
    }
    for (const stream of this.#streams) stream.write(events);
  };

  close(): void {
    for (const stream of this.#streams) stream.end();
  }
}

function event(name: string, data: unknown): string {
  return `event: ${name}\ndata: ${JSON.stringify(data)}\n\n`;
}

async function readBody(req: IncomingMessage): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY) throw new ApiError(413, 'TOO_LARGE', `a request body is at most ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return {};
  let value: unknown;
  try {
    value = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new ApiError(400, 'BAD_JSON', 'the body is not JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError(400, 'BAD_JSON', 'the body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

/** The path's segments after /api/, decoded; a malformed escape is the caller's mistake (400). */
function segments(path: string): string[] {
  try {
    return path.split('/').slice(2).map(decodeURIComponent);
  } catch {
    throw new ApiError(400, 'BAD_PATH', `${path} has a malformed %-escape`);
  }
}

function stringList(value: unknown, name: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new ApiError(400, 'BAD_REQUEST', `\`${name}\` must be a list of strings`);
  }
  return value;
}

const STATES = new Set(['SUCCESS', 'FAILURE', 'RETRY', 'REVOKED']);

function whole(params: URLSearchParams, name: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const text = params.get(name);
  if (text === null || text === '') return undefined;
  const value = Number(text);
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new ApiError(400, 'BAD_QUERY', `${name} must be a whole number up to ${max}, not ${JSON.stringify(text)}`);
  }
  return value;
}

function state(value: unknown): HistoryState | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const upper = String(value).toUpperCase();
  if (!STATES.has(upper)) throw new ApiError(400, 'BAD_QUERY', `state must be one of ${[...STATES].join(', ')}`);
  return upper as HistoryState;
}

function queryFrom(params: URLSearchParams): HistoryQuery {
  const text = (name: string) => params.get(name) || undefined;
  const query: HistoryQuery = {};
  const task = text('task');
  const worker = text('worker');
  const cursor = text('cursor');
  const s = state(params.get('state'));
  const since = whole(params, 'since');
  const until = whole(params, 'until');
  const limit = whole(params, 'limit', 1000);
  if (task !== undefined) query.task = task;
  if (worker !== undefined) query.worker = worker;
  if (cursor !== undefined) query.cursor = cursor;
  if (s !== undefined) query.state = s;
  if (since !== undefined) query.since = since;
  if (until !== undefined) query.until = until;
  if (limit !== undefined) query.limit = limit;
  return query;
}

function filterFrom(value: unknown): TaskFilter {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ApiError(400, 'BAD_REQUEST', '`filter` must be an object: task, state, worker, since, until');
  }
  const given = value as Record<string, unknown>;
  const params = new URLSearchParams();
  for (const key of ['task', 'worker', 'since', 'until', 'state']) {
    const v = given[key];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string' && typeof v !== 'number')
      throw new ApiError(400, 'BAD_REQUEST', `filter.${key} must be a string or number`);
    params.set(key, String(v));
  }
  const { cursor: _c, limit: _l, ...filter } = queryFrom(params);
  return filter;
}
