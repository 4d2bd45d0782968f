/** The pure parts of the operator's tenancy checks: names, ownership, Secret values and the scrubber. */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { TaskQueue, TaskQueueSpec } from '../api/types.ts';
import { managedNameConflict, type ScalerRef, scaleTargetOwner } from './ownership.ts';
import { Scrubber, scrubbingLogger } from './scrub.ts';
import { credentialProblem, pemProblem, redisUrlProblem } from './secret-values.ts';
import { invalidName } from './spec-names.ts';

function tq(
  name: string,
  spec: Partial<TaskQueueSpec>,
  created = '2026-01-01T00:00:00Z',
  uid = `uid-${name}`,
): TaskQueue {
  return {
    apiVersion: 'taskfleet.dev/v1alpha1',
    kind: 'TaskQueue',
    metadata: { name, namespace: 'team-a', uid, creationTimestamp: created },
    spec: { broker: { redis: { url: 'redis://r:6379' } }, ...spec },
  };
}

describe('names admitted under an older CRD', () => {
  const cases: [string, Partial<TaskQueueSpec>, string][] = [
    [
      'a traversal in urlFrom',
      { broker: { redis: { urlFrom: { secretKeyRef: { name: '../../kube-system/secrets/x', key: 'url' } } } } },
      'spec.broker.redis.urlFrom.secretKeyRef.name',
    ],
    [
      'a key with a slash',
      { broker: { redis: { urlFrom: { secretKeyRef: { name: 'redis', key: 'a/b' } } } } },
      'spec.broker.redis.urlFrom.secretKeyRef.key',
    ],
    [
      'the result backend',
      { resultBackend: { redis: { urlFrom: { secretKeyRef: { name: 'A..B', key: 'url' } } } } },
      'spec.resultBackend.redis.urlFrom.secretKeyRef.name',
    ],
    [
      'Kafka SASL',
      { broker: { kafka: { brokers: ['k:9092'], sasl: { mechanism: 'plain', secretRef: { name: '..' } } } } },
      'spec.broker.kafka.sasl.secretRef.name',
    ],
    [
      'Kafka TLS files',
      {
        broker: {
          kafka: { brokers: ['k:9092'], tls: { enabled: true, caFrom: { secretKeyRef: { name: 'x/y', key: 'ca' } } } },
        },
      },
      'spec.broker.kafka.tls.caFrom.secretKeyRef.name',
    ],
    [
      'scaleTargetRef',
      { scaleTargetRef: { name: '../../kube-system/deployments/coredns' } },
      'spec.scaleTargetRef.name',
    ],
    ['a name too long', { scaleTargetRef: { name: 'a'.repeat(254) } }, 'spec.scaleTargetRef.name'],
  ];
  for (const [what, spec, field] of cases) {
    test(`${what} is an InvalidSpec naming ${field}`, () => {
      const error = invalidName(tq('q', spec));
      assert.ok(error, 'refused');
      assert.equal(error.code, 'INVALID_SPEC');
      assert.equal(error.field, field);
      assert.ok(error.message.startsWith(`${field} "`), error.message);
      assert.match(error.message, /reads and changes nothing/);
    });
  }
  test('valid names pass', () => {
    assert.equal(
      invalidName(
        tq('q', {
          broker: { redis: { urlFrom: { secretKeyRef: { name: 'redis.v2', key: 'REDIS_URL' } } } },
          scaleTargetRef: { name: 'web' },
        }),
      ),
      undefined,
    );
  });
});

describe('who owns a scaleTargetRef', () => {
  const me = tq('mine', { scaleTargetRef: { name: 'web' } }, '2026-02-01T00:00:00Z');
  const hpa: ScalerRef = {
    kind: 'HorizontalPodAutoscaler',
    name: 'web-hpa',
    target: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'web' },
  };
  test('an HPA or a ScaledObject (defaults: apps/v1 Deployment) targeting the Deployment', () => {
    assert.deepEqual(scaleTargetOwner(me, { scalers: [hpa], taskQueues: [] }), {
      kind: 'HorizontalPodAutoscaler',
      name: 'web-hpa',
    });
    const so: ScalerRef = { kind: 'ScaledObject', name: 'web-so', target: { name: 'web' } };
    assert.deepEqual(scaleTargetOwner(me, { scalers: [so], taskQueues: [] }), { kind: 'ScaledObject', name: 'web-so' });
  });
  test('scalers of other Deployments or other kinds do not count', () => {
    const other: ScalerRef = { ...hpa, target: { apiVersion: 'apps/v1', kind: 'Deployment', name: 'api' } };
    const sts: ScalerRef = { ...hpa, target: { apiVersion: 'apps/v1', kind: 'StatefulSet', name: 'web' } };
    assert.equal(scaleTargetOwner(me, { scalers: [other, sts], taskQueues: [] }), undefined);
  });
  test('the older of two TaskQueues keeps the target; the newer is refused', () => {
    const older = tq('first', { scaleTargetRef: { name: 'web' } }, '2026-01-01T00:00:00Z');
    assert.deepEqual(scaleTargetOwner(me, { scalers: [], taskQueues: [older, me] }), {
      kind: 'TaskQueue',
      name: 'first',
    });
    assert.equal(scaleTargetOwner(older, { scalers: [], taskQueues: [older, me] }), undefined);
    const twin = tq('aaa', { scaleTargetRef: { name: 'web' } }, '2026-02-01T00:00:00Z');
    assert.deepEqual(scaleTargetOwner(me, { scalers: [], taskQueues: [twin, me] }), { kind: 'TaskQueue', name: 'aaa' });
  });
  test('a Deployment another TaskQueue controls (its managed workers)', () => {
    const deployment = {
      metadata: {
        name: 'web',
        ownerReferences: [
          { apiVersion: 'taskfleet.dev/v1alpha1', kind: 'TaskQueue', name: 'other', uid: 'u', controller: true },
        ],
      },
    };
    assert.deepEqual(scaleTargetOwner(me, { scalers: [], taskQueues: [], deployment }), {
      kind: 'TaskQueue',
      name: 'other',
    });
  });
});

describe('the managed Deployment name', () => {
  const me = tq('emails', {});
  const owned = (uid: string, kind = 'TaskQueue', apiVersion = 'taskfleet.dev/v1alpha1') => ({
    metadata: {
      name: 'emails-workers',
      ownerReferences: [{ apiVersion, kind, name: 'emails', uid, controller: true }],
    },
  });
  test('free, or controlled by this TaskQueue: applied', () => {
    assert.equal(managedNameConflict(me, undefined), undefined);
    assert.equal(managedNameConflict(me, owned('uid-emails')), undefined);
  });
  test('a user’s Deployment, another TaskQueue’s, or another controller’s: a conflict, not a takeover', () => {
    assert.match(
      managedNameConflict(me, { metadata: { name: 'emails-workers' } }) ?? '',
      /exists and is not controlled by this TaskQueue: the operator will not take it over/,
    );
    assert.match(
      managedNameConflict(me, owned('old-uid')) ?? '',
      /controlled by another TaskQueue emails \(uid old-uid\)/,
    );
    assert.match(
      managedNameConflict(me, owned('x', 'Rollout', 'argoproj.io/v1alpha1')) ?? '',
      /controlled by Rollout emails/,
    );
  });
});

describe('values read from Secrets', () => {
  test('a Redis URL: only redis:// and rediss:// with a host; the problem never quotes the value', () => {
    assert.equal(redisUrlProblem('redis://:pw@redis:6379/0'), undefined);
    assert.equal(redisUrlProblem('rediss://redis.ns.svc'), undefined);
    for (const value of ['hunter2-password', 'http://hunter2-host', 'redis://', '']) {
      assert.match(redisUrlProblem(value) ?? '', /redis:\/\//, value);
    }
    for (const value of ['hunter2-password', 'http://hunter2-host']) {
      assert.ok(!redisUrlProblem(value)?.includes('hunter2'), value);
    }
  });
  test('PEM blocks and credentials', () => {
    assert.equal(
      pemProblem('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n', 'CERTIFICATE'),
      undefined,
    );
    assert.equal(
      pemProblem('-----BEGIN EC PRIVATE KEY-----\nx\n-----END EC PRIVATE KEY-----', 'PRIVATE KEY'),
      undefined,
    );
    assert.match(pemProblem('not-a-pem', 'CERTIFICATE') ?? '', /does not hold a PEM certificate/);
    assert.equal(credentialProblem('user'), undefined);
    assert.equal(credentialProblem(''), 'is empty');
  });
});

describe('the scrubber', () => {
  test('masks recorded Secret values and URL credentials in text, fields, errors and loggers', () => {
    const scrub = new Scrubber();
    scrub.secret('hunter2-password');
    assert.equal(scrub.text('bad: hunter2-password'), 'bad: ***');
    assert.equal(scrub.text('at redis://u:pw@h:1/0?password=p'), 'at redis://u:***@h:1/0?password=***');
    assert.deepEqual(scrub.fields({ error: new Error('x hunter2-password'), n: 1 }), { error: 'x ***', n: 1 });
    const error = new TypeError('Invalid URL: hunter2-password');
    assert.equal(scrub.error(error), error, 'the same error, its class kept');
    assert.equal(error.message, 'Invalid URL: ***');
    assert.ok(!String(error.stack).includes('hunter2'));
    const lines: string[] = [];
    const base = {
      debug: (m: string, f?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(f)}`),
      info: (m: string, f?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(f)}`),
      warn: (m: string, f?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(f)}`),
      error: (m: string, f?: Record<string, unknown>) => lines.push(`${m} ${JSON.stringify(f)}`),
      child: () => base,
    };
    const log = scrubbingLogger(base, scrub).child({ c: 1 });
    log.warn('failed hunter2-password', { url: 'redis://:hunter2-password@x' });
    assert.deepEqual(lines, ['failed *** {"url":"redis://:***@x"}']);
  });
});
