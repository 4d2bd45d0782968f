import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { createWriteStream, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

/** A component of the stack running as a local process, its output in `<dir>/<name>.log`. */
export interface Service {
  readonly name: string;
  readonly pid: number;
  readonly logFile: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process has exited. */
  stop(graceMs?: number): Promise<void>;
  /** Rejects as soon as the process exits, naming its log: race it against a readiness check. */
  readonly exited: Promise<never>;
}

export class StackError extends Error {
  override name = 'StackError';
}

/**
 * Starts `command` so that it can never outlive the stack:
 * - `setpriv --pdeathsig KILL` makes the kernel kill it if the supervisor dies, even by SIGKILL;
 * - its own process group keeps a terminal's Ctrl-C away from it, so the supervisor stops the
 *   components in order instead of having them all die at once mid-write.
 */
export function startService(
  name: string,
  dir: string,
  command: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): Service {
  const logFile = join(dir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child: ChildProcess = spawn('setpriv', ['--pdeathsig', 'KILL', '--', command, ...args], {
    cwd: dir,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(log, { end: false });
  child.stderr?.pipe(log, { end: false });
  const exit = once(child, 'exit').then(([code, signal]) => ({ code, signal }));
  let stopping = false;
  const exited = exit.then(({ code, signal }) => {
    throw new StackError(
      `${name} exited (${signal ?? `code ${code}`})${stopping ? '' : ' unexpectedly'}${logTail(logFile)}`,
    );
  });
  exited.catch(() => {}); // observed by whoever races it; never an unhandled rejection
  if (child.pid === undefined) throw new StackError(`could not start ${command} for ${name}`);
  const pid = child.pid;
  return {
    name,
    pid,
    logFile,
    exited,
    async stop(graceMs = 10_000) {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exit;
        clearTimeout(timer);
      }
      log.end();
    },
  };
}

/**
 * The end of a component's log, for errors: the stack's directory (and the log in it) is removed at
 * teardown, so the reason a component failed must travel in the error itself.
 */
function logTail(logFile: string, lines = 15): string {
  try {
    const tail = readFileSync(logFile, 'utf8').trimEnd().split('\n').slice(-lines);
    return `; the end of its log:\n    ${tail.join('\n    ')}`;
  } catch {
    return '';
  }
}

/** A TCP port that was free on 127.0.0.1 a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const address = server.address();
  server.close();
  await once(server, 'close');
  if (address === null || typeof address === 'string') throw new StackError('no TCP port');
  return address.port;
}

/**
 * Starts a service on a port found free just before, and again on another when it exits because the
 * port was taken meanwhile: a port found free by binding :0 is in the ephemeral range, so any process's
 * outgoing connection may take it before the service binds it. `ready` waits until the service serves.
 */
export async function startOnFreePort(
  start: (port: number) => Service,
  ready: (service: Service, port: number) => Promise<void>,
  attempts = 3,
): Promise<{ service: Service; port: number }> {
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const service = start(port);
    try {
      await ready(service, port);
      return { service, port };
    } catch (error) {
      await service.stop();
      const taken = error instanceof StackError && error.message.includes(`${port}: bind: address already in use`);
      if (!taken || attempt === attempts) throw error;
    }
  }
}

/**
 * Polls `check` until it resolves truthy, the service exits, or `timeoutMs` passes.
 * Readiness of an external process has no event to wait on, so polling is the honest way.
 */
export async function waitUntil(
  what: string,
  service: Service,
  check: () => Promise<boolean>,
  timeoutMs = 60_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let settled = false;
  const ready = (async () => {
    let lastError: unknown;
    while (!settled && Date.now() < deadline) {
      try {
        if (await check()) return;
      } catch (error) {
        lastError = error;
      }
      await sleep(100);
    }
    if (settled) return;
    const why = lastError instanceof Error ? `: ${lastError.message}` : '';
    throw new StackError(`${what} not ready after ${timeoutMs / 1000}s${why}${logTail(service.logFile)}`);
  })();
  try {
    await Promise.race([ready, service.exited]);
  } finally {
    settled = true;
  }
}
