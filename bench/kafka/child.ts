import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { childEnv } from '../support/compiled.ts';
import type { ChildConfig, ChildMessage } from './protocol.ts';

type Done = Extract<ChildMessage, { type: 'done' }>;
type Baseline = Extract<ChildMessage, { type: 'baseline' }>;

export interface Child {
  /** The child's one report: its drain (drain mode) or its memory (baseline mode). */
  report: Promise<Done | Baseline>;
  /** Resolves when it has exited cleanly. */
  exited: Promise<void>;
}

const CHILD = new URL('./consumer-child.ts', import.meta.url).pathname;

/**
 * Starts one contender's consumer in its own process. Its stdin is a pipe from this process: if this
 * process dies, the pipe closes and the child exits. Its environment is this one's without the
 * `source` condition (childEnv): it runs dist/.
 */
export function startChild(config: ChildConfig, timeoutMs: number): Child {
  const child = spawn(process.execPath, [CHILD, JSON.stringify(config)], {
    stdio: ['pipe', 'pipe', 'inherit'],
    env: childEnv(),
  });
  const report = Promise.withResolvers<Done | Baseline>();
  const timer = setTimeout(() => {
    report.reject(new Error(`${config.contender} (${config.mode}) did not finish within ${timeoutMs / 1000} s`));
    child.kill('SIGKILL');
  }, timeoutMs);
  createInterface({ input: child.stdout }).on('line', (line) => {
    // A client library that logs to stdout must not break the protocol: pass its lines on.
    if (!line.startsWith('{"type":')) {
      process.stderr.write(`${config.contender}: ${line}\n`);
      return;
    }
    clearTimeout(timer);
    report.resolve(JSON.parse(line) as ChildMessage);
  });
  const exited = once(child, 'exit').then(([code, signal]) => {
    clearTimeout(timer);
    if (code !== 0) {
      const error = new Error(`${config.contender} (${config.mode}) exited with ${signal ?? `code ${code}`}`);
      report.reject(error);
      throw error;
    }
  });
  exited.catch(() => {});
  return { report: report.promise, exited };
}
