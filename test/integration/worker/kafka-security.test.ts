/**
 * Kafka with TLS and SASL (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512): credentials from the environment or
 * from files, as a mounted Secret gives them, never in a log line.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { Taskfleet } from 'taskfleet';
import { KafkaBroker } from '../../../worker/src/brokers/kafka/broker.ts';
import { kafkaOptionsFromUrl } from '../../../worker/src/brokers/kafka/config.ts';
import { createEnvelope } from '../../../worker/src/message/envelope.ts';
import { spawnWorker, taskfleet } from '../../support/cli.ts';
import { useKafka, useRedis } from '../../support/stack.ts';

const app = new URL('./fixtures/kafka-security.tasks.ts', import.meta.url).pathname;

/** One task sent and run through a broker built from `url` and `env`. */
async function roundTrip(url: string, env: Record<string, string>): Promise<void> {
  const broker = new KafkaBroker(kafkaOptionsFromUrl(url, env), {
    prefix: `sec-${randomUUID().slice(0, 8)}`,
    partitions: 1,
  });
  try {
    const envelope = createEnvelope({ task: 'shout', args: ['hi'], queue: 'q' });
    await broker.publish([envelope]);
    const consumer = await broker.consume('q', { consumer: 'c', visibilityTimeoutMs: 3000 });
    const [delivery] = await consumer.receive(1, AbortSignal.timeout(15_000));
    assert.equal(delivery?.envelope?.id, envelope.id);
    await consumer.settle(delivery!, { kind: 'ack' });
    assert.equal((await broker.backlog('q')).ready, 0);
  } finally {
    await broker.close();
  }
}

for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
  test(`SASL ${mechanism}: credentials from the environment`, async () => {
    const { sasl } = await useKafka();
    await roundTrip(`kafka://${sasl.brokers.join(',')}?sasl=${mechanism}`, {
      TASKFLEET_KAFKA_USERNAME: sasl.username,
      TASKFLEET_KAFKA_PASSWORD: sasl.password,
    });
  });
}

test('TLS trusting the CA from a file', async () => {
  const { tls } = await useKafka();
  await roundTrip(`kafkas://${tls.brokers.join(',')}`, { TASKFLEET_KAFKA_CA_FILE: tls.caFile });
});

test('a wrong password is refused with a message that names what to check, and not the password', async () => {
  const { sasl } = await useKafka();
  const wrong = `wrong-${randomUUID()}`;
  const run = await taskfleet(['purge', 'q'], {
    TASKFLEET_BROKER: `kafka://${sasl.brokers.join(',')}?sasl=scram-sha-512`,
    TASKFLEET_KAFKA_USERNAME: sasl.username,
    TASKFLEET_KAFKA_PASSWORD: wrong,
  });
  assert.equal(run.code, 1);
  assert.match(run.stderr, /refused the credentials .*TASKFLEET_KAFKA_PASSWORD/);
  assert.ok(!run.stderr.includes(wrong) && !run.stdout.includes(wrong), 'the password was printed');
});

test('a worker with SCRAM credentials read from files runs tasks, and never logs the password', async () => {
  const { sasl } = await useKafka();
  const dir = await mkdtemp(join(tmpdir(), 'taskfleet-secret-'));
  await writeFile(join(dir, 'username'), `${sasl.username}\n`);
  await writeFile(join(dir, 'password'), `${sasl.password}\n`);
  const redis = (await useRedis()).url;
  const env = {
    TASKFLEET_BROKER: `kafka://${sasl.brokers.join(',')}?sasl=scram-sha-256&partitions=2`,
    TASKFLEET_KAFKA_USERNAME_FILE: join(dir, 'username'),
    TASKFLEET_KAFKA_PASSWORD_FILE: join(dir, 'password'),
    TASKFLEET_BACKEND: redis,
    TASKFLEET_PREFIX: `sec-${randomUUID().slice(0, 8)}`,
    TASKFLEET_LOG_LEVEL: 'debug',
  };
  const worker = spawnWorker(['--app', app, '--metrics-port', '0'], env);
  await worker.log('worker started');
  // The producer reads the same files, through this process's environment.
  process.env.TASKFLEET_KAFKA_USERNAME_FILE = env.TASKFLEET_KAFKA_USERNAME_FILE;
  process.env.TASKFLEET_KAFKA_PASSWORD_FILE = env.TASKFLEET_KAFKA_PASSWORD_FILE;
  const producer = new Taskfleet({ broker: env.TASKFLEET_BROKER, backend: redis, prefix: env.TASKFLEET_PREFIX });
  try {
    const shout = producer.task('shout', (_ctx, text: string) => text.toUpperCase());
    assert.equal(await (await shout.delay('quiet')).get({ timeout: 20_000 }), 'QUIET');
  } finally {
    delete process.env.TASKFLEET_KAFKA_USERNAME_FILE;
    delete process.env.TASKFLEET_KAFKA_PASSWORD_FILE;
    await producer.close();
  }
  worker.signal('SIGTERM');
  await worker.exit();
  const output = JSON.stringify(worker.logs) + worker.text.join('\n');
  assert.ok(!output.includes(sasl.password), 'the password appears in the worker output');
  assert.match(output, /SASL scram-sha-256 as taskfleet|kafka:\/\//);
});
