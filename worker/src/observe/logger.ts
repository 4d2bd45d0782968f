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

export const silentLogger: Logger = createLogger('error', {}, () => {});
