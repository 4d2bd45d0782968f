import { execFile } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { certificateAuthority } from './pki.ts';
import { freePort, type Service, startService, waitUntil } from './process.ts';
import { cachePath, versions } from './versions.ts';

export interface KafkaEndpoint {
  /** Bootstrap addresses for clients: the PLAINTEXT broker listener, never the controller's. */
  brokers: string[];
  version: string;
  /** The same broker behind a SASL_PLAINTEXT listener. */
  sasl: KafkaSaslListener;
  /** The same broker behind an SSL listener (no client certificates). */
  tls: KafkaTlsListener;
}

/** A SASL mechanism, spelled as kafkajs spells it. */
export type KafkaSaslMechanism = 'plain' | 'scram-sha-256' | 'scram-sha-512';

export interface KafkaSaslListener {
  /** Bootstrap addresses of the SASL_PLAINTEXT listener. */
  brokers: string[];
  /** The one user, known to every mechanism in `mechanisms` with the same password. */
  username: string;
  /** Random for each start of the stack. */
  password: string;
  mechanisms: KafkaSaslMechanism[];
}

export interface KafkaTlsListener {
  /** Bootstrap addresses of the SSL listener; its certificate names 127.0.0.1 and localhost. */
  brokers: string[];
  /** The self-signed CA that signed the listener's certificate (PEM file): the only one to trust. */
  caFile: string;
}

const run = promisify(execFile);
const javaOptions = ['-Xms256m', '-Xmx768m', '-XX:+UseSerialGC', '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn'];
const saslMechanisms: KafkaSaslMechanism[] = ['plain', 'scram-sha-256', 'scram-sha-512'];

/** A Kafka started by startKafka. */
export interface RunningKafka {
  endpoint: KafkaEndpoint;
  services: Service[];
  /**
   * Stops the broker (SIGTERM: a controlled shutdown) and starts it again on the same ports and data,
   * without formatting: topics, records and the groups' committed offsets survive. `services` then
   * holds the new process. For a Kafka a test started for itself: the stack's shared one, which the
   * supervisor stops, is never restarted.
   */
  restart(): Promise<void>;
}

/**
 * Apache Kafka in single-node KRaft mode: one process is both broker and controller, with separate
 * listeners; storage is formatted first, as `kafka-storage.sh format` would. Besides PLAINTEXT, the
 * broker listens with SASL (PLAIN and SCRAM) and with TLS, for the adapter's security options.
 */
export async function startKafka(dir: string): Promise<RunningKafka> {
  const home = join(dir, 'kafka');
  const pki = join(home, 'pki');
  await mkdir(pki, { recursive: true });
  const [brokerPort, controllerPort, saslPort, tlsPort] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  const username = 'taskfleet';
  const password = randomBytes(16).toString('hex'); // hex: nothing to quote in JAAS or --add-scram
  const listeners = {
    PLAINTEXT: `127.0.0.1:${brokerPort}`,
    SASL_PLAINTEXT: `127.0.0.1:${saslPort}`,
    SSL: `127.0.0.1:${tlsPort}`,
  };
  const brokerListeners = Object.entries(listeners).map(([name, address]) => `${name}://${address}`);
  const scram = 'org.apache.kafka.common.security.scram.ScramLoginModule required;';
  const properties = join(home, 'server.properties');
  await writeFile(
    properties,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=${[...brokerListeners, `CONTROLLER://127.0.0.1:${controllerPort}`].join(',')}`,
      `advertised.listeners=${brokerListeners.join(',')}`,
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,CONTROLLER:PLAINTEXT',
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
      `listener.name.sasl_plaintext.sasl.enabled.mechanisms=${saslMechanisms.map((m) => m.toUpperCase()).join(',')}`,
      // PLAIN checks the users listed in its JAAS entry; SCRAM checks the credentials in the metadata log.
      `listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_${username}="${password}";`,
      `listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=${scram}`,
      `listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=${scram}`,
      'listener.name.ssl.ssl.keystore.type=PEM',
      `listener.name.ssl.ssl.keystore.location=${join(pki, 'broker.pem')}`,
      `log.dirs=${join(home, 'data')}`,
      'num.partitions=1',
      'offsets.topic.replication.factor=1',
      'offsets.topic.num.partitions=4',
      'transaction.state.log.replication.factor=1',
      'transaction.state.log.min.isr=1',
      'share.coordinator.state.topic.replication.factor=1',
      'share.coordinator.state.topic.min.isr=1',
      // Tests create and join groups constantly; the default 3 s delay would slow every one.
      'group.initial.rebalance.delay.ms=0',
      // Tests kill consumers with SIGKILL and wait out their sessions; Kafka's floor of 6 s would slow them.
      'group.min.session.timeout.ms=500',
      'auto.create.topics.enable=false',
      '',
    ].join('\n'),
  );
  const classpath = `${cachePath('kafka')}/libs/*`;
  const scramMechanisms = saslMechanisms.filter((m) => m.startsWith('scram-')).map((m) => m.toUpperCase());
  const format = run(
    'java',
    [
      ...javaOptions,
      '-cp',
      classpath,
      'kafka.tools.StorageTool',
      'format',
      `--cluster-id=${clusterId()}`,
      '--config',
      properties,
      // SCRAM credentials live in the metadata log, so they are written with it.
      ...scramMechanisms.flatMap((m) => ['--add-scram', `${m}=[name=${username},password=${password}]`]),
    ],
    { cwd: home },
  );
  // The broker reads its certificate only when it starts: make it while the JVM formats the storage.
  await Promise.all([makeCertificates(pki), format]);
  const command = [...javaOptions, `-Dkafka.logs.dir=${home}`, '-cp', classpath, 'kafka.Kafka', properties];
  const service = startService('kafka', dir, 'java', command);
  // The broker enables all its listeners at once (each bound since startup), so one answering stands for all.
  await waitUntil('kafka', service, () => brokerAnswers(brokerPort), 90_000);
  const services = [service];
  return {
    endpoint: {
      brokers: [listeners.PLAINTEXT],
      version: versions.KAFKA_VERSION,
      sasl: { brokers: [listeners.SASL_PLAINTEXT], username, password, mechanisms: saslMechanisms },
      tls: { brokers: [listeners.SSL], caFile: join(pki, 'ca.crt') },
    },
    services,
    async restart() {
      await services[0]?.stop();
      const again = startService('kafka', dir, 'java', command);
      services[0] = again;
      await waitUntil('kafka', again, () => brokerAnswers(brokerPort), 90_000);
    },
  };
}

/**
 * A self-signed CA (`ca.crt`) and, signed by it, a serving certificate for 127.0.0.1 and localhost
 * with its key in one PEM key store (`broker.pem`).
 */
async function makeCertificates(pki: string): Promise<void> {
  const issue = await certificateAuthority(pki, 'taskfleet-kafka-ca');
  await issue('broker', '/CN=localhost', 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n');
  const [key, certificate] = await Promise.all([readFile(join(pki, 'broker.key')), readFile(join(pki, 'broker.crt'))]);
  await writeFile(join(pki, 'broker.pem'), Buffer.concat([key, certificate]));
}

/** A KRaft cluster id: 16 random bytes in URL-safe base64 without padding. */
function clusterId(): string {
  return Buffer.from(randomUUID().replaceAll('-', ''), 'hex').toString('base64url');
}

/**
 * The broker listener accepts connections only once the broker has caught up with the metadata log,
 * but accepting is not answering: send an ApiVersions request (v0, the one every broker answers)
 * and wait for its response.
 */
function brokerAnswers(port: number): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const clientId = Buffer.from('taskfleet-stack');
    const body = Buffer.alloc(2 + 2 + 4 + 2 + clientId.length);
    body.writeInt16BE(18, 0); // ApiVersions
    body.writeInt16BE(0, 2); // version 0
    body.writeInt32BE(1, 4); // correlation id
    body.writeInt16BE(clientId.length, 8);
    clientId.copy(body, 10);
    const frame = Buffer.alloc(4 + body.length);
    frame.writeInt32BE(body.length, 0);
    body.copy(frame, 4);
    const socket = connect(port, '127.0.0.1', () => socket.write(frame));
    socket.setTimeout(2000, () => socket.destroy(new Error('ApiVersions timed out')));
    socket.once('data', (data) => {
      socket.destroy();
      // size, correlation id, then error code 0
      resolve(data.length >= 10 && data.readInt32BE(4) === 1 && data.readInt16BE(8) === 0);
    });
    socket.once('error', reject);
  });
}
