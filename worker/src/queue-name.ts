import { ConfigError } from './errors.ts';
import { isQueueName } from './message/names.ts';

/**
 * Checks a queue name where one is chosen (app, task, call, schedule, workflow): letters, digits and
 * `_ . : -`, at most 200, so every broker can use it in keys and topics.
 */
export function assertQueueName(queue: string): void {
  if (!isQueueName(queue)) {
    throw new ConfigError(
      `queue name ${JSON.stringify(queue)} is not valid: use 1–200 letters, digits, '_', '.', ':' or '-', starting with a letter or digit`,
    );
  }
}
