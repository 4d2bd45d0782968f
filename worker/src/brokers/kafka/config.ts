import { readFileSync } from 'node:fs';
import { ConfigError } from '../../errors.ts';

export type SaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';
const MECHANISMS: readonly SaslMechanism[] = ['plain', 'scram-sha-256', 'scram-sha-512'];

export interface KafkaConnectionOptions {
  /** Bootstrap addresses, `host:port`. */
  brokers: string[];
  /** TLS: true for the system's CAs, or the PEM texts to trust and present. */
  tls?: boolean | { ca?: string; cert?: string; key?: string };
  sasl?: { mechanism: SaslMechanism; username: string; password: string };
}

export interface KafkaBrokerOptions extends KafkaConnectionOptions {
  /** Prefix of every topic and group name. @defaultValue 'tf' */
  prefix?: string;
  /** Partitions of a queue's topics when Taskfleet creates them. @defaultValue 12 */
  partitions?: number;
  /** Replicas of each partition when Taskfleet creates topics. @defaultValue the cluster's default */
  replicationFactor?: number;
  /** @defaultValue 1 MiB */
  maxMessageBytes?: number;
  /** How long opening a connection to a broker may take. @defaultValue 3000 */
  connectionTimeoutMs?: number;
  /** How long a broker may take to answer a request. @defaultValue 30_000 (kafkajs') */
  requestTimeoutMs?: number;
  /** Retries of a request that failed for a reason that may pass. @defaultValue 8 */
  retries?: number;
}

/** True for the URLs the Kafka adapter takes: `kafka://` and `kafkas://` (TLS). */
export function isKafkaUrl(url: string): boolean {
  return /^kafkas?:\/\//.test(url);
}

/**
 * Reads a Kafka broker URL and the environment:
 *
 *   kafka://host:9092,host2:9092?partitions=12&sasl=scram-sha-512   (kafkas:// for TLS)
 *
 * Credentials never go in the URL: they come from TASKFLEET_KAFKA_USERNAME and TASKFLEET_KAFKA_PASSWORD,
 * or from the files named by TASKFLEET_KAFKA_USERNAME_FILE and TASKFLEET_KAFKA_PASSWORD_FILE (a mounted
 * Secret). TLS files: TASKFLEET_KAFKA_CA_FILE, and TASKFLEET_KAFKA_CERT_FILE with TASKFLEET_KAFKA_KEY_FILE
 * for a client certificate. See docs/kafka.md.
 */
export function kafkaOptionsFromUrl(url: string, env: NodeJS.ProcessEnv = process.env): KafkaBrokerOptions {
  const match = /^(kafkas?):\/\/([^/?#]*)\/?(?:\?([^#]*))?$/.exec(url);
  if (!match) {
    throw new ConfigError(
      `the broker URL ${JSON.stringify(url)} is not a Kafka URL: expected kafka://host:port[,host:port…]`,
    );
  }
  const [, scheme, hosts = '', query = ''] = match;
  if (hosts.includes('@')) {
    throw new ConfigError(
      'the Kafka URL must not carry credentials: set TASKFLEET_KAFKA_USERNAME and TASKFLEET_KAFKA_PASSWORD (or their _FILE forms)',
    );
  }
  const brokers = hosts.split(',').filter(Boolean);
  if (brokers.length === 0)
    throw new ConfigError(`the Kafka URL ${JSON.stringify(url)} names no broker: kafka://host:port`);
  for (const broker of brokers) {
    const port = /^(?:\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/.exec(broker)?.[1];
    if (port === undefined || Number(port) < 1 || Number(port) > 65535) {
      throw new ConfigError(`the Kafka broker address ${JSON.stringify(broker)} is not host:port (in ${url})`);
    }
  }
  const params = new URLSearchParams(query);
  for (const key of params.keys()) {
    if (!['partitions', 'replicationFactor', 'sasl'].includes(key)) {
      throw new ConfigError(`the Kafka URL has an unknown parameter ${key}: use partitions, replicationFactor or sasl`);
    }
  }
  const integer = (name: string, value: string | null | undefined, max: number): number | undefined => {
    if (value === null || value === undefined || value === '') return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new ConfigError(`Kafka ${name} must be an integer from 1 to ${max}, not ${value}`);
    return n;
  };
  const partitions = integer('partitions', params.get('partitions') ?? env.TASKFLEET_KAFKA_PARTITIONS, 10_000);
  const replicationFactor = integer(
    'replicationFactor',
    params.get('replicationFactor') ?? env.TASKFLEET_KAFKA_REPLICATION_FACTOR,
    100,
  );

  const options: KafkaBrokerOptions = { brokers };
  if (partitions !== undefined) options.partitions = partitions;
  if (replicationFactor !== undefined) options.replicationFactor = replicationFactor;

  const mechanism = (params.get('sasl') ?? env.TASKFLEET_KAFKA_SASL_MECHANISM ?? '').toLowerCase();
  const username = secret(env, 'TASKFLEET_KAFKA_USERNAME');
  const password = secret(env, 'TASKFLEET_KAFKA_PASSWORD');
  if (mechanism) {
    if (!MECHANISMS.includes(mechanism as SaslMechanism)) {
      throw new ConfigError(
        `Kafka SASL mechanism ${JSON.stringify(mechanism)} is not supported: use ${MECHANISMS.join(', ')}`,
      );
    }
    if (username === undefined || password === undefined) {
      throw new ConfigError(
        `Kafka SASL ${mechanism} needs a username and password: set TASKFLEET_KAFKA_USERNAME and TASKFLEET_KAFKA_PASSWORD (or TASKFLEET_KAFKA_USERNAME_FILE and TASKFLEET_KAFKA_PASSWORD_FILE)`,
      );
    }
    options.sasl = { mechanism: mechanism as SaslMechanism, username, password };
  } else if (username !== undefined || password !== undefined) {
    throw new ConfigError(
      'Kafka credentials are set but no SASL mechanism: add ?sasl=plain|scram-sha-256|scram-sha-512 to the URL or set TASKFLEET_KAFKA_SASL_MECHANISM',
    );
  }

  const ca = file(env, 'TASKFLEET_KAFKA_CA_FILE');
  const cert = file(env, 'TASKFLEET_KAFKA_CERT_FILE');
  const key = file(env, 'TASKFLEET_KAFKA_KEY_FILE');
  if ((cert === undefined) !== (key === undefined)) {
    throw new ConfigError(
      'a Kafka client certificate needs both TASKFLEET_KAFKA_CERT_FILE and TASKFLEET_KAFKA_KEY_FILE',
    );
  }
  if (scheme === 'kafkas') {
    options.tls = ca || cert ? { ...(ca ? { ca } : {}), ...(cert && key ? { cert, key } : {}) } : true;
  } else if (ca || cert) {
    throw new ConfigError('Kafka TLS files are set but the URL is kafka://: use kafkas:// for TLS');
  }
  return options;
}

/** A credential from VAR, or from the file VAR_FILE names (trailing newline dropped). */
function secret(env: NodeJS.ProcessEnv, name: string): string | undefined {
  if (env[name]) return env[name];
  const text = file(env, `${name}_FILE`);
  return text?.replace(/\r?\n$/, '');
}

function file(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const path = env[name];
  if (!path) return undefined;
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`${name}=${path} cannot be read: ${(error as Error).message}`);
  }
}

/** The URL as it may be logged: it never holds credentials, but say how it authenticates. */
export function describeKafka(options: KafkaConnectionOptions): string {
  const scheme = options.tls ? 'kafkas' : 'kafka';
  return `${scheme}://${options.brokers.join(',')}${options.sasl ? ` (SASL ${options.sasl.mechanism} as ${options.sasl.username})` : ''}`;
}

const topicName = /^[A-Za-z0-9._-]+$/;

/** The topics and group of one queue. `<prefix>.<queue>` holds tasks due now, `.delay` the later ones. */
export interface QueueTopics {
  queue: string;
  main: string;
  delay: string;
  dead: string;
  group: string;
}

export function queueTopics(prefix: string, queue: string): QueueTopics {
  const main = `${prefix}.${queue}`;
  if (!topicName.test(main) || main.length > 200) {
    throw new ConfigError(
      `queue ${JSON.stringify(queue)} cannot be a Kafka topic (${main}): Kafka topic names allow letters, digits, '.', '_' and '-', at most 249 characters`,
    );
  }
  return { queue, main, delay: `${main}.delay`, dead: `${main}.dead`, group: main };
}
