import assert from 'node:assert/strict';
import { test } from 'node:test';
import { cronTiming, intervalTiming, type Timing } from './timing.ts';

/** The ticks in (from, to], as UTC ISO strings. */
function ticks(timing: Timing, from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = timing.next(Date.parse(from)); t !== undefined && t <= Date.parse(to); t = timing.next(t)) {
    out.push(new Date(t).toISOString());
  }
  return out;
}

/** A UTC instant as wall-clock time in a zone, with its offset: '2025-03-30 03:00 GMT+2'. */
function wall(iso: string, timeZone: string): string {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    hourCycle: 'h23',
    timeZoneName: 'short',
  }).formatToParts(new Date(iso));
  const p = (type: string) => parts.find((x) => x.type === type)?.value;
  return `${p('year')}-${p('month')}-${p('day')} ${p('hour')}:${p('minute')} ${p('timeZoneName')}`;
}

const paris = 'Europe/Paris';
const newYork = 'America/New_York';

test('Europe/Paris, spring forward (2025-03-30, 02:00 → 03:00): 02:30 does not exist and runs at 03:00, once', () => {
  const fired = ticks(cronTiming('30 2 * * *', paris, 't'), '2025-03-28T12:00:00Z', '2025-04-01T00:00:00Z');
  assert.deepEqual(
    fired.map((t) => wall(t, paris)),
    ['2025-03-29 02:30 GMT+1', '2025-03-30 03:00 GMT+2', '2025-03-31 02:30 GMT+2'],
  );
});

test('Europe/Paris, fall back (2025-10-26, 03:00 → 02:00): 02:30 occurs twice and runs once, the first time', () => {
  const fired = ticks(cronTiming('30 2 * * *', paris, 't'), '2025-10-24T12:00:00Z', '2025-10-28T00:00:00Z');
  assert.deepEqual(fired, ['2025-10-25T00:30:00.000Z', '2025-10-26T00:30:00.000Z', '2025-10-27T01:30:00.000Z']);
  assert.equal(wall('2025-10-26T00:30:00.000Z', paris), '2025-10-26 02:30 GMT+2');
});

test('Europe/Paris, a list of fixed times in the gap runs once at its end, not skipped, not twice', () => {
  const fired = ticks(cronTiming('15,45 2 * * *', paris, 't'), '2025-03-29T12:00:00Z', '2025-03-31T12:00:00Z');
  assert.deepEqual(
    fired.map((t) => wall(t, paris)),
    ['2025-03-30 03:00 GMT+2', '2025-03-31 02:15 GMT+2', '2025-03-31 02:45 GMT+2'],
  );
});

test('Europe/Paris, hourly: 23 ticks on the spring-forward day, 25 on the fall-back day, an hour apart in real time', () => {
  const hourly = cronTiming('0 * * * *', paris, 't');
  // Local midnight to local midnight (exclusive): the day is 23 h long, then 25 h.
  const spring = ticks(hourly, '2025-03-29T22:59:59Z', '2025-03-30T21:59:59Z');
  const fall = ticks(hourly, '2025-10-25T21:59:59Z', '2025-10-26T22:59:59Z');
  assert.equal(spring.length, 23);
  assert.equal(fall.length, 25);
  for (const day of [spring, fall]) {
    for (let i = 1; i < day.length; i++) assert.equal(Date.parse(day[i]!) - Date.parse(day[i - 1]!), 3_600_000);
  }
  assert.deepEqual(
    fall.slice(1, 5).map((t) => wall(t, paris)),
    ['2025-10-26 01:00 GMT+2', '2025-10-26 02:00 GMT+2', '2025-10-26 02:00 GMT+1', '2025-10-26 03:00 GMT+1'],
  );
});

test('Europe/Paris, */15 keeps its pace through both transitions: no gap, no burst', () => {
  const quarter = cronTiming('*/15 * * * *', paris, 't');
  for (const [from, to] of [
    ['2025-03-30T00:00:00Z', '2025-03-30T03:00:00Z'],
    ['2025-10-25T23:00:00Z', '2025-10-26T03:00:00Z'],
  ] as const) {
    const fired = ticks(quarter, from, to);
    assert.equal(fired.length, ((Date.parse(to) - Date.parse(from)) / 900_000) | 0);
    for (let i = 1; i < fired.length; i++) assert.equal(Date.parse(fired[i]!) - Date.parse(fired[i - 1]!), 900_000);
  }
});

test('America/New_York, spring forward (2025-03-09, 02:00 → 03:00): 02:30 runs at 03:00 EDT, once', () => {
  const fired = ticks(cronTiming('30 2 * * *', newYork, 't'), '2025-03-08T12:00:00Z', '2025-03-10T12:00:00Z');
  assert.deepEqual(
    fired.map((t) => wall(t, newYork)),
    ['2025-03-09 03:00 EDT', '2025-03-10 02:30 EDT'],
  );
});

test('America/New_York, fall back (2025-11-02, 02:00 → 01:00): 01:30 and a 1–3 range run once per wall-clock time', () => {
  const once = ticks(cronTiming('30 1 * * *', newYork, 't'), '2025-11-01T12:00:00Z', '2025-11-03T12:00:00Z');
  assert.deepEqual(
    once.map((t) => wall(t, newYork)),
    ['2025-11-02 01:30 EDT', '2025-11-03 01:30 EST'],
  );
  const range = ticks(cronTiming('0 1-3 * * *', newYork, 't'), '2025-11-02T04:00:00Z', '2025-11-02T12:00:00Z');
  assert.deepEqual(
    range.map((t) => wall(t, newYork)),
    ['2025-11-02 01:00 EDT', '2025-11-02 02:00 EST', '2025-11-02 03:00 EST'],
  );
  // …while an hourly job runs in both passes through 01:00.
  const hourly = ticks(cronTiming('0 * * * *', newYork, 't'), '2025-11-02T04:30:00Z', '2025-11-02T07:30:00Z');
  assert.deepEqual(
    hourly.map((t) => wall(t, newYork)),
    ['2025-11-02 01:00 EDT', '2025-11-02 01:00 EST', '2025-11-02 02:00 EST'],
  );
});

test('latest() is next() run backwards, across DST, in both zones', () => {
  for (const [expression, zone] of [
    ['30 2 * * *', paris],
    ['0 1-3 * * *', newYork],
    ['*/20 * * * *', paris],
    ['0 * * * *', newYork],
  ] as const) {
    const timing = cronTiming(expression, zone, 't');
    const all = [
      ...ticks(timing, '2025-03-07T00:00:00Z', '2025-04-02T00:00:00Z'),
      ...ticks(timing, '2025-10-24T00:00:00Z', '2025-11-04T00:00:00Z'),
    ].map(Date.parse);
    for (const t of all) {
      assert.equal(timing.latest(t), t, `${expression} ${zone}: latest(${new Date(t).toISOString()})`);
      const before = timing.latest(t - 1);
      assert.ok(before !== undefined && before < t && timing.next(before) === t, `${expression} ${zone} before ${t}`);
    }
  }
});

test('six fields: the first is seconds', () => {
  const fired = ticks(cronTiming('*/1 * * * * *', 'UTC', 't'), '2025-01-01T00:00:00.500Z', '2025-01-01T00:00:03Z');
  assert.deepEqual(fired, ['2025-01-01T00:00:01.000Z', '2025-01-01T00:00:02.000Z', '2025-01-01T00:00:03.000Z']);
});

test('nicknames read in the zone: @daily is local midnight', () => {
  const fired = ticks(cronTiming('@daily', paris, 't'), '2025-07-01T00:00:00Z', '2025-07-03T00:00:00Z');
  assert.deepEqual(fired, ['2025-07-01T22:00:00.000Z', '2025-07-02T22:00:00.000Z']);
});

test('an interval ticks on multiples of itself since the epoch: next is strictly after, latest at or before', () => {
  const every30s = intervalTiming(30_000, 't');
  assert.deepEqual(ticks(every30s, '2025-01-01T00:00:10Z', '2025-01-01T00:01:30Z'), [
    '2025-01-01T00:00:30.000Z',
    '2025-01-01T00:01:00.000Z',
    '2025-01-01T00:01:30.000Z',
  ]);
  const t = Date.parse('2025-01-01T00:01:00Z');
  assert.equal(every30s.next(t), t + 30_000);
  assert.equal(every30s.latest(t), t);
  assert.equal(every30s.latest(t - 1), t - 30_000);
  // Time zones and DST do not touch it: one hour is 3_600_000 ms through the fall-back night too.
  assert.equal(ticks(intervalTiming(3_600_000, 't'), '2025-10-25T22:00:00Z', '2025-10-26T22:00:00Z').length, 24);
});
