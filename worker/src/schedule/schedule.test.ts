import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Taskfleet } from '../app.ts';
import { ConfigError, SerializationError } from '../errors.ts';
import { parseScheduleDocument } from './file.ts';
import { parseSchedule, type ScheduleDefinition, scheduledTaskId } from './schedule.ts';

/** An app that never connects: declaring tasks and schedules needs no Redis. */
function app() {
  const a = new Taskfleet({ broker: 'redis://127.0.0.1:1' });
  const report = a.task('report', (_ctx, _kind: string, _day: number) => 'ok');
  const ping = a.task('ping', () => 'pong');
  return { app: a, report, ping };
}

function refused(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof ConfigError, `a ConfigError, not ${String(error)}`);
    assert.match(error.message, message);
    return true;
  });
}

test('a cron schedule with a time zone and a signature: the task, its arguments and options are kept', () => {
  const { app: a, report } = app();
  const s = a.schedule('nightly-report', {
    cron: '0 3 * * *',
    timeZone: 'Europe/Paris',
    task: report.s('daily', 1).set({ priority: 2 }),
    missed: 'skip',
  });
  assert.equal(s.task, 'report');
  assert.deepEqual(s.args, ['daily', 1]);
  assert.deepEqual(s.options, { priority: 2 });
  assert.equal(s.missed, 'skip');
  assert.equal(s.missedAfter, 60_000);
  assert.equal(s.timing.description, 'cron "0 3 * * *" in Europe/Paris');
  assert.equal(a.schedules.get('nightly-report'), s);
});

test('an interval schedule by task name, with args; fire-once by default', () => {
  const { app: a } = app();
  const s = a.schedule('heartbeat', { every: 30_000, task: 'ping', args: [] });
  assert.equal(s.missed, 'fire-once');
  assert.equal(s.timing.next(0), 30_000);
});

test('an invalid cron is refused at declaration, with the schedule and what a cron looks like', () => {
  const { app: a } = app();
  refused(
    () => a.schedule('bad', { cron: '61 * * * *', task: 'ping' }),
    /schedule "bad": cron "61 \* \* \* \*" is not valid .*minute.*five fields/,
  );
  refused(() => a.schedule('bad', { cron: 'every day', task: 'ping' }), /is not valid/);
  refused(() => a.schedule('bad', { cron: '0 0 * * * * 2030', task: 'ping' }), /is not valid/);
  refused(() => a.schedule('feb31', { cron: '0 0 31 2 *', task: 'ping' }), /never matches a date/);
});

test('an unknown time zone is refused, naming it', () => {
  const { app: a } = app();
  refused(
    () => a.schedule('paris', { cron: '0 3 * * *', timeZone: 'Europe/Pariss', task: 'ping' }),
    /unknown time zone "Europe\/Pariss": use an IANA name/,
  );
  refused(
    () => a.schedule('x', { every: 1000, timeZone: 'UTC', task: 'ping' } as unknown as ScheduleDefinition),
    /timeZone applies to cron only/,
  );
});

test('a task the app does not know is refused, and says to register it first', () => {
  const { app: a } = app();
  refused(() => a.schedule('r', { every: 1000, task: 'repport' }), /no task named "repport" is registered/);
});

test('a non-positive or fractional interval is refused', () => {
  const { app: a } = app();
  for (const every of [0, -5, 1.5, Number.NaN]) {
    refused(() => a.schedule('i', { every, task: 'ping' }), /every must be a positive whole number of ms/);
  }
  refused(
    () => a.schedule('i', { every: '30s', task: 'ping' } as unknown as ScheduleDefinition),
    /every must be a positive whole number of ms, not "30s"/,
  );
});

test('a duplicate name is refused; so are cron with every, neither, and unknown fields', () => {
  const { app: a } = app();
  a.schedule('twice', { every: 1000, task: 'ping' });
  refused(() => a.schedule('twice', { every: 2000, task: 'ping' }), /"twice" is declared twice/);
  refused(
    () => a.schedule('both', { every: 1000, cron: '* * * * *', task: 'ping' } as unknown as ScheduleDefinition),
    /cron and every cannot be set together/,
  );
  refused(() => a.schedule('neither', { task: 'ping' } as unknown as ScheduleDefinition), /needs cron .* or every/);
  refused(
    () => a.schedule('typo', { every: 1000, task: 'ping', mised: 'skip' } as unknown as ScheduleDefinition),
    /unknown field "mised"/,
  );
  refused(() => a.schedule('bad name!', { every: 1000, task: 'ping' }), /the name must be/);
});

test('arguments must be JSON; policy, missedAfter and options are checked', () => {
  const { app: a } = app();
  assert.throws(
    () => a.schedule('d', { every: 1000, task: 'ping', args: [new Date()] }),
    (error: unknown) =>
      error instanceof ConfigError &&
      error.code === 'CONFIG' &&
      error.cause instanceof SerializationError &&
      /schedule "d": argument 1 of ping.*Date/.test(error.message),
  );
  refused(
    () => a.schedule('p', { every: 1000, task: 'ping', missed: 'fire-all' as 'skip' }),
    /missed must be 'fire-once' or 'skip'/,
  );
  refused(() => a.schedule('m', { every: 1000, task: 'ping', missedAfter: -1 }), /missedAfter/);
  refused(() => a.schedule('o', { every: 1000, task: 'ping', options: { priority: 12 } }), /priority/);
  refused(
    () => a.schedule('o', { every: 1000, task: 'ping', options: { countdown: 5 } as unknown as object }),
    /unknown option "countdown"/,
  );
  refused(() => a.schedule('q', { every: 1000, task: 'ping', options: { queue: 'no spaces' } }), /queue name/);
});

test('without a registry (the operator), any task name is taken', () => {
  const s = parseSchedule('op', { cron: '*/5 * * * *', task: 'anything', args: [1] });
  assert.equal(s.task, 'anything');
});

test('task ids are deterministic per (schedule, tick)', () => {
  const tick = Date.parse('2025-03-30T01:00:00Z');
  assert.equal(scheduledTaskId('nightly-report', tick), 'nightly-report@2025-03-30T01:00:00.000Z');
  assert.equal(scheduledTaskId('nightly-report', tick), scheduledTaskId('nightly-report', tick));
});

test('a YAML schedules file, as a list under `schedules`', () => {
  const yaml = `
schedules:
  - name: nightly-report
    cron: "0 3 * * *"
    timeZone: Europe/Paris
    task: report
    args: [daily, 1]
  - { name: heartbeat, every: 30000, task: ping, missed: skip }
`;
  const [nightly, heartbeat] = parseScheduleDocument(yaml, 'schedules.yaml', { knownTask: (t) => t !== 'nope' });
  assert.equal(nightly?.name, 'nightly-report');
  assert.deepEqual(nightly?.args, ['daily', 1]);
  assert.equal(nightly?.timing.description, 'cron "0 3 * * *" in Europe/Paris');
  assert.equal(heartbeat?.missed, 'skip');
});

test('a JSON schedules file, as a bare list', () => {
  const json = JSON.stringify([{ name: 'heartbeat', every: 1000, task: 'ping' }]);
  assert.equal(parseScheduleDocument(json, 'schedules.json').length, 1);
});

test('errors in a schedules file name the file and the entry', () => {
  const known = { knownTask: (t: string) => t === 'ping' };
  refused(
    () =>
      parseScheduleDocument(
        '- {name: a, every: 1000, task: ping}\n- {name: b, cron: "0 3 * * *", timeZone: Mars/Olympus, task: ping}',
        'f.yaml',
        known,
      ),
    /^f\.yaml: schedules\[1\] \(b\): unknown time zone "Mars\/Olympus"/,
  );
  refused(
    () =>
      parseScheduleDocument(
        '- {name: a, every: 1000, task: ping}\n- {name: a, every: 2000, task: ping}',
        'f.yaml',
        known,
      ),
    /f\.yaml: schedules\[1\] \(a\): the name "a" is declared twice/,
  );
  refused(
    () => parseScheduleDocument('- {every: 1000, task: ping}', 'f.yaml', known),
    /schedules\[0\]: every schedule needs a name/,
  );
  refused(() => parseScheduleDocument('- {name: x, every: 1000, task: pong}', 'f.yaml', known), /no task named "pong"/);
  refused(() => parseScheduleDocument('schedules: {', 'f.yaml', known), /f\.yaml is not valid YAML or JSON/);
  refused(() => parseScheduleDocument('name: x', 'f.yaml', known), /expected a list of schedules/);
});
