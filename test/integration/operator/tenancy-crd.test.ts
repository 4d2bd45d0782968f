/**
 * The CRD refuses, at the API server, what a tenant could turn against the operator: object names that
 * are not Kubernetes names (a traversal such as `../../kube-system/secrets/x` in a secretKeyRef, a
 * sasl.secretRef or a scaleTargetRef), Secret keys that are not keys, and credentials written inline in
 * a URL (readable by anyone with `view`), with a message that says to use urlFrom.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { installCrds } from '../../support/crds.ts';
import { type Json, kubectl } from '../../support/kube.ts';

const namespace = `tenancy-crd-${randomUUID().slice(0, 8)}`;
before(async () => {
  await installCrds();
  await kubectl(['create', 'namespace', namespace]);
});
after(() => kubectl(['delete', 'namespace', namespace, '--wait=false']));

const worker = { template: { spec: { containers: [{ name: 'worker', image: 'example.invalid/tasks:1' }] } } };
/** Server-side dry run: admission and validation as for a create, nothing stored. */
const create = (spec: Json) =>
  kubectl(['create', '--dry-run=server', '-f', '-'], {
    input: JSON.stringify({
      apiVersion: 'taskfleet.dev/v1alpha1',
      kind: 'TaskQueue',
      metadata: { name: `q-${randomUUID().slice(0, 6)}`, namespace },
      spec,
    }),
  });
const urlFrom = (name: string, key = 'url') => ({ urlFrom: { secretKeyRef: { name, key } } });
const kafka = (extra: Json) => ({ kafka: { brokers: ['kafka:9092'], ...extra } });

const refused: [string, Json, RegExp][] = [
  [
    'a traversal in broker.redis.urlFrom',
    { broker: { redis: urlFrom('../../kube-system/secrets/cloud-credentials') }, worker },
    /spec\.broker\.redis\.urlFrom\.secretKeyRef\.name in body should match/,
  ],
  [
    'a slash in resultBackend.redis.urlFrom',
    { broker: { redis: { url: 'redis://r' } }, resultBackend: { redis: urlFrom('a/b') }, worker },
    /spec\.resultBackend\.redis\.urlFrom\.secretKeyRef\.name in body should match/,
  ],
  [
    'a Secret name of 254 characters',
    { broker: { redis: urlFrom('a'.repeat(254)) }, worker },
    /spec\.broker\.redis\.urlFrom\.secretKeyRef\.name: Too long: may not be (longer|more) than 253/,
  ],
  [
    'a Secret key with a slash',
    { broker: { redis: urlFrom('redis', '../url') }, worker },
    /spec\.broker\.redis\.urlFrom\.secretKeyRef\.key in body should match/,
  ],
  [
    'a traversal in kafka.sasl.secretRef',
    { broker: kafka({ sasl: { mechanism: 'plain', secretRef: { name: '../other/secrets/kafka' } } }), worker },
    /spec\.broker\.kafka\.sasl\.secretRef\.name in body should match/,
  ],
  [
    'an upper-case name in kafka.tls.caFrom',
    { broker: kafka({ tls: { enabled: true, caFrom: { secretKeyRef: { name: 'CA', key: 'ca.crt' } } } }), worker },
    /spec\.broker\.kafka\.tls\.caFrom\.secretKeyRef\.name in body should match/,
  ],
  [
    'a traversal in scaleTargetRef',
    { broker: { redis: { url: 'redis://r' } }, scaleTargetRef: { name: '../../kube-system/deployments/coredns' } },
    /spec\.scaleTargetRef\.name in body should match/,
  ],
  [
    'a password in an inline url',
    { broker: { redis: { url: 'redis://:s3cret@redis:6379/0' } }, worker },
    /spec\.broker\.redis\.url: Invalid value: the URL carries credentials \(user information before @\): put the URL in a Secret and set urlFrom instead of url/,
  ],
  [
    'a user and password in an inline backend url',
    {
      broker: { redis: { url: 'redis://r' } },
      resultBackend: { redis: { url: 'rediss://app:s3cret@redis/1' } },
      worker,
    },
    /spec\.resultBackend\.redis\.url: .*the URL carries credentials \(user information before @\)/,
  ],
  [
    'a token as the userinfo',
    { broker: { redis: { url: 'redis://s3cret-token@redis' } }, worker },
    /the URL carries credentials \(user information before @\)/,
  ],
  [
    'a ?password= query parameter',
    { broker: { redis: { url: 'redis://redis:6379/0?password=s3cret' } }, worker },
    /the URL carries credentials \(a password= or token= query parameter\): put the URL in a Secret and set urlFrom/,
  ],
  [
    'a &Token= query parameter',
    { broker: { redis: { url: 'redis://redis:6379/0?db=1&Token=s3cret' } }, worker },
    /a password= or token= query parameter/,
  ],
];
for (const [what, spec, message] of refused) {
  test(`the API server refuses ${what}`, async () => {
    const error = await create(spec).then(
      () => assert.fail('accepted'),
      (e: Error) => e.message,
    );
    assert.match(error, message);
    // Refused credentials are not echoed back (kubectl's output ends up in CI logs).
    assert.equal(error.includes('s3cret'), false, error);
  });
}

test('valid names, keys and a URL without credentials are accepted', async () => {
  await create({
    broker: { redis: { url: 'redis://redis.shop.svc:6379/0?db=2' } },
    resultBackend: { redis: urlFrom('redis-backend.v2', 'REDIS_URL') },
    worker,
  });
  await create({
    broker: kafka({
      sasl: { mechanism: 'scram-sha-512', secretRef: { name: 'kafka-user' } },
      tls: { enabled: true, caFrom: { secretKeyRef: { name: 'kafka-ca', key: 'ca.crt' } } },
    }),
    scaleTargetRef: { name: 'web.v2' },
  });
});
