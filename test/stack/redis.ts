import { execFile } from 'node:child_process';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, type Service, startService, waitUntil } from './process.ts';

export interface RedisEndpoint {
  host: string;
  port: number;
  /** `redis://127.0.0.1:<port>` */
  url: string;
  version: string;
}

/**
 * Debian's redis-server on a free loopback port, its files in `<dir>/redis`; nothing persisted unless
 * `persist` (an append-only file, so a restart keeps the data, as a production Redis would).
 * A test that restarts Redis passes the `port` it had, so clients reconnect to the same address.
 */
export async function startRedis(
  dir: string,
  port?: number,
  { persist = false }: { persist?: boolean } = {},
): Promise<{ endpoint: RedisEndpoint; services: Service[] }> {
  port ??= await freePort();
  const { stdout } = await promisify(execFile)('redis-server', ['--version']);
  const version = /v=(\S+)/.exec(stdout)?.[1] ?? 'unknown';
  const service = startService('redis', dir, 'redis-server', [
    '--bind',
    '127.0.0.1',
    '--port',
    String(port),
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    persist ? 'yes' : 'no',
    '--daemonize',
    'no',
    '--logfile',
    join(dir, 'redis-server.log'),
  ]);
  await waitUntil('redis', service, () => ping(port), 10_000);
  return { endpoint: { host: '127.0.0.1', port, url: `redis://127.0.0.1:${port}`, version }, services: [service] };
}

/** One PING over a raw socket: the stack does not depend on the client library it tests. */
function ping(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.setTimeout(1000, () => socket.destroy(new Error('PING timed out')));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('error', reject);
  });
}
