import assert from 'node:assert/strict';
import { test } from 'node:test';
import { nameProblem } from '../api/names.ts';
import { apiPath, assertSafePath, InvalidNameError } from './kube-path.ts';

test('apiPath builds core and group paths, with subresources', () => {
  assert.equal(
    apiPath({ group: '', version: 'v1', resource: 'secrets', namespace: 'team-a', name: 'redis' }),
    '/api/v1/namespaces/team-a/secrets/redis',
  );
  assert.equal(
    apiPath({
      group: 'apps',
      version: 'v1',
      resource: 'deployments',
      namespace: 'a',
      name: 'w.x',
      subresource: 'scale',
    }),
    '/apis/apps/v1/namespaces/a/deployments/w.x/scale',
  );
  assert.equal(
    apiPath({ group: 'taskfleet.dev', version: 'v1alpha1', resource: 'taskqueues' }),
    '/apis/taskfleet.dev/v1alpha1/taskqueues',
  );
});

const traversals = [
  '../../kube-system/secrets/cloud-credentials',
  '..',
  '.',
  'a/b',
  '..%2F..%2Fkube-system',
  'UPPER',
  '',
  'x'.repeat(254),
  'trailing-',
  'sp ace',
];
for (const name of traversals) {
  test(`apiPath refuses the name ${JSON.stringify(name.slice(0, 40))} before building anything`, () => {
    assert.throws(
      () => apiPath({ group: '', version: 'v1', resource: 'secrets', namespace: 'team-a', name }),
      (error: unknown) => error instanceof InvalidNameError && error.code === 'INVALID_NAME',
    );
  });
}

test('apiPath refuses a namespace that is not a DNS-1123 label, and a subresource without a name', () => {
  assert.throws(
    () => apiPath({ group: '', version: 'v1', resource: 'secrets', namespace: 'a.b', name: 'x' }),
    InvalidNameError,
  );
  assert.throws(() => apiPath({ group: '', version: 'v1', resource: 'secrets', namespace: '../x' }), InvalidNameError);
  assert.throws(
    () => apiPath({ group: 'apps', version: 'v1', resource: 'deployments', subresource: 'scale' }),
    InvalidNameError,
  );
});

test('assertSafePath refuses dot segments, empty segments and escapes, and passes built paths and queries', () => {
  for (const path of [
    '/api/v1/namespaces/a/secrets/../../kube-system/secrets/x',
    '/api/v1/namespaces/a/secrets/./x',
    '/api/v1/namespaces/a/secrets/..%2F..%2Fx',
    '/api/v1/namespaces//secrets',
    'api/v1/secrets',
  ]) {
    assert.throws(() => assertSafePath(path), InvalidNameError, path);
  }
  assertSafePath('/api/v1/namespaces/a/pods?labelSelector=a%3Db');
  assertSafePath(
    apiPath({ group: 'coordination.k8s.io', version: 'v1', resource: 'leases', namespace: 'a', name: 'l' }),
  );
});

test('nameProblem: subdomains, labels and Secret keys as the API server has them; never quotes the value', () => {
  assert.equal(nameProblem('subdomain', 'redis-url.v2'), undefined);
  assert.equal(nameProblem('subdomain', 'a'.repeat(253)), undefined);
  assert.match(nameProblem('subdomain', 'a'.repeat(254)) ?? '', /at most 253 characters, and is 254/);
  assert.match(nameProblem('subdomain', '../x') ?? '', /must be a DNS-1123 subdomain/);
  assert.doesNotMatch(nameProblem('subdomain', 'hunter2-SECRET') ?? '', /hunter2/);
  assert.equal(nameProblem('label', 'team-a'), undefined);
  assert.match(nameProblem('label', 'a.b') ?? '', /DNS-1123 label/);
  assert.equal(nameProblem('secretKey', 'REDIS_URL.v-1'), undefined);
  assert.match(nameProblem('secretKey', 'a/b') ?? '', /Secret key/);
  assert.match(nameProblem('secretKey', '') ?? '', /is empty/);
  assert.match(nameProblem('secretKey', 'k'.repeat(254)) ?? '', /at most 253/);
});
