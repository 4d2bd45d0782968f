import { TaskfleetError } from '../../errors.ts';
import type { BrokerDefinition } from '../broker.ts';
import { KafkaBroker } from './broker.ts';
import { kafkaOptionsFromUrl, queueTopics } from './config.ts';

/**
 * Apache Kafka: `kafka://host:port,…`, `kafkas://` for TLS; credentials from the environment
 * (docs/kafka.md). kafkajs holds no request back to send it later, so the producer shares the worker's
 * client; chords and schedules need a transaction Kafka cannot join with the enqueue.
 */
/** Kafka's refusals of a record for what it is (kafkajs protocol error types), whatever the retries. */
const REFUSED_FOR_GOOD: ReadonlySet<string> = new Set([
  'MESSAGE_TOO_LARGE',
  'RECORD_LIST_TOO_LARGE',
  'INVALID_RECORD',
  'INVALID_TOPIC_EXCEPTION',
  'CORRUPT_MESSAGE',
]);

export const kafka: BrokerDefinition = {
  name: 'Kafka',
  schemes: ['kafka', 'kafkas'],
  usage: 'kafka:// (kafkas://) for Kafka',
  capabilities: { chords: false, resultBackend: false, schedules: false },

  validate(url, _from, { prefix, queue }) {
    kafkaOptionsFromUrl(url);
    queueTopics(prefix, queue);
  },

  open(url, { prefix, maxMessageBytes }) {
    return new KafkaBroker(url, { prefix, maxMessageBytes });
  },

  refusesForGood(error) {
    const type = (error as { type?: unknown } | null)?.type;
    return typeof type === 'string' && REFUSED_FOR_GOOD.has(type);
  },

  async assertReachable(url, { setting }) {
    const broker = new KafkaBroker(url);
    try {
      await broker.admin();
    } catch (error) {
      throw new TaskfleetError(
        'UNREACHABLE',
        `${(error as Error).message.replace(/\.$/, '')}; set it with ${setting}.`,
        { cause: error },
      );
    } finally {
      await broker.close();
    }
  },
};
