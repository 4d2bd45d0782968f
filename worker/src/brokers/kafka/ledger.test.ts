import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  decodeLedgerMetadata,
  encodeLedgerMetadata,
  MAX_METADATA_CHARS,
  PartitionLedger,
  partitionProgress,
} from './ledger.ts';

describe('PartitionLedger', () => {
  test('commits the lowest unfinished offset, whatever order records finish in', () => {
    const ledger = new PartitionLedger(100);
    for (let o = 100; o < 105; o++) assert.equal(ledger.take(o), true);
    for (const o of [100, 101, 102, 103, 104]) ledger.handOut(o);
    assert.equal(ledger.commitOffset, 100);
    ledger.finish(102);
    ledger.finish(104);
    assert.equal(ledger.commitOffset, 100, 'a record below is unfinished');
    ledger.finish(100);
    assert.equal(ledger.commitOffset, 101);
    ledger.finish(101);
    assert.equal(ledger.commitOffset, 103, 'past 102, finished earlier');
    ledger.finish(103);
    assert.equal(ledger.commitOffset, 105, 'all done: the next to take');
  });

  test('the metadata names what is finished above the commit point and what is handed out', () => {
    const ledger = new PartitionLedger(0);
    for (let o = 0; o < 6; o++) {
      ledger.take(o);
      ledger.handOut(o);
    }
    ledger.finish(2);
    ledger.finish(3);
    ledger.finish(5);
    const { offset, metadata } = ledger.commit();
    assert.equal(offset, 0);
    assert.equal(metadata, 'k:0-1,4;d:2-3,5');
  });

  test('the next owner skips what was finished and counts deliveries of what was handed out', () => {
    const first = new PartitionLedger(10);
    for (let o = 10; o < 14; o++) {
      first.take(o);
      first.handOut(o);
    }
    first.finish(11);
    const { offset, metadata } = first.commit();

    const next = new PartitionLedger(offset, metadata);
    assert.deepEqual(
      [10, 11, 12, 13, 14].map((o) => next.take(o)),
      [true, false, true, true, true],
    );
    assert.equal(next.handOut(10), 2, 'delivered before, by the first owner');
    assert.equal(next.handOut(14), 1, 'never delivered before');
    next.giveBack(14);
    assert.equal(next.handOut(14), 1, 'a hand-back does not count');
  });

  test('a re-fetch after a rebalance kept the partition is not taken twice', () => {
    const ledger = new PartitionLedger(0);
    for (let o = 0; o < 3; o++) ledger.take(o);
    assert.deepEqual(
      [0, 1, 2, 3].map((o) => ledger.take(o)),
      [false, false, false, true],
    );
  });

  test('dirty until a commit of the latest change succeeds', () => {
    const ledger = new PartitionLedger(0);
    ledger.take(0);
    ledger.handOut(0);
    assert.equal(ledger.dirty, true);
    const first = ledger.commit();
    ledger.finish(0); // while the commit is on its way
    ledger.committed(first.version);
    assert.equal(ledger.dirty, true);
    ledger.committed(ledger.commit().version);
    assert.equal(ledger.dirty, false);
  });

  test('a group that never committed starts at the first record it takes', () => {
    const ledger = new PartitionLedger(undefined);
    assert.equal(ledger.take(500), true);
    assert.equal(ledger.commitOffset, 500);
  });
});

describe('ledger metadata', () => {
  test('round trip with counts', () => {
    const handed = new Map([
      [5, 1],
      [6, 1],
      [7, 3],
      [9, 2],
    ]);
    const text = encodeLedgerMetadata(handed, [8, 10, 11], 5);
    assert.equal(text, 'k:5-6,7*3,9*2;d:8,10-11');
    const back = decodeLedgerMetadata(text);
    assert.deepEqual([...back.handed], [...handed]);
    assert.deepEqual(back.done, [8, 10, 11]);
  });

  test('stays under the limit by dropping finished records first', () => {
    const done = Array.from({ length: 5000 }, (_, i) => i * 2 + 1);
    const text = encodeLedgerMetadata(new Map([[0, 4]]), done, 0);
    assert.ok(text.length <= MAX_METADATA_CHARS, `${text.length} chars`);
    assert.ok(text.startsWith('k:0*4;d:1,3,'), 'the counts and the nearest finished records are kept');
  });

  test("another client's metadata reads as nothing", () => {
    for (const text of [null, '', 'event-id-3', 'k:abc', 'k:9-1']) {
      assert.deepEqual(decodeLedgerMetadata(text), { handed: new Map(), done: [] });
    }
  });
});

describe('partitionProgress', () => {
  test('lag is the end minus the committed offset, less what is handed out or finished above it', () => {
    assert.deepEqual(partitionProgress(100, 'k:100-101;d:103', 0, 110), { waiting: 7, handed: 2, taken: 103 });
  });

  test('a group that never committed counts from the earliest retained record', () => {
    assert.deepEqual(partitionProgress(undefined, null, 40, 50), { waiting: 10, handed: 0, taken: 40 });
  });

  test('after a purge, records held below the earliest retained one are still in flight', () => {
    assert.deepEqual(partitionProgress(5, 'k:5', 20, 20), { waiting: 0, handed: 1, taken: 20 });
  });
});
