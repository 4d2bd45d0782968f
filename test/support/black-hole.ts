import { once } from 'node:events';
import { createServer, type Socket } from 'node:net';

/**
 * A TCP listener that accepts every connection and never answers, holding the sockets open: an address
 * a hostile or mistaken TaskQueue points at. Counts the connections it was sent.
 */
export interface BlackHole {
  port: number;
  url: string;
  /** Connections accepted so far. */
  readonly connections: number;
  /** Connections open now. */
  readonly open: number;
  close(): Promise<void>;
}

export async function blackHole(): Promise<BlackHole> {
  const sockets = new Set<Socket>();
  let connections = 0;
  const server = createServer((socket) => {
    connections++;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.resume(); // reads and drops what it is sent, so a client's close is seen
    socket.on('close', () => sockets.delete(socket));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  if (!address || typeof address === 'string') throw new Error('the black hole has no TCP port');
  return {
    port: address.port,
    url: `redis://127.0.0.1:${address.port}/0`,
    get connections() {
      return connections;
    },
    get open() {
      return sockets.size;
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A listener on `port` (a stopped Redis's, say) that resets every connection it accepts: each client
 * attempt fails with ECONNRESET, an 'error' event as a refused connection is, but counted, so a test
 * can wait for a number of failed reconnect attempts instead of for a while.
 */
export interface Resetter {
  /** Connections reset so far. */
  readonly resets: number;
  close(): Promise<void>;
}

export async function resetter(port: number): Promise<Resetter> {
  let resets = 0;
  const server = createServer((socket) => {
    resets++;
    socket.on('error', () => {});
    socket.resetAndDestroy();
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    get resets() {
      return resets;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
