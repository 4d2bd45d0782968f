import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, type Service, startService, waitUntil } from './process.ts';
import { cachePath, versions } from './versions.ts';

export interface KafkaEndpoint {
  /** Bootstrap addresses for clients: the broker listener, never the controller's. */
  brokers: string[];
  version: string;
}

const javaOptions = ['-Xms256m', '-Xmx768m', '-XX:+UseSerialGC', '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn'];

/**
 * Apache Kafka in single-node KRaft mode: one process is both broker and controller, with separate
 * listeners; storage is formatted first, as `kafka-storage.sh format` would.
 */
export async function startKafka(dir: string): Promise<{ endpoint: KafkaEndpoint; services: Service[] }> {
  const home = join(dir, 'kafka');
  await mkdir(home, { recursive: true });
  const [brokerPort, controllerPort] = [await freePort(), await freePort()];
  const properties = join(home, 'server.properties');
  await writeFile(
    properties,
    [
      'process.roles=broker,controller',
      'node.id=1',
      `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
      `listeners=PLAINTEXT://127.0.0.1:${brokerPort},CONTROLLER://127.0.0.1:${controllerPort}`,
      `advertised.listeners=PLAINTEXT://127.0.0.1:${brokerPort}`,
      'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
      'controller.listener.names=CONTROLLER',
      'inter.broker.listener.name=PLAINTEXT',
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
      'auto.create.topics.enable=false',
      '',
    ].join('\n'),
  );
  const classpath = `${cachePath('kafka')}/libs/*`;
  await promisify(execFile)(
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
    ],
    { cwd: home },
  );
  const service = startService('kafka', dir, 'java', [
    ...javaOptions,
    `-Dkafka.logs.dir=${home}`,
    '-cp',
    classpath,
    'kafka.Kafka',
    properties,
  ]);
  await waitUntil('kafka', service, () => brokerAnswers(brokerPort), 90_000);
  return {
    endpoint: { brokers: [`127.0.0.1:${brokerPort}`], version: versions.KAFKA_VERSION },
    services: [service],
  };
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
