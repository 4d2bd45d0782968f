import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { test } from 'node:test';
import { assertBindable, authenticate, authFromEnv, csrfFor, csrfProblem, isLoopback } from './auth.ts';

const req = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;

test('loopback is 127.0.0.0/8, ::1 and localhost; anything else needs sign-in', () => {
  for (const host of ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost']) assert.ok(isLoopback(host), host);
  for (const host of ['0.0.0.0', '10.0.0.1', '::', 'example.com']) assert.ok(!isLoopback(host), host);
  assert.throws(() => assertBindable('0.0.0.0', authFromEnv({})), /no sign-in/);
  assertBindable('127.0.0.1', authFromEnv({}));
  assertBindable('0.0.0.0', authFromEnv({ TASKFLEET_CONSOLE_TRUSTED_HEADER: 'X-Forwarded-User' }));
});

test('users are name:role:password; a bad entry is refused without printing its password', () => {
  const auth = authFromEnv({ TASKFLEET_CONSOLE_USERS: 'ann:admin:pa:ss, bob:readonly:pw2' });
  assert.deepEqual(authenticate(req({ authorization: basic('ann', 'pa:ss') }), auth, false), {
    user: 'ann',
    role: 'admin',
    via: 'basic',
  });
  assert.equal(authenticate(req({ authorization: basic('bob', 'pw2') }), auth, false)?.role, 'readonly');
  assert.equal(authenticate(req({ authorization: basic('bob', 'wrong') }), auth, false), undefined);
  assert.equal(authenticate(req({ authorization: basic('eve', 'pw2') }), auth, false), undefined);
  assert.throws(
    () => authFromEnv({ TASKFLEET_CONSOLE_USERS: 'cat:owner:hunter2' }),
    (error: Error) => /name:role:password/.test(error.message) && !error.message.includes('hunter2'),
  );
  assert.throws(() => authFromEnv({ TASKFLEET_CONSOLE_TOKEN: 'short' }), /at least 16/);
});

test('a trusted header names the user: listed admins act, everyone else is read-only; READONLY limits all', () => {
  const env = { TASKFLEET_CONSOLE_TRUSTED_HEADER: 'X-Forwarded-User', TASKFLEET_CONSOLE_ADMINS: 'ann' };
  const auth = authFromEnv(env);
  assert.equal(authenticate(req({ 'x-forwarded-user': 'ann' }), auth, false)?.role, 'admin');
  assert.equal(authenticate(req({ 'x-forwarded-user': 'bob' }), auth, false)?.role, 'readonly');
  assert.equal(authenticate(req({}), auth, false), undefined);
  const limited = authFromEnv({ ...env, TASKFLEET_CONSOLE_READONLY: 'true' });
  assert.equal(authenticate(req({ 'x-forwarded-user': 'ann' }), limited, false)?.role, 'readonly');
});

test('CSRF tokens are the same on every replica with the same credentials, and differ per principal', () => {
  const env = { TASKFLEET_CONSOLE_TOKEN: 'a'.repeat(32) };
  const who = { user: 'token', role: 'admin', via: 'bearer' } as const;
  assert.equal(csrfFor(authFromEnv(env), who), csrfFor(authFromEnv(env), who));
  assert.notEqual(csrfFor(authFromEnv(env), who), csrfFor(authFromEnv(env), { ...who, user: 'other' }));
  const auth = authFromEnv(env);
  const ok = { 'content-type': 'application/json', 'x-taskfleet-csrf': csrfFor(auth, who), host: 'h:1' };
  assert.equal(csrfProblem(req(ok), auth, who), undefined);
  assert.equal(csrfProblem(req({ ...ok, origin: 'http://h:1' }), auth, who), undefined);
  assert.match(csrfProblem(req({ ...ok, origin: 'http://evil:1' }), auth, who) ?? '', /another origin/);
  assert.match(csrfProblem(req({ ...ok, 'x-taskfleet-csrf': 'x' }), auth, who) ?? '', /x-taskfleet-csrf/);
});
