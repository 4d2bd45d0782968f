import assert from 'node:assert/strict';
import { test } from 'node:test';
import { redact, redactText } from './redact.ts';

test('redact masks the userinfo password and credential query parameters of a URL', () => {
  assert.equal(redact('redis://:s3cret@redis:6379/0'), 'redis://:***@redis:6379/0');
  assert.equal(redact('rediss://app:s3cret@redis:6380'), 'rediss://app:***@redis:6380');
  assert.equal(redact('redis://redis:6379/0?password=s3cret&db=2'), 'redis://redis:6379/0?password=***&db=2');
  assert.equal(redact('redis://redis:6379?Token=abc&pass=x'), 'redis://redis:6379?Token=***&pass=***');
  assert.equal(redact('redis://redis:6379/0'), 'redis://redis:6379/0');
  assert.equal(redact('not a url'), '(unparseable URL)');
});

test('redactText masks credentials of every URL in free text and every form of the given secrets', () => {
  assert.equal(
    redactText('cannot connect to redis://u:pw@h:1 nor rediss://tok3n@h:2/0?password=x, giving up'),
    'cannot connect to redis://u:***@h:1 nor rediss://***@h:2/0?password=***, giving up',
  );
  assert.equal(redactText('auth failed: password=hunter22 user=app'), 'auth failed: password=*** user=app');
  // After any character that cannot continue a name, never inside a longer one.
  assert.equal(redactText('AUTH failed (password=hunter22) "token=abc"'), 'AUTH failed (password=***) "token=***"');
  assert.equal(redactText('mypassword=visible bypass=visible'), 'mypassword=visible bypass=visible');
  assert.equal(
    redactText('value "hunter22/ok" (encoded hunter22%2Fok) refused', ['hunter22/ok']),
    'value "***" (encoded ***) refused',
  );
  const pem = '-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END KEY-----';
  assert.equal(redactText('bad key line MIIEvQIBADANBgkqhkiG9w0BAQEFAASC here', [pem]), 'bad key line *** here');
  // Too short to mask without mangling the message: such values must never be quoted in the first place.
  assert.equal(redactText('a b c', ['a']), 'a b c');
  assert.equal(redactText('nothing to hide at redis://h:6379'), 'nothing to hide at redis://h:6379');
});

test('redact shows a URL listing several hosts as written, with its credentials masked', () => {
  assert.equal(redact('kafka://k1:9092,k2:9092?sasl=plain'), 'kafka://k1:9092,k2:9092?sasl=plain');
  assert.equal(redact('kafkas://k1:9093'), 'kafkas://k1:9093');
  assert.equal(redact('kafka://k1:9092,k2:9092?password=s3cret'), 'kafka://k1:9092,k2:9092?password=***');
  // Userinfo in a host list is refused by the Kafka adapter; should one reach a log, nothing of it shows.
  assert.equal(redact('kafka://u:s3cret@k1:9092,k2:9092'), '(unparseable URL)');
});
