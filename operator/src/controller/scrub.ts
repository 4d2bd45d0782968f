import { type Logger, redactText } from 'taskfleet';

/**
 * The one gate in front of everything the operator says: every condition message, Event message, log
 * line (message and fields) and error it logs passes through {@link Scrubber.text}. It masks the values
 * of the Secrets read (the reconciler makes one Scrubber per reconcile and records each value it reads)
 * and any credentials in URLs (`redis://user:***@`, `?password=***`), with 'taskfleet''s redactText.
 * Messages are written not to quote such values in the first place ("Secret db key url is not a
 * redis:// URL"); this catches what a client library's error quotes anyway.
 */
export class Scrubber {
  readonly #secrets = new Set<string>();

  /** Records a value read from a Secret, to be masked wherever it appears; returns it. */
  secret(value: string): string {
    this.#secrets.add(value);
    return value;
  }

  text(text: string): string {
    return redactText(text, this.#secrets);
  }

  /** Log fields: strings scrubbed, errors as their scrubbed message, the rest as they are. */
  fields(fields: Record<string, unknown> | undefined): Record<string, unknown> | undefined {
    if (!fields) return fields;
    const out: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(fields)) {
      out[key] =
        typeof value === 'string' ? this.text(value) : value instanceof Error ? this.text(value.message) : value;
    }
    return out;
  }

  /**
   * The same error, its message scrubbed in place, so that whoever logs it further up (the work queue's
   * "reconcile failed") cannot leak what it quotes. Its class and code are kept: callers test them.
   */
  error(error: unknown): unknown {
    if (error instanceof Error) {
      error.message = this.text(error.message);
      if (typeof error.stack === 'string') error.stack = this.text(error.stack);
    }
    return error;
  }
}

/** One structured log line: a message and its fields. */
export type LogLine = (msg: string, fields?: Record<string, unknown>) => void;

/** `log`, each line (message and fields) scrubbed by `scrubber` first. */
export function scrubbedLog(log: LogLine, scrubber: Scrubber): LogLine {
  return (msg, fields) => log(scrubber.text(msg), scrubber.fields(fields));
}

/** A Logger whose every line (message and fields, children included) passes through `scrubber`. */
export function scrubbingLogger(logger: Logger, scrubber: Scrubber = new Scrubber()): Logger {
  const line =
    (level: 'debug' | 'info' | 'warn' | 'error') =>
    (msg: string, fields?: Record<string, unknown>): void =>
      logger[level](scrubber.text(msg), scrubber.fields(fields));
  return {
    debug: line('debug'),
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child: (fields) => scrubbingLogger(logger.child(scrubber.fields(fields) ?? {}), scrubber),
  };
}
