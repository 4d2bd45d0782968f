import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManualClock, nextTurn } from '../../../test/support/manual-clock.ts';
import type { ControlListener, WorkerHeartbeat } from '../control.ts';
import { createLogger } from '../observe/logger.ts';
import { RemoteControl } from './remote-control.ts';

/** Remote control over a fake Control that writes down what it is sent, on a manual clock. */
function remoteControl() {
  const clock = new ManualClock(1_000_000);
  const beats: { heartbeat: WorkerHeartbeat; ttlMs: number; answering: string | undefined }[] = [];
  const terminated: string[] = [];
  const warnings: string[] = [];
  const revokedInStore = ['id-1'];
  let listener: ControlListener | undefined;
  let closed = false;
  const state = { stopping: false };
  const remote = new RemoteControl({
    id: 'worker-1',
    hostname: 'pod-7',
    queue: 'images',
    concurrency: 4,
    version: '0.1.0',
    startedAt: 999_000,
    clock,
    log: createLogger('warn', {}, (line) => warnings.push(JSON.parse(line).msg)),
    control: {
      listen: (l) => {
        listener = l;
        return { subscribed: Promise.resolve(), close: () => (closed = true) };
      },
      revoked: async () => [...revokedInStore],
      beat: async (heartbeat, ttlMs, { answering } = {}) => void beats.push({ heartbeat, ttlMs, answering }),
      leave: async () => {},
    },
    status: () => ({ active: [], reserved: 2, processed: { success: 5 } }),
    terminate: (id) => terminated.push(id),
    stopping: () => state.stopping,
  });
  const send = (message: unknown) => (listener as ControlListener).message(message as never);
  return {
    remote,
    clock,
    beats,
    terminated,
    warnings,
    revokedInStore,
    state,
    send,
    listener: () => listener as ControlListener,
    closed: () => closed,
  };
}

describe('RemoteControl', () => {
  test('heartbeats are written at once and then every interval, each living three intervals', async () => {
    const { remote, clock, beats } = remoteControl();
    remote.startHeartbeats(2000);
    await nextTurn();
    assert.equal(beats.length, 1);
    assert.deepEqual(beats[0], {
      heartbeat: {
        id: 'worker-1',
        hostname: 'pod-7',
        pid: process.pid,
        queue: 'images',
        concurrency: 4,
        startedAt: 999_000,
        at: 1_000_000,
        version: '0.1.0',
        active: [],
        reserved: 2,
        processed: { success: 5 },
      },
      ttlMs: 6000,
      answering: undefined,
    });
    clock.advance(1999);
    assert.equal(beats.length, 1);
    clock.advance(1);
    clock.advance(2000);
    assert.deepEqual(
      beats.map((b) => b.heartbeat.at),
      [1_000_000, 1_002_000, 1_004_000],
    );
    remote.stopHeartbeats();
    clock.advance(10_000);
    assert.equal(beats.length, 3);
  });

  test('a report request for its queue is answered at once, and later heartbeats say which it answered', async () => {
    const { remote, clock, beats, send } = remoteControl();
    await remote.listen();
    remote.startHeartbeats(2000);
    clock.advance(500);
    send({ type: 'report', id: 'rq-1', queue: 'images' });
    await nextTurn();
    assert.equal(beats.length, 2);
    assert.equal(beats[1]?.answering, 'rq-1');
    assert.deepEqual([beats[1]?.heartbeat.report, beats[1]?.heartbeat.reportAt], ['rq-1', 1_000_500]);
    clock.advance(1500);
    assert.deepEqual([beats[2]?.answering, beats[2]?.heartbeat.report], [undefined, 'rq-1']);
  });

  test('a report request is not answered for another queue, before heartbeats run, or while stopping', async () => {
    const { remote, beats, send, state } = remoteControl();
    await remote.listen();
    send({ type: 'report', id: 'rq-1', queue: 'images' });
    remote.startHeartbeats(2000);
    send({ type: 'report', id: 'rq-2', queue: 'emails' });
    state.stopping = true;
    send({ type: 'report', id: 'rq-3', queue: 'images' });
    await nextTurn();
    assert.deepEqual(
      beats.map((b) => b.answering),
      [undefined],
    );
  });

  test('revoked calls are remembered; running ones are terminated only when asked', async () => {
    const { remote, send, terminated } = remoteControl();
    await remote.listen();
    send({ type: 'revoke', ids: ['id-2', 'id-3'], terminate: false });
    send({ type: 'revoke', ids: ['id-4'], terminate: true });
    assert.ok(['id-2', 'id-3', 'id-4'].every((id) => remote.isRevoked(id)));
    assert.equal(remote.isRevoked('id-5'), false);
    assert.deepEqual(terminated, ['id-4']);
  });

  test('the revoked set is loaded once subscribed, and again at each (re)connection', async () => {
    const { remote, revokedInStore, listener } = remoteControl();
    await remote.listen();
    assert.equal(remote.isRevoked('id-1'), true);
    revokedInStore.push('id-9'); // revoked while the connection was away
    listener().connected();
    await nextTurn();
    assert.equal(remote.isRevoked('id-9'), true);
  });

  test('a message that cannot be read is ignored, with a warning; closing ends the subscription', async () => {
    const { remote, warnings, listener, closed } = remoteControl();
    await remote.listen();
    listener().invalid(new SyntaxError('Unexpected token'));
    assert.deepEqual(warnings, ['ignored a bad control message']);
    remote.close();
    assert.equal(closed(), true);
  });
});
