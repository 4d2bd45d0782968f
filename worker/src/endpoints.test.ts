import assert from 'node:assert/strict';
import { afterEach, beforeEach, test } from 'node:test';
import { Taskfleet } from './app.ts';
import { DEFAULT_BROKER_URL, resolveEndpoint } from './endpoints.ts';

const written = { broker: 'redis://written:6379/0', backend: 'redis://written:6379/1' };
const env = { TASKFLEET_BROKER: 'redis://env:6379/0', TASKFLEET_BACKEND: 'redis://env:6379/1' };
const configured = { broker: 'redis://flag:6379/0', backend: 'redis://flag:6379/1' };

test('the broker: --broker (configure) > TASKFLEET_BROKER > the code > the default, each source named', () => {
  assert.deepEqual(resolveEndpoint('broker', { configured, env, written }), {
    url: 'redis://flag:6379/0',
    from: '--broker (configure())',
  });
  assert.deepEqual(resolveEndpoint('broker', { configured: {}, env, written }), {
    url: 'redis://env:6379/0',
    from: 'TASKFLEET_BROKER',
  });
  assert.deepEqual(resolveEndpoint('broker', { configured: {}, env: {}, written }), {
    url: 'redis://written:6379/0',
    from: "the app's broker option",
  });
  assert.deepEqual(resolveEndpoint('broker', { configured: {}, env: {}, written: {} }), {
    url: DEFAULT_BROKER_URL,
    from: 'the default',
  });
  // An empty variable is unset, as the CLI reads every TASKFLEET_* variable.
  assert.equal(
    resolveEndpoint('broker', { configured: {}, env: { TASKFLEET_BROKER: '' }, written })?.url,
    written.broker,
  );
});

test('the backend follows the same order (TASKFLEET_BACKEND), and has no default', () => {
  assert.equal(resolveEndpoint('backend', { configured, env, written })?.url, 'redis://flag:6379/1');
  assert.equal(resolveEndpoint('backend', { configured: {}, env, written })?.url, 'redis://env:6379/1');
  assert.equal(resolveEndpoint('backend', { configured: {}, env: {}, written })?.url, 'redis://written:6379/1');
  assert.equal(resolveEndpoint('backend', { configured: {}, env: { TASKFLEET_BACKEND: '' }, written: {} }), undefined);
});

// The apps below read the environment: each test starts without these variables and leaves it as it was.
const VARIABLES = ['TASKFLEET_BROKER', 'TASKFLEET_BACKEND', 'TASKFLEET_BROKER_TIMEOUT'];
const saved = { ...process.env };
beforeEach(() => {
  for (const name of VARIABLES) delete process.env[name];
});
afterEach(() => {
  for (const name of VARIABLES) {
    if (saved[name] === undefined) delete process.env[name];
    else process.env[name] = saved[name];
  }
});

test('an app built with a written broker uses TASKFLEET_BROKER when it is set, and configure() over both', () => {
  process.env.TASKFLEET_BROKER = env.TASKFLEET_BROKER;
  process.env.TASKFLEET_BACKEND = env.TASKFLEET_BACKEND;
  const app = new Taskfleet(written);
  assert.equal(app.brokerUrl, env.TASKFLEET_BROKER);
  assert.equal(app.backendUrl, env.TASKFLEET_BACKEND);
  app.configure(configured);
  assert.equal(app.brokerUrl, configured.broker);
  assert.equal(app.backendUrl, configured.backend);
  delete process.env.TASKFLEET_BROKER;
  delete process.env.TASKFLEET_BACKEND;
  assert.equal(new Taskfleet(written).brokerUrl, written.broker);
});

test('a bad broker URL says which setting it came from', () => {
  process.env.TASKFLEET_BROKER = 'amqp://rabbit:5672';
  assert.throws(
    () => new Taskfleet(written),
    /broker "amqp:\/\/rabbit:5672" \(from TASKFLEET_BROKER\) is not supported/,
  );
  delete process.env.TASKFLEET_BROKER;
  process.env.TASKFLEET_BACKEND = 'http://results';
  assert.throws(
    () => new Taskfleet(),
    /the result backend URL \(from TASKFLEET_BACKEND\) "http:\/\/results" is not a Redis URL/,
  );
});

test('brokerTimeout: 10 s by default, TASKFLEET_BROKER_TIMEOUT, the option over it; refused unless a whole number ≥ 1', () => {
  assert.equal(new Taskfleet().brokerTimeout, 10_000);
  process.env.TASKFLEET_BROKER_TIMEOUT = '2500';
  assert.equal(new Taskfleet().brokerTimeout, 2500);
  assert.equal(new Taskfleet({ brokerTimeout: 700 }).brokerTimeout, 700);
  assert.throws(() => new Taskfleet({ brokerTimeout: 0 }), /brokerTimeout must be a whole number ≥ 1, not 0/);
  process.env.TASKFLEET_BROKER_TIMEOUT = 'soon';
  assert.throws(
    () => new Taskfleet(),
    /brokerTimeout must be a whole number ≥ 1, not NaN \(from TASKFLEET_BROKER_TIMEOUT\)/,
  );
});
