/**
 * Names a message may carry that end up in broker keys and topics. Checked where a name is chosen
 * (queue-name.ts refuses it with a ConfigError) and again where a message is read, so a
 * message naming a queue no broker would take is refused on arrival, not when the worker acts on it.
 */

/** Letters, digits and `_ . : -`, starting with a letter or digit, at most 200: safe in keys and topics. */
export const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,199}$/;

export function isQueueName(x: unknown): x is string {
  return typeof x === 'string' && QUEUE_NAME.test(x);
}
