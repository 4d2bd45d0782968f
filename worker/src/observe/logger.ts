import { redactText } from '../brokers/redact.ts';
import { ConfigError } from '../errors.ts';

export type LogLevel = 'debug' | 'info' | 'warn' | 'error';
const rank: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function parseLogLevel(level: string): LogLevel {
  if (level in rank) return level as LogLevel;
  throw new ConfigError(`log level ${JSON.stringify(level)} is not one of debug, info, warn, error`);
}

/** Structured logs: one JSON object per line, with the fields of every child logger merged in. */
export interface Logger {
  debug(msg: string, fields?: Record<string, unknown>): void;
  info(msg: string, fields?: Record<string, unknown>): void;
  warn(msg: string, fields?: Record<string, unknown>): void;
  error(msg: string, fields?: Record<string, unknown>): void;
  child(fields: Record<string, unknown>): Logger;
  /** The least severe level written, when known: a call below it may be skipped before it is made. */
  readonly level?: LogLevel;
}

export function createLogger(
  level: LogLevel = 'info',
  base: Record<string, unknown> = {},
  write: (line: string) => void = (line) => process.stdout.write(line),
): Logger {
  const min = rank[level];
  const log = (l: LogLevel, msg: string, fields?: Record<string, unknown>) => {
    if (rank[l] < min) return;
    write(`${JSON.stringify({ time: new Date().toISOString(), level: l, msg, ...base, ...fields }, errorReplacer)}\n`);
  };
  return {
    level,
    debug: (msg, fields) => log('debug', msg, fields),
    info: (msg, fields) => log('info', msg, fields),
    warn: (msg, fields) => log('warn', msg, fields),
    error: (msg, fields) => log('error', msg, fields),
    child: (fields) => createLogger(level, { ...base, ...fields }, write),
  };
}

/**
 * Errors as their name, message and code; every string through redactText, so a URL's password or a
 * `password=` that reached a message (a connection error quoting its URL, say) is never written.
 */
function errorReplacer(_key: string, value: unknown): unknown {
  if (value instanceof Error) {
    return { name: value.name, message: redactText(value.message), code: (value as { code?: unknown }).code };
  }
  return typeof value === 'string' ? redactText(value) : value;
}

/**
 * A child of `parent` with `fields`, made only when first written to: the worker gives one to every
 * call, and most calls never log. A call below the parent's level makes nothing.
 */
export class LazyChild implements Logger {
  readonly #parent: Logger;
  readonly #fields: Record<string, unknown>;
  #child: Logger | undefined;

  constructor(parent: Logger, fields: Record<string, unknown>) {
    this.#parent = parent;
    this.#fields = fields;
  }

  get level(): LogLevel | undefined {
    return this.#parent.level;
  }

  debug(msg: string, fields?: Record<string, unknown>): void {
    if (this.#writes('debug')) this.#made().debug(msg, fields);
  }
  info(msg: string, fields?: Record<string, unknown>): void {
    if (this.#writes('info')) this.#made().info(msg, fields);
  }
  warn(msg: string, fields?: Record<string, unknown>): void {
    if (this.#writes('warn')) this.#made().warn(msg, fields);
  }
  error(msg: string, fields?: Record<string, unknown>): void {
    this.#made().error(msg, fields);
  }
  child(fields: Record<string, unknown>): Logger {
    return this.#made().child(fields);
  }

  #writes(level: LogLevel): boolean {
    const least = this.#parent.level;
    return least === undefined || rank[level] >= rank[least];
  }

  #made(): Logger {
    this.#child ??= this.#parent.child(this.#fields);
    return this.#child;
  }
}

export const silentLogger: Logger = createLogger('error', {}, () => {});
