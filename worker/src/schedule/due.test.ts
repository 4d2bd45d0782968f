import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dueTicks } from './due.ts';
import type { MissedTickPolicy } from './schedule.ts';
import { cronTiming, intervalTiming } from './timing.ts';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();
const everySecond = (missed: MissedTickPolicy = 'fire-once', missedAfter = 60_000) => ({
  timing: intervalTiming(1000, 't'),
  missed,
  missedAfter,
});
const nightly = (missed: MissedTickPolicy) => ({
  timing: cronTiming('0 3 * * *', 'Europe/Paris', 't'),
  missed,
  missedAfter: 60_000,
});

test('before its tick nothing is due; at its tick, that tick', () => {
  const s = everySecond();
  const w = at('2025-01-01T00:00:00Z');
  assert.deepEqual(dueTicks(s, w, w + 999), { fire: [], missed: 0, watermark: w, next: w + 1000, more: false });
  assert.deepEqual(dueTicks(s, w, w + 1000), {
    fire: [w + 1000],
    missed: 0,
    watermark: w + 1000,
    next: w + 2000,
    more: false,
  });
});

test('asking again once the watermark has moved gives nothing: the same tick is never due twice', () => {
  const s = everySecond();
  const w = at('2025-01-01T00:00:00Z');
  const first = dueTicks(s, w, w + 1500);
  assert.deepEqual(first.fire, [w + 1000]);
  assert.deepEqual(dueTicks(s, first.watermark, w + 1500).fire, []);
});

test('late ticks (a failover, within missedAfter) each fire, oldest first, whatever the policy', () => {
  const w = at('2025-01-01T00:00:00Z');
  for (const policy of ['fire-once', 'skip'] as const) {
    const due = dueTicks(everySecond(policy), w, w + 5200);
    assert.deepEqual(due.fire, [w + 1000, w + 2000, w + 3000, w + 4000, w + 5000]);
    assert.equal(due.missed, 0);
    assert.equal(due.watermark, w + 5000);
  }
});

test("missed ticks with 'fire-once' and none on time: one fire, for the latest of them", () => {
  const s = { ...everySecond('fire-once', 2000), timing: intervalTiming(10_000, 't') };
  const w = at('2025-01-01T00:00:00Z');
  // Back at +55 s: the ticks at +10 … +50 s are all older than missedAfter (2 s), none is on time.
  const due = dueTicks(s, w, w + 55_000);
  assert.deepEqual(due.fire, [w + 50_000]);
  assert.equal(due.missed, 4, 'five missed ticks, one of which fires');
  assert.equal(due.watermark, w + 50_000);
  assert.equal(due.next, w + 60_000);
});

test("missed ticks with 'fire-once' when a tick on time fires anyway: that fire stands for them", () => {
  const s = everySecond('fire-once', 2000);
  const w = at('2025-01-01T00:00:00Z');
  const due = dueTicks(s, w, w + 10_000);
  // +8 s … +10 s are within 2 s: late, each fires; +1 … +7 s are missed and folded into them.
  assert.deepEqual(
    due.fire.map((t) => t - w),
    [8000, 9000, 10_000],
  );
  assert.equal(due.missed, 7);
  assert.equal(due.watermark, w + 10_000);
});

test("missed ticks with 'skip': none fire, the watermark moves past them", () => {
  const w = at('2025-01-01T00:00:00Z');
  const s = { ...everySecond('skip', 2000), timing: intervalTiming(10_000, 't') };
  const due = dueTicks(s, w, w + 55_000);
  assert.deepEqual(due.fire, []);
  assert.equal(due.missed, 5);
  assert.equal(due.watermark, w + 50_000);
  assert.deepEqual(dueTicks(s, due.watermark, w + 55_000).fire, [], 'and they stay skipped');
});

test('a nightly report missed while everything was down: fire-once fires it on recovery, skip waits for tomorrow', () => {
  const yesterday = at('2025-03-29T02:00:00Z'); // 03:00 CET, fired
  const recovery = at('2025-03-30T01:05:00Z'); // 03:05 CEST: the 03:00 tick is 5 min old
  const once = dueTicks(nightly('fire-once'), yesterday, recovery);
  assert.deepEqual(once.fire.map(iso), ['2025-03-30T01:00:00.000Z']);
  assert.equal(once.missed, 0);
  const skipped = dueTicks(nightly('skip'), yesterday, recovery);
  assert.deepEqual(skipped.fire, []);
  assert.equal(skipped.missed, 1);
  assert.equal(iso(skipped.next as number), '2025-03-31T01:00:00.000Z');
});

test('days of missed per-second ticks: only the last minute (late) fires, the rest fold into it', () => {
  const w = at('2025-01-01T00:00:00Z');
  const due = dueTicks(everySecond('fire-once', 60_000), w, w + 3 * 86_400_000 + 500);
  // Late: the last minute of ticks; missed: the rest, folded into them (counted up to the limit).
  assert.equal(due.fire.length, 60);
  assert.equal(due.missed, 10_000);
  assert.equal(due.watermark, w + 3 * 86_400_000);
});

test('more late ticks than the limit: the first `limit` fire, the rest are due at once', () => {
  const w = at('2025-01-01T00:00:00Z');
  const due = dueTicks(everySecond('fire-once', 60_000), w, w + 30_000, 10);
  assert.deepEqual(
    due.fire.map((t) => t - w),
    [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((s) => s * 1000),
  );
  assert.equal(due.more, true);
  assert.equal(due.watermark, w + 10_000);
  assert.equal(due.next, w + 11_000);
  const rest = dueTicks(everySecond('fire-once', 60_000), due.watermark, w + 30_000, 100);
  assert.equal(rest.fire.length, 20);
  assert.equal(rest.more, false);
});

test('fall-back night in Paris: the hourly ticks of both passes through 02:00 are due, each once', () => {
  const hourly = {
    timing: cronTiming('0 * * * *', 'Europe/Paris', 't'),
    missed: 'skip' as const,
    missedAfter: 3 * 3_600_000,
  };
  const due = dueTicks(hourly, at('2025-10-25T23:30:00Z'), at('2025-10-26T02:30:00Z'));
  assert.deepEqual(due.fire.map(iso), [
    '2025-10-26T00:00:00.000Z', // 02:00 CEST
    '2025-10-26T01:00:00.000Z', // 02:00 CET
    '2025-10-26T02:00:00.000Z', // 03:00 CET
  ]);
});
