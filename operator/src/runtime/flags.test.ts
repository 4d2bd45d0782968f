import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlagError, parseBoolean, parseWatchNamespaces, parseWorkerResources } from './flags.ts';

test('--watch-namespaces: a comma list, trimmed and deduplicated; empty means every namespace', () => {
  assert.deepEqual(parseWatchNamespaces('team-a, team-b,,team-a'), ['team-a', 'team-b']);
  assert.deepEqual(parseWatchNamespaces(''), []);
  assert.deepEqual(parseWatchNamespaces(undefined), []);
  assert.throws(
    () => parseWatchNamespaces('team-a,Team_B'),
    (e: unknown) =>
      e instanceof FlagError && /TASKFLEET_WATCH_NAMESPACES.*"Team_B" is not a namespace name/.test(e.message),
  );
});

test('--read-secrets: true or false, nothing else', () => {
  assert.equal(parseBoolean('--read-secrets', undefined, true), true);
  assert.equal(parseBoolean('--read-secrets', 'false', true), false);
  assert.throws(() => parseBoolean('--read-secrets', 'no', true), /--read-secrets must be true or false, not "no"/);
});

test('--worker-resources: requests and limits of quantities; {} adds none; mistakes named', () => {
  assert.equal(parseWorkerResources(undefined), undefined);
  assert.deepEqual(parseWorkerResources('{}'), {});
  assert.deepEqual(
    parseWorkerResources('{"requests":{"cpu":"200m","memory":"256Mi"},"limits":{"memory":"1Gi","cpu":1}}'),
    {
      requests: { cpu: '200m', memory: '256Mi' },
      limits: { memory: '1Gi', cpu: '1' },
    },
  );
  assert.throws(() => parseWorkerResources('{cpu: 1}'), /is not JSON/);
  assert.throws(() => parseWorkerResources('[]'), /must be a JSON object/);
  assert.throws(() => parseWorkerResources('{"request":{}}'), /"request": only requests and limits/);
  assert.throws(() => parseWorkerResources('{"limits":{"memory":"lots"}}'), /limits\.memory is not a quantity/);
});
