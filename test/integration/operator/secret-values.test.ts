/**
 * No secret leaves its Secret. The common slip — `urlFrom` pointing at a key that holds only a password —
 * used to put the password into the error text, and from there into a condition and a Warning Event
 * anyone with `view` reads. Now the operator checks the value before any client sees it and says what is
 * wrong without quoting it; and whatever a client's error quotes is scrubbed of every value read.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { test } from 'node:test';
import { eventually } from '../../support/eventually.ts';
import { condition, inNamespace, kubectl } from '../../support/kube.ts';
import { operatorKubeconfig, startOperator } from '../../support/operator.ts';
import { useRedis } from '../../support/stack.ts';

const namespace = `secretval-${randomUUID().slice(0, 8)}`;
const { get, events, applyTaskQueue: apply, createSecret: secret } = inNamespace(namespace);
const worker = { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } };

const { url: redisUrl } = await useRedis();
const kubeconfig = await operatorKubeconfig(namespace);
const operator = startOperator(kubeconfig, namespace, 'operator-secrets');

/** Everything anyone could read about the namespace and the operator, as one text. */
async function everything(): Promise<string> {
  return [
    await kubectl(['get', 'taskqueues', '-n', namespace, '-o', 'json']),
    await kubectl(['get', 'events', '-n', namespace, '-o', 'json']),
    operator.output(),
  ].join('\n');
}

test('a Secret key holding a bare password: the condition, the Event and the log name the Secret and key, never the value', async () => {
  const password = `Zq8-bare-password-${randomUUID().slice(0, 8)}`;
  await secret('redis-password', { url: password });
  await apply('slip', {
    broker: { redis: { urlFrom: { secretKeyRef: { name: 'redis-password', key: 'url' } } } },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  const expected = 'Secret redis-password key url (spec.broker.redis.urlFrom) is not a redis:// or rediss:// URL';
  const tq = await eventually('BrokerReachable=False', async () => {
    const tq = await get('taskqueue', 'slip');
    return condition(tq, 'BrokerReachable')?.status === 'False' && tq;
  });
  assert.equal(condition(tq, 'BrokerReachable')?.reason, 'InvalidSecretValue');
  assert.equal(condition(tq, 'BrokerReachable')?.message, expected);
  assert.match(
    condition(tq, 'Ready')?.message,
    /Secret redis-password key url \(spec\.broker\.redis\.urlFrom\) is not a redis:\/\//,
  );
  await eventually('the Warning Event', async () => (await events('slip')).includes(`InvalidSecretValue: ${expected}`));
  await eventually('the log line', () =>
    operator
      .output()
      .split('\n')
      .some((line) => line.includes('"reason":"InvalidSecretValue"') && line.includes(expected)),
  );
  assert.equal((await everything()).includes(password), false, 'the password leaked');
});

test('a Kafka TLS CA that is not PEM: InvalidSecretValue naming the Secret, key and field, never the value', async () => {
  const value = `not-a-pem-${randomUUID().slice(0, 8)}`;
  await secret('kafka-ca', { 'ca.crt': value });
  await apply('kafka-tls', {
    broker: {
      kafka: {
        brokers: ['kafka.invalid:9093'],
        tls: { enabled: true, caFrom: { secretKeyRef: { name: 'kafka-ca', key: 'ca.crt' } } },
      },
    },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  const tq = await eventually('InvalidSecretValue', async () => {
    const tq = await get('taskqueue', 'kafka-tls');
    return condition(tq, 'BrokerReachable')?.reason === 'InvalidSecretValue' && tq;
  });
  assert.equal(
    condition(tq, 'BrokerReachable')?.message,
    'Secret kafka-ca key ca.crt (spec.broker.kafka.tls.caFrom) does not hold a PEM certificate (-----BEGIN CERTIFICATE-----)',
  );
  assert.equal((await everything()).includes(value), false, 'the value leaked');
});

test('a URL with a password that cannot be reached: the probe error names the failure, not the password', async () => {
  const password = `Pw-${randomUUID().slice(0, 12)}`;
  // A port nobody listens on: ioredis fails, and its error goes through the scrubber with the URL's value.
  await secret('redis-unreachable', { url: `redis://:${password}@127.0.0.1:1/0` });
  await apply('unreachable', {
    broker: { redis: { urlFrom: { secretKeyRef: { name: 'redis-unreachable', key: 'url' } } } },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  const tq = await eventually('ProbeFailed', async () => {
    const tq = await get('taskqueue', 'unreachable');
    return condition(tq, 'BrokerReachable')?.reason === 'ProbeFailed' && tq;
  });
  assert.match(condition(tq, 'BrokerReachable')?.message, /127\.0\.0\.1:1/);
  assert.equal((await everything()).includes(password), false, 'the password leaked');
});

test('a Secret holding a good URL still probes: the checks refuse only what is wrong', async () => {
  await secret('redis-good', { url: redisUrl });
  await apply('good', {
    broker: { redis: { urlFrom: { secretKeyRef: { name: 'redis-good', key: 'url' } } } },
    worker,
    scaling: { pollIntervalSeconds: 1 },
  });
  const tq = await eventually('Probed', async () => {
    const tq = await get('taskqueue', 'good');
    return condition(tq, 'BrokerReachable')?.reason === 'Probed' && tq;
  });
  assert.equal(condition(tq, 'Ready')?.status, 'True');
  assert.equal(operator.child.exitCode, null, `the operator exited:\n${operator.output()}`);
});
