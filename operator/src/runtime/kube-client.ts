import { createHash } from 'node:crypto';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { assertSafePath } from './kube-path.ts';

/** An error answer of the API server, with its HTTP code and Status reason. */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  readonly code: number;
  readonly reason: string;
  constructor(code: number, reason: string, message: string) {
    super(message);
    this.code = code;
    this.reason = reason;
  }
}

export type PatchType = 'merge' | 'apply' | 'json' | 'strategic';

/** Called once per request sent: the verb and the resource (`deployments/scale`), never a name. */
export type RequestObserver = (verb: string, resource: string) => void;
const contentTypes: Record<PatchType, string> = {
  merge: 'application/merge-patch+json',
  apply: 'application/apply-patch+yaml',
  json: 'application/json-patch+json',
  strategic: 'application/strategic-merge-patch+json',
};

/**
 * A small JSON client over the KubeConfig's credentials. The operator speaks plain JSON to the API
 * server rather than through the generated models: they drop fields they do not know (CRD extensions,
 * our own status) and format timestamps the server refuses (Lease MicroTime), and every request here is
 * simple enough to say in a path and a body. The operator builds every path with `apiPath`
 * (kube-path.ts), which validates and encodes each name; `request` refuses, before sending, any path
 * that URL resolution or the API server would read otherwise than written (`..`, `%2F`).
 */
export class KubeClient {
  readonly #config: KubeConfig;
  readonly #server: URL;
  readonly #observe: RequestObserver | undefined;
  #agent: { agent: Agent; credentials: string } | undefined;
  /** Requests sent, for the operator's metrics and the capacity benchmark. */
  requests = 0;

  constructor(config: KubeConfig, { onRequest }: { onRequest?: RequestObserver } = {}) {
    this.#config = config;
    this.#observe = onRequest;
    const cluster = config.getCurrentCluster();
    if (!cluster) throw new Error('the kubeconfig has no current cluster');
    this.#server = new URL(cluster.server);
  }

  get<T>(path: string, query: Record<string, string> = {}): Promise<T> {
    return this.request<T>('GET', path, undefined, undefined, query);
  }

  /** GET that answers undefined for 404. */
  async find<T>(path: string, query: Record<string, string> = {}): Promise<T | undefined> {
    try {
      return await this.get<T>(path, query);
    } catch (error) {
      if (error instanceof KubeApiError && error.code === 404) return undefined;
      throw error;
    }
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  put<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('PUT', path, body);
  }

  patch<T>(path: string, body: unknown, type: PatchType, query: Record<string, string> = {}): Promise<T> {
    return this.request<T>('PATCH', path, body, contentTypes[type], query);
  }

  /** Server-side apply with our field manager; `force` takes fields over from other managers. */
  apply<T>(path: string, body: unknown, fieldManager: string, force = true): Promise<T> {
    return this.patch<T>(path, body, 'apply', { fieldManager, force: String(force) });
  }

  /**
   * One keep-alive connection pool per set of TLS credentials. The KubeConfig's own agent closes each
   * connection after one request, so every request would pay a TLS handshake (and a new TLS context) on
   * both ends: at hundreds of requests a second that is most of the operator's CPU and memory churn.
   * Credentials are re-read for every request (a rotated client certificate gets a new pool).
   */
  #keepAlive(options: RequestOptions): Agent {
    const tls = {
      ca: options.ca,
      cert: options.cert,
      key: options.key,
      servername: options.servername,
      rejectUnauthorized: options.rejectUnauthorized,
    };
    const hash = createHash('sha256');
    for (const value of Object.values(tls)) hash.update(String(value ?? '')).update('\u0000');
    const credentials = hash.digest('base64');
    if (this.#agent?.credentials !== credentials) {
      this.#agent?.agent.destroy();
      this.#agent = { agent: new Agent({ keepAlive: true, maxSockets: 64, ...tls }), credentials };
    }
    return this.#agent.agent;
  }

  /** Closes idle pooled connections. */
  close(): void {
    this.#agent?.agent.destroy();
    this.#agent = undefined;
  }

  async request<T>(
    method: string,
    path: string,
    body?: unknown,
    contentType = 'application/json',
    query: Record<string, string> = {},
  ): Promise<T> {
    assertSafePath(path);
    const url = new URL(path, this.#server);
    for (const [k, v] of Object.entries(query)) url.searchParams.set(k, v);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const options: RequestOptions = {
      method,
      // A length, not chunked encoding: the API server refuses a chunked DELETE body (400), and the
      // pooled connection is unusable after it.
      headers: {
        accept: 'application/json',
        ...(payload !== undefined ? { 'content-type': contentType, 'content-length': Buffer.byteLength(payload) } : {}),
      },
      timeout: 30_000,
    };
    await this.#config.applyToHTTPSOptions(options);
    options.agent = this.#keepAlive(options);
    this.requests++;
    this.#observe?.(
      method === 'PATCH' && contentType === contentTypes.apply ? 'APPLY' : method,
      resourceOf(url.pathname),
    );
    return new Promise<T>((resolve, reject) => {
      const req = httpsRequest(url, options, (res) => {
        // Chunks, not a string grown in this closure: a pooled socket can keep the last response's
        // listeners reachable, and with them a whole list response (megabytes) until the socket's next use.
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          chunks.length = 0;
          const code = res.statusCode ?? 0;
          let parsed: unknown;
          try {
            parsed = text ? JSON.parse(text) : undefined;
          } catch {
            parsed = text;
          }
          if (code >= 200 && code < 300) resolve(parsed as T);
          else {
            const status = (parsed ?? {}) as { reason?: string; message?: string };
            reject(
              new KubeApiError(
                code,
                status.reason ?? 'Unknown',
                `${method} ${path}: ${code} ${status.message ?? text}`,
              ),
            );
          }
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(payload);
    });
  }
}

/**
 * The resource a request path names, with its subresource, without namespace or object name:
 * `/apis/apps/v1/namespaces/ns/deployments/d/scale` → `deployments/scale`. Bounded, so it can be a label.
 */
export function resourceOf(path: string): string {
  const parts = path.split('/').filter(Boolean);
  // /api/v1/... or /apis/<group>/<version>/...
  const rest = parts[0] === 'api' ? parts.slice(2) : parts[0] === 'apis' ? parts.slice(3) : [];
  if (rest.length === 0) return parts[0] === 'api' || parts[0] === 'apis' ? 'discovery' : (parts[0] ?? 'root');
  const scoped = rest[0] === 'namespaces' && rest.length >= 3 ? rest.slice(2) : rest;
  const [resource = 'namespaces', , subresource] = scoped;
  return subresource ? `${resource}/${subresource}` : resource;
}

/** MicroTime as the API server parses it: RFC 3339 with exactly six fractional digits. */
export function microTime(date: Date): string {
  return date.toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
