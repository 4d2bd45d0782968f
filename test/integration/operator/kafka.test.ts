/**
 * A Kafka TaskQueue end to end: the operator (its own process, with the ServiceAccount of
 * charts/taskfleet/files/rbac-rules.yaml) against the real control plane and a real Kafka. The fleet is capped at the
 * topic's partitions unless idle consumers are allowed, the status backlog is the group's lag as
 * Kafka's admin API reports it, rates come from the offsets, SASL credentials and the TLS CA come from
 * Secrets (a missing one is a condition), and the API server refuses what a Kafka queue cannot do.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { after, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import { KafkaBroker } from 'taskfleet/operator';
import { createEnvelope } from '../../../worker/src/message/envelope.ts';
import { eventually } from '../../support/eventually.ts';
import { kafkaLag, takePartway } from '../../support/kafka-lag.ts';
import { condition, inNamespace, type Json, kubectl } from '../../support/kube.ts';
import { operatorKubeconfig, startOperator } from '../../support/operator.ts';
import { useKafka } from '../../support/stack.ts';

const namespace = `kafka-${randomUUID().slice(0, 8)}`;
const prefix = `opk-${randomUUID().slice(0, 8)}`;
const endpoint = await useKafka();
const { brokers } = endpoint;
const kubeconfig = await operatorKubeconfig(namespace);
const operator = startOperator(kubeconfig, namespace, 'operator');
const publisher = new KafkaBroker({ brokers, prefix, partitions: 4 });
const admin = new Kafka({ clientId: 'operator-kafka-test', brokers, logLevel: logLevel.NOTHING }).admin();
await admin.connect();
after(async () => {
  await publisher.close();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`));
  if (topics.length > 0) await admin.deleteTopics({ topics });
  await admin.disconnect();
});

const { get, replicas, events, applyTaskQueue: applyQueue, createSecret } = inNamespace(namespace);
const env = (deployment: Json | undefined) =>
  Object.fromEntries(
    ((deployment?.spec.template.spec.containers[0].env ?? []) as Json[]).map((e) => [e.name, e.value ?? e.valueFrom]),
  );

const worker = { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } };
const newQueue = () => `q-${randomUUID().slice(0, 8)}`;

/**
 * Sends `count` calls and returns how many records Kafka holds for them. Not always `count`: on a topic
 * just created, the adapter's producer (not idempotent) may write part of a batch twice, when a produce
 * answered NOT_LEADER_OR_FOLLOWER for one partition is retried whole.
 */
async function publish(queue: string, count: number): Promise<number> {
  await publisher.publish(Array.from({ length: count }, (_, i) => createEnvelope({ task: 'noop', args: [i], queue })));
  const { waiting, committedPartitions } = await kafkaLag(admin, prefix, queue);
  assert.equal(committedPartitions, 0, 'publish() is used on queues nobody consumed yet');
  assert.ok(waiting.main >= count, `${waiting.main} records for ${count} calls`);
  return waiting.main;
}

/** With the operator's output, so a timeout says what the operator was doing. */
function withOutput(error: Error): never {
  throw new Error(`${error.message}\noperator output:\n${operator.output().slice(-3000)}`);
}

test('a Kafka TaskQueue scales on the group’s lag, capped at the topic’s partitions unless idle consumers are allowed', async () => {
  const queue = newQueue();
  const written = await publish(queue, 40); // creates the topics, with 4 partitions
  const spec = {
    queue,
    broker: { kafka: { brokers, prefix } },
    worker,
    scaling: { pollIntervalSeconds: 1, maxReplicas: 10, targetBacklogPerReplica: 2 },
  };
  await applyQueue('capped', spec);

  // 40 over 2 per replica asks for 20; the topic has 4 partitions, so a fifth consumer would sit idle.
  const wanted = Math.ceil(written / 2);
  const tq = await eventually(
    '4 replicas, capped at 4 partitions',
    async () => {
      const tq = await get('taskqueue', 'capped');
      return (await replicas('capped-workers')) === 4 && tq?.status?.desiredReplicas === 4 && tq;
    },
    60_000,
  ).catch(withOutput);
  const limited = condition(tq, 'ScalingLimited');
  assert.deepEqual([limited?.status, limited?.reason], ['True', 'PartitionCount']);
  const why = `capped at 4 partitions (idle consumers not allowed); backlog ${written} over target 2 per replica → ${wanted}`;
  assert.ok(limited?.message.endsWith(`: ${why}`), limited?.message);
  assert.equal(tq.status.lastScaleReason, `scaled 1 → 4: ${why}`);
  assert.ok((await events('capped')).includes(`Scaled: scaled 1 → 4: ${why}`), (await events('capped')).join('\n'));
  assert.equal(condition(tq, 'BrokerReachable')?.message, `${written} ready, 0 delayed, 0 in flight, 4 partitions`);
  assert.equal(tq.status.brokerKind, 'kafka');

  // The status backlog is the group's lag as Kafka's admin reports it (never committed: from the earliest).
  const lag = await kafkaLag(admin, prefix, queue);
  assert.equal(lag.committedPartitions, 0);
  assert.deepEqual(tq.status.backlog, { ready: lag.waiting.main, delayed: lag.waiting.delay, inFlight: lag.handed });
  assert.deepEqual(tq.status.backlog, { ready: written, delayed: 0, inFlight: 0 });
  const row = (await kubectl(['get', 'taskqueue', 'capped', '-n', namespace, '--no-headers'])).trim().split(/\s+/);
  assert.deepEqual(row.slice(0, 5), ['capped', 'kafka', String(written), '0', '4']);

  // The workers get the broker, the prefix and the partition count for the topics they would create.
  const deployment = await get('deployment', 'capped-workers');
  assert.deepEqual(
    [
      env(deployment).TASKFLEET_BROKER,
      env(deployment).TASKFLEET_PREFIX,
      env(deployment).TASKFLEET_KAFKA_PARTITIONS,
      env(deployment).TASKFLEET_QUEUE,
    ],
    [`kafka://${brokers.join(',')}`, prefix, '12', queue],
  );

  // Consumers commit part of the way: 12 taken, 5 finished. The status follows the committed offsets.
  await takePartway(brokers, prefix, queue, { take: 12, finish: 5 });
  const committed = await kafkaLag(admin, prefix, queue);
  assert.deepEqual([committed.waiting.main, committed.handed], [written - 12, 7]);
  await eventually('the status to show the committed lag', async () => {
    const backlog = (await get('taskqueue', 'capped'))?.status?.backlog;
    return backlog?.ready === committed.waiting.main && backlog?.inFlight === committed.handed;
  });

  // Allowed idle consumers: past the partition count, up to maxReplicas.
  await applyQueue('capped', { ...spec, broker: { kafka: { brokers, prefix, allowIdleConsumers: true } } });
  const uncapped = await eventually(
    'more replicas than partitions',
    async () => {
      const replicasNow = (await replicas('capped-workers')) ?? 0;
      const tq = await get('taskqueue', 'capped');
      return replicasNow > 4 && tq?.status?.desiredReplicas > 4 && tq;
    },
    30_000,
  ).catch(withOutput);
  assert.match(uncapped.status.lastScaleReason, /^scaled \d+ → \d+: /);
  assert.doesNotMatch(uncapped.status.lastScaleReason, /capped at/);
  assert.notEqual(condition(uncapped, 'ScalingLimited')?.reason, 'PartitionCount');
});

test('rates come from the offsets: arrivals from the high watermarks, completions from the commits', async () => {
  const queue = newQueue();
  const send = () => publisher.publish([createEnvelope({ task: 'noop', args: [], queue })]);
  await send();
  await applyQueue('rates', {
    queue,
    broker: { kafka: { brokers, prefix } },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  // 10 calls a second in, and a consumer finishing each as it comes, until the operator has seen both.
  const consumerBroker = new KafkaBroker({ brokers, prefix });
  after(() => consumerBroker.close());
  const consumer = await consumerBroker.consume(queue, { consumer: 'rates' });
  const stop = new AbortController();
  const producing = (async () => {
    while (!stop.signal.aborted) {
      await send();
      await sleep(100);
    }
  })();
  const consuming = (async () => {
    while (!stop.signal.aborted) {
      for (const d of await consumer.receive(10, stop.signal)) await consumer.settle(d, { kind: 'ack' });
    }
  })();
  try {
    const rates = await eventually(
      'arrival and completion rates',
      async () => {
        const rates = (await get('taskqueue', 'rates'))?.status?.rates;
        return rates?.arrival > 0 && rates?.completion > 0 && rates;
      },
      30_000,
    ).catch(withOutput);
    assert.ok(rates.arrival < 50, `about 10 a second arrive, not ${rates.arrival}`);
    assert.ok(rates.completion < 50, `about 10 a second complete, not ${rates.completion}`);
  } finally {
    stop.abort();
    await Promise.all([producing, consuming]);
    await consumer.close();
  }
});

test('SASL credentials come from the Secret the spec names: a missing Secret or key is a condition', async () => {
  const { sasl } = endpoint;
  const mechanism = sasl.mechanisms.includes('scram-sha-512') ? 'scram-sha-512' : sasl.mechanisms[0];
  const queue = newQueue();
  const written = await publish(queue, 3);
  await applyQueue('sasl', {
    queue,
    broker: {
      kafka: { brokers: sasl.brokers, prefix, sasl: { mechanism, secretRef: { name: 'kafka-user' } } },
    },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  const missing = await eventually('BrokerReachable=False', async () => {
    const tq = await get('taskqueue', 'sasl');
    return condition(tq, 'BrokerReachable')?.status === 'False' && tq;
  }).catch(withOutput);
  assert.equal(condition(missing, 'BrokerReachable')?.reason, 'SecretNotFound');
  assert.equal(
    condition(missing, 'BrokerReachable')?.message,
    'Secret kafka-user (spec.broker.kafka.sasl.secretRef) does not exist',
  );
  assert.ok((await events('sasl')).some((e) => e.startsWith('SecretNotFound: Secret kafka-user')));
  assert.equal(await replicas('sasl-workers'), 1, 'the replicas it had');

  // The workers get the credentials by reference only.
  const deployment = await get('deployment', 'sasl-workers');
  const workerEnv = env(deployment);
  assert.equal(workerEnv.TASKFLEET_KAFKA_SASL_MECHANISM, mechanism);
  assert.deepEqual(workerEnv.TASKFLEET_KAFKA_USERNAME, { secretKeyRef: { name: 'kafka-user', key: 'username' } });
  assert.deepEqual(workerEnv.TASKFLEET_KAFKA_PASSWORD, { secretKeyRef: { name: 'kafka-user', key: 'password' } });

  await createSecret('kafka-user', { username: sasl.username });
  await eventually('the missing key to be named', async () => {
    const message = condition(await get('taskqueue', 'sasl'), 'BrokerReachable')?.message;
    return message === 'Secret kafka-user has no key password (spec.broker.kafka.sasl.secretRef)';
  }).catch(withOutput);

  await kubectl(['delete', 'secret', 'kafka-user', '-n', namespace]);
  await createSecret('kafka-user', { username: sasl.username, password: sasl.password });
  const probed = await eventually('a probe through the SASL listener', async () => {
    const tq = await get('taskqueue', 'sasl');
    return condition(tq, 'BrokerReachable')?.status === 'True' && tq;
  }).catch(withOutput);
  assert.deepEqual(probed.status.backlog, { ready: written, delayed: 0, inFlight: 0 });
  assert.equal(operator.child.exitCode, null, `the operator exited:\n${operator.output()}`);
});

test('TLS: the CA comes from a Secret for the probe, and reaches the workers as a mounted file', async () => {
  const { tls } = endpoint;
  const queue = newQueue();
  const written = await publish(queue, 2);
  const spec = (caFrom?: Json) => ({
    queue,
    broker: { kafka: { brokers: tls.brokers, prefix, tls: { enabled: true, ...(caFrom ? { caFrom } : {}) } } },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  // The listener's certificate is signed by the stack's own CA: the system's CAs do not trust it.
  await applyQueue('tls', spec());
  const untrusted = await eventually('BrokerReachable=False', async () => {
    const tq = await get('taskqueue', 'tls');
    return condition(tq, 'BrokerReachable')?.status === 'False' && tq;
  }).catch(withOutput);
  assert.equal(condition(untrusted, 'BrokerReachable')?.reason, 'ProbeFailed');

  await kubectl(['create', 'secret', 'generic', 'kafka-ca', '-n', namespace, `--from-file=ca.crt=${tls.caFile}`]);
  await applyQueue('tls', spec({ secretKeyRef: { name: 'kafka-ca', key: 'ca.crt' } }));
  const trusted = await eventually(
    'a probe through the TLS listener',
    async () => {
      const tq = await get('taskqueue', 'tls');
      return condition(tq, 'BrokerReachable')?.status === 'True' && tq;
    },
    30_000,
  ).catch(withOutput);
  assert.deepEqual(trusted.status.backlog, { ready: written, delayed: 0, inFlight: 0 });

  const deployment = await eventually('the Deployment with the CA mounted', async () => {
    const d = await get('deployment', 'tls-workers');
    return d?.spec.template.spec.volumes?.length > 0 && d;
  });
  const pod = deployment.spec.template.spec;
  assert.deepEqual(pod.volumes, [
    {
      name: 'taskfleet-kafka-tls',
      projected: {
        defaultMode: 420,
        sources: [{ secret: { name: 'kafka-ca', items: [{ key: 'ca.crt', path: 'ca.crt' }] } }],
      },
    },
  ]);
  assert.deepEqual(pod.containers[0].volumeMounts, [
    { name: 'taskfleet-kafka-tls', mountPath: '/var/run/secrets/taskfleet.dev/kafka', readOnly: true },
  ]);
  assert.equal(env(deployment).TASKFLEET_KAFKA_CA_FILE, '/var/run/secrets/taskfleet.dev/kafka/ca.crt');
  assert.equal(env(deployment).TASKFLEET_BROKER, `kafkas://${tls.brokers.join(',')}`);
  assert.doesNotMatch(JSON.stringify(deployment), new RegExp((await readFile(tls.caFile, 'utf8')).slice(30, 80)));
});

test('the API server refuses what a Kafka TaskQueue cannot be, and fills in its defaults', async () => {
  const kafka = (extra: Json = {}) => ({ kafka: { brokers: ['kafka-0.kafka:9092'], ...extra } });
  const rejected: [string, Json, RegExp][] = [
    [
      'both brokers',
      { broker: { ...kafka(), redis: { url: 'redis://r' } } },
      /set exactly one broker \(redis or kafka\)/,
    ],
    ['no brokers', { broker: { kafka: { brokers: [] } } }, /spec\.broker\.kafka\.brokers: Invalid value: 0/],
    ['an address without a port', { broker: { kafka: { brokers: ['kafka-0'] } } }, /should match/],
    ['a port out of range', { broker: { kafka: { brokers: ['kafka-0:70000'] } } }, /should match/],
    [
      'an unknown SASL mechanism',
      { broker: kafka({ sasl: { mechanism: 'gssapi', secretRef: { name: 's' } } }) },
      /Unsupported value: "gssapi"/,
    ],
    [
      'a client certificate without its key',
      { broker: kafka({ tls: { enabled: true, certFrom: { secretKeyRef: { name: 's', key: 'tls.crt' } } } }) },
      /set both certFrom and keyFrom, or neither/,
    ],
    [
      'a CA with TLS off',
      { broker: kafka({ tls: { enabled: false, caFrom: { secretKeyRef: { name: 's', key: 'ca.crt' } } } }) },
      /caFrom, certFrom and keyFrom need enabled: true/,
    ],
    ['0 partitions', { broker: kafka({ partitions: 0 }) }, /should be greater than or equal to 1/],
    ['a queue that cannot name a topic', { queue: 'mail:high', broker: kafka() }, /a Kafka queue names topics/],
    [
      'schedules',
      { broker: kafka(), schedules: [{ name: 'nightly', cron: '0 3 * * *', task: 'report' }] },
      /schedules need a Redis broker/,
    ],
  ];
  for (const [what, spec, message] of rejected) {
    await assert.rejects(applyQueue(`bad-${randomUUID().slice(0, 6)}`, { ...spec, worker }), message, what);
  }
  // A queue name with a colon is fine on Redis.
  await applyQueue('redis-colon', { queue: 'mail:high', broker: { redis: { url: 'redis://r' } }, worker });

  await applyQueue('defaults', { broker: kafka(), worker });
  const tq = await get('taskqueue', 'defaults');
  assert.deepEqual(tq?.spec.broker.kafka, {
    brokers: ['kafka-0.kafka:9092'],
    partitions: 12,
    prefix: 'tf',
    allowIdleConsumers: false,
  });
  // Their brokers do not exist: stop the operator probing them.
  await kubectl(['delete', 'taskqueue', 'redis-colon', 'defaults', '-n', namespace]);
});
