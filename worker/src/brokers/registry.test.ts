import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConfigError } from '../errors.ts';
import { kafka } from './kafka/definition.ts';
import { redis } from './redis/definition.ts';
import { BROKERS, brokerFor, requireBroker } from './registry.ts';

test('brokerFor finds the broker by the URL scheme, in any case, and nothing for an unknown one', () => {
  assert.equal(brokerFor('redis://127.0.0.1:6379/0'), redis);
  assert.equal(brokerFor('REDISS://cache:6380'), redis);
  assert.equal(brokerFor('kafka://k1:9092,k2:9092'), kafka);
  assert.equal(brokerFor('kafkas://k1:9093'), kafka);
  assert.equal(brokerFor('amqp://rabbit:5672'), undefined);
  assert.equal(brokerFor('127.0.0.1:6379'), undefined);
});

test('requireBroker refuses an unknown scheme, naming where the URL came from and every supported form', () => {
  assert.throws(
    () => requireBroker('amqp://rabbit:5672', 'TASKFLEET_BROKER'),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.message ===
        'broker "amqp://rabbit:5672" (from TASKFLEET_BROKER) is not supported: use a redis:// or rediss:// URL, or kafka:// (kafkas://) for Kafka',
  );
});

test('no two brokers claim a scheme, and each declares every capability', () => {
  const schemes = BROKERS.flatMap((b) => b.schemes);
  assert.equal(new Set(schemes).size, schemes.length);
  for (const broker of BROKERS) {
    assert.deepEqual(Object.keys(broker.capabilities).sort(), ['chords', 'resultBackend', 'schedules']);
    assert.equal(
      broker.scheduleStore !== undefined,
      broker.capabilities.schedules,
      `${broker.name}: a store iff schedules`,
    );
  }
});
