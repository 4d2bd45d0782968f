import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { childEnv } from './compiled.ts';
import type { ChildConfig, ChildMessage, ParentCommand } from './protocol.ts';

type Ready = Extract<ChildMessage, { type: 'ready' }>;
type Done = Extract<ChildMessage, { type: 'done' }>;

export interface Child {
  /** The child's first message in latency mode (started and idle) and share mode (loaded). */
  ready: Promise<Ready>;
  /** Its work is done; it exits right after. */
  done: Promise<Done>;
  /** Resolves when it has exited cleanly. */
  exited: Promise<void>;
  /** share mode: calls `listener` with the child's count each time it reports one. */
  onProgress(listener: (count: number) => void): void;
  /** share mode: tells the child to start consuming (`go`) or to report what it did (`report`). */
  command(command: ParentCommand): void;
}

const CHILD = new URL('../worker-child.ts', import.meta.url).pathname;

/**
 * Starts one contender's consumer in its own process. Its stdin is a pipe from this process: if this
 * process dies, the pipe closes and the child exits. `nodeFlags` are Node's flags (e.g. --cpu-prof).
 * Its environment is this one's without the `source` condition (childEnv): it runs dist/.
 */
export function startChild(config: ChildConfig, timeoutMs: number, nodeFlags: string[] = []): Child {
  const child = spawn(process.execPath, [...nodeFlags, CHILD, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: childEnv(),
  });
  const ready = Promise.withResolvers<Ready>();
  const done = Promise.withResolvers<Done>();
  const timer = setTimeout(() => {
    const error = new Error(`${config.contender} (${config.mode}) did not finish within ${timeoutMs / 1000} s`);
    ready.reject(error);
    done.reject(error);
    child.kill('SIGKILL');
  }, timeoutMs);
  let progress = (_count: number) => {};
  createInterface({ input: child.stdout }).on('line', (line) => {
    const message = JSON.parse(line) as ChildMessage;
    if (message.type === 'ready') ready.resolve(message);
    else if (message.type === 'progress') progress(message.count);
    else {
      clearTimeout(timer);
      done.resolve(message);
    }
  });
  const exited = once(child, 'exit').then(([code, signal]) => {
    clearTimeout(timer);
    if (code !== 0) {
      const error = new Error(`${config.contender} (${config.mode}) exited with ${signal ?? `code ${code}`}`);
      ready.reject(error);
      done.reject(error);
      throw error;
    }
  });
  ready.promise.catch(() => {});
  exited.catch(() => {});
  return {
    ready: ready.promise,
    done: done.promise,
    exited,
    onProgress(listener) {
      progress = listener;
    },
    command(command) {
      child.stdin.write(`${command}\n`);
    },
  };
}
