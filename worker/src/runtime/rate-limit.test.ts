import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../errors.ts';
import { parseRate, TokenBucket } from './rate-limit.ts';

describe('parseRate', () => {
  test('turns a rate into the ms between permits', () => {
    const cases: [string | number, number][] = [
      ['10/s', 100],
      ['1/s', 1000],
      ['100/m', 600],
      ['5/h', 720_000],
      ['0.5/s', 2000],
      ['2.5/m', 24_000],
      ['4', 250],
      [' 10 / s ', 100],
      [4, 250],
      [0.5, 2000],
    ];
    for (const [rate, ms] of cases) assert.equal(parseRate(rate), ms, JSON.stringify(rate));
  });

  test('refuses anything else, saying how to write it', () => {
    for (const rate of [
      '',
      'fast',
      '10/d',
      '10/sec',
      '/s',
      '0/s',
      '0',
      '-1/s',
      '1e3/s',
      '10/s/m',
      's/10',
      0,
      -5,
      Number.NaN,
      Number.POSITIVE_INFINITY,
    ]) {
      assert.throws(
        () => parseRate(rate),
        (error: unknown) => {
          assert.ok(error instanceof ConfigError, `${JSON.stringify(rate)}: ${error}`);
          assert.equal(error.code, 'CONFIG');
          assert.equal(
            error.message,
            `rate limit ${JSON.stringify(rate)} is not valid: write it as "10/s", "100/m" or "5/h"`,
          );
          return true;
        },
        String(rate),
      );
    }
  });
});

describe('TokenBucket', () => {
  test('grants one permit, then says how long until the next', () => {
    const bucket = new TokenBucket(100);
    assert.equal(bucket.take(1000), 0);
    assert.equal(bucket.take(1000), 100);
    assert.equal(bucket.take(1040), 60);
    assert.equal(bucket.take(1099), 1);
    assert.equal(bucket.take(1100), 0);
    assert.equal(bucket.take(1100), 100);
  });

  test('spaces permits evenly and never saves them up for a burst', () => {
    const bucket = new TokenBucket(250);
    assert.equal(bucket.take(0), 0);
    // Idle for ten intervals: still only one permit now, the next one interval later.
    assert.equal(bucket.take(2500), 0);
    assert.equal(bucket.take(2500), 250);
    assert.equal(bucket.take(2749), 1);
    assert.equal(bucket.take(2750), 0);
  });

  test('a refused take does not push the next permit back', () => {
    const bucket = new TokenBucket(100);
    assert.equal(bucket.take(0), 0);
    for (let now = 10; now < 100; now += 10) assert.equal(bucket.take(now), 100 - now);
    assert.equal(bucket.take(100), 0);
  });

  test('granted permits over a span match the rate', () => {
    const bucket = new TokenBucket(parseRate('10/s'));
    let granted = 0;
    for (let now = 0; now < 10_000; now++) if (bucket.take(now) === 0) granted++;
    assert.equal(granted, 100);
  });
});
