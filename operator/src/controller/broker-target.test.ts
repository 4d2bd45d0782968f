import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TaskQueue, TaskQueueSpec } from '../api/types.ts';
import { brokerTarget, type SecretsContext } from './broker-target.ts';
import { BrokerConfigError } from './errors.ts';
import { Scrubber } from './scrub.ts';

const tq = (broker: TaskQueueSpec['broker'], queue?: string): TaskQueue => ({
  apiVersion: 'taskfleet.dev/v1alpha1',
  kind: 'TaskQueue',
  metadata: { name: 'emails', namespace: 'shop' },
  spec: { broker, ...(queue ? { queue } : {}) },
});
const b64 = (text: string) => Buffer.from(text).toString('base64');
const PEM = (label: string) => `-----BEGIN ${label}-----\nMIIB\n-----END ${label}-----\n`;

/** Secrets of namespace shop, by name; `gets` counts the GETs sent. */
function secrets(data: Record<string, Record<string, string>>, readSecrets = true) {
  const gets: string[] = [];
  const scrub = new Scrubber();
  const ctx: SecretsContext = {
    readSecrets,
    scrub,
    kube: {
      find: async <T>(path: string) => {
        gets.push(path);
        const values = data[path.split('/').at(-1) as string];
        return (values && { data: Object.fromEntries(Object.entries(values).map(([k, v]) => [k, b64(v)])) }) as T;
      },
    },
  };
  return { ctx, gets, scrub };
}

const rejectsWith = (promise: Promise<unknown>, reason: string, message: RegExp) =>
  assert.rejects(promise, (error) => {
    assert.ok(error instanceof BrokerConfigError);
    assert.equal(error.reason, reason);
    assert.match(error.message, message);
    return true;
  });

describe('brokerTarget', () => {
  test('a Redis URL from a Secret, recorded in the scrubber; the queue and prefix defaulted', async () => {
    const { ctx, gets, scrub } = secrets({ redis: { url: 'redis://:hunter2@redis.shop:6379/0' } });
    const target = await brokerTarget(ctx, tq({ redis: { urlFrom: { secretKeyRef: { name: 'redis', key: 'url' } } } }));
    assert.deepEqual(target, {
      kind: 'redis',
      url: 'redis://:hunter2@redis.shop:6379/0',
      prefix: 'tf',
      queue: 'emails',
    });
    assert.deepEqual(gets, ['/api/v1/namespaces/shop/secrets/redis']);
    assert.equal(scrub.text('connect redis://:hunter2@redis.shop:6379/0 failed'), 'connect *** failed');
  });

  test('a missing Secret or key is SecretNotFound; a value that is no Redis URL is InvalidSecretValue, unquoted', async () => {
    const ref = (name: string, key: string) => ({ redis: { urlFrom: { secretKeyRef: { name, key } } } });
    const { ctx } = secrets({ redis: { url: 'not a url: hunter2' } });
    await rejectsWith(
      brokerTarget(ctx, tq(ref('gone', 'url'))),
      'SecretNotFound',
      /^Secret gone \(spec\.broker\.redis\.urlFrom\) does not exist$/,
    );
    await rejectsWith(brokerTarget(ctx, tq(ref('redis', 'uri'))), 'SecretNotFound', /has no key uri/);
    await rejectsWith(
      brokerTarget(ctx, tq(ref('redis', 'url'))),
      'InvalidSecretValue',
      /^Secret redis key url \(spec\.broker\.redis\.urlFrom\) is not a redis:\/\/ or rediss:\/\/ URL$/,
    );
  });

  test('with --read-secrets=false, a setting that names a Secret is SecretsNotRead, and nothing is read', async () => {
    const { ctx, gets } = secrets({}, false);
    await rejectsWith(
      brokerTarget(ctx, tq({ redis: { urlFrom: { secretKeyRef: { name: 'redis', key: 'url' } } } })),
      'SecretsNotRead',
      /^spec\.broker\.redis\.urlFrom names a Secret/,
    );
    const sasl = { mechanism: 'plain' as const, secretRef: { name: 'kafka' } };
    await rejectsWith(
      brokerTarget(ctx, tq({ kafka: { brokers: ['k:9092'], sasl } })),
      'SecretsNotRead',
      /sasl\.secretRef/,
    );
    assert.deepEqual(gets, []);
    assert.deepEqual(await brokerTarget(ctx, tq({ redis: { url: 'redis://r:6379' } }, 'mail')), {
      kind: 'redis',
      url: 'redis://r:6379',
      prefix: 'tf',
      queue: 'mail',
    });
  });

  test('Kafka: each Secret read once however many keys it gives; PEM and credentials checked', async () => {
    const { ctx, gets } = secrets({
      tls: { ca: PEM('CERTIFICATE'), cert: PEM('CERTIFICATE'), key: PEM('PRIVATE KEY') },
      kafka: { username: 'emails', password: 'hunter2' },
    });
    const file = (key: string) => ({ secretKeyRef: { name: 'tls', key } });
    const kafka = {
      brokers: ['k:9093'],
      tls: { enabled: true, caFrom: file('ca'), certFrom: file('cert'), keyFrom: file('key') },
      sasl: { mechanism: 'scram-sha-512' as const, secretRef: { name: 'kafka' } },
    };
    const target = await brokerTarget(ctx, tq({ kafka }));
    assert.deepEqual(target, {
      kind: 'kafka',
      brokers: ['k:9093'],
      prefix: 'tf',
      queue: 'emails',
      tls: { ca: PEM('CERTIFICATE'), cert: PEM('CERTIFICATE'), key: PEM('PRIVATE KEY') },
      sasl: { mechanism: 'scram-sha-512', username: 'emails', password: 'hunter2' },
    });
    assert.deepEqual(gets, ['/api/v1/namespaces/shop/secrets/tls', '/api/v1/namespaces/shop/secrets/kafka']);
    const swapped = { ...kafka, tls: { ...kafka.tls, caFrom: file('key') } };
    await rejectsWith(
      brokerTarget(ctx, tq({ kafka: swapped })),
      'InvalidSecretValue',
      /key key \(spec\.broker\.kafka\.tls\.caFrom\) does not hold a PEM certificate/,
    );
    await rejectsWith(
      brokerTarget(ctx, tq({ kafka: { brokers: ['k:9092'] } }, 'a/b')),
      'InvalidSpec',
      /cannot name Kafka topics/,
    );
  });
});
