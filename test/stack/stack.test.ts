import assert from 'node:assert/strict';
import { test } from 'node:test';
import { allComponents, parseComponents } from './stack.ts';

test('no list, an empty list or "all" means every component', () => {
  for (const list of [undefined, '', ' ', 'all']) assert.deepEqual(parseComponents(list), allComponents);
});

test('a list separated by commas or spaces', () => {
  assert.deepEqual(parseComponents('redis,kube'), ['redis', 'kube']);
  assert.deepEqual(parseComponents('kafka helm'), ['kafka', 'helm']);
});

test('an unknown component is an error that names the known ones', () => {
  assert.throws(
    () => parseComponents('redis,zookeeper'),
    /unknown stack component 'zookeeper': choose from redis, kafka, kube, helm/,
  );
});
