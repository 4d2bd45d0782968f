import { TaskfleetError } from '../../errors.ts';
import type { BrokerDefinition } from '../broker.ts';
import { KafkaBroker } from './broker.ts';
import { kafkaOptionsFromUrl, queueTopics } from './config.ts';

/**
 * Apache Kafka: `kafka://host:port,…`, `kafkas://` for TLS; credentials from the environment
 * (docs/kafka.md). kafkajs holds no request back to send it later, so the producer shares the worker's
 * client; chords and schedules need a transaction Kafka cannot join with the enqueue.
 */
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
