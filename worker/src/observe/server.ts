import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { Registry } from 'prom-client';

export interface HealthSource {
  /** Alive: the process answers. False only when it should be restarted. */
  live(): boolean;
  /** Ready: connected to the broker and consuming. */
  ready(): boolean;
}

/** Serves /metrics, /healthz and /readyz on `port` (0 picks a free one). */
export async function serveObservability(
  port: number,
  registry: Registry,
  health: HealthSource,
  host = '0.0.0.0',
): Promise<Server> {
  const server = createServer((req, res) => {
    const path = req.url?.split('?')[0];
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        },
        (error: Error) => {
          res.writeHead(500);
          res.end(error.message);
        },
      );
    } else if (path === '/healthz' || path === '/readyz') {
      const ok = path === '/healthz' ? health.live() : health.ready();
      res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
      res.end(ok ? 'ok\n' : 'not ready\n');
    } else {
      res.writeHead(404);
      res.end();
    }
  });
  server.listen(port, host);
  await once(server, 'listening');
  return server;
}
