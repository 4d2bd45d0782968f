/**
 * The broker-neutral conformance suite: what every adapter of `Broker` must do, checked through the
 * interface alone, so the same tests run against Redis Streams and Kafka, and against a broker added
 * later (one folder under worker/src/brokers, one line in its registry, and this suite passing).
 *
 *   describeBrokerConformance('RedisBroker', async () => ({ broker, definition, url, queue, injectRaw, cleanup }));
 *
 * Each test uses its own queue and closes its own consumers. Waits for an effect are bounded only to
 * turn a hang into a failure; nothing here asserts how fast a broker is.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, type TestContext, test } from 'node:test';
import type { Broker, BrokerDefinition, Consumer, ConsumerOptions, Delivery } from '../../worker/src/brokers/broker.ts';
import { BROKERS, brokerFor } from '../../worker/src/brokers/registry.ts';
import { createEnvelope, type Envelope, type NewEnvelope } from '../../worker/src/message/envelope.ts';

export interface ConformanceTarget {
  broker: Broker;
  /** The broker's definition in the registry. */
  definition: BrokerDefinition;
  /** A URL of the running broker, as a user would give it. */
  url: string;
  /** A queue name no other test uses. */
  queue(): string;
  /**
   * Puts `text` onto `queue` exactly as given, bypassing encoding and validation: how a malformed
   * message reaches a worker (an old producer, another language, a hand edit). The interface cannot
   * publish one, so the adapter's test provides this; without it the malformed-message test is skipped.
   */
  injectRaw?(queue: string, text: string): Promise<void>;
  /** Closes the broker and removes what the tests left behind. */
  cleanup(): Promise<void>;
}

export interface ConformanceOptions {
  /**
   * The visibility timeout of the consumers in the tests that wait for one to pass: small, so they
   * run quickly, and long enough for the adapter to keep a held delivery alive.
   * @defaultValue 500
   */
  visibilityTimeoutMs?: number;
  /**
   * Whether the broker orders waiting messages by priority. Kafka does not: its test checks only that
   * every message of every priority arrives once.
   * @defaultValue true
   */
  priorities?: boolean;
}

/** Bounds every wait for something that should happen: a broker that never delivers fails, not hangs. */
const WAIT_MS = 10_000;

export function describeBrokerConformance(
  name: string,
  open: () => Promise<ConformanceTarget>,
  { visibilityTimeoutMs = 500, priorities = true }: ConformanceOptions = {},
): void {
  describe(`${name} conforms to the Broker contract`, () => {
    let target: ConformanceTarget;
    let broker: Broker;
    before(async () => {
      target = await open();
      broker = target.broker;
    });
    after(() => target?.cleanup());

    /** A consumer of `queue` with a unique name, closed when the test ends. */
    async function consumer(t: TestContext, queue: string, options: Partial<ConsumerOptions> = {}): Promise<Consumer> {
      const c = await broker.consume(queue, { consumer: `conformance-${randomUUID().slice(0, 8)}`, ...options });
      t.after(() => c.close());
      return c;
    }

    const envelope = (queue: string, input: Partial<NewEnvelope> = {}): Envelope =>
      createEnvelope({ task: 'conformance.echo', args: [], queue, ...input });

    async function assertBacklog(queue: string, expected: { ready: number; delayed: number; inFlight: number }) {
      const { ready, delayed, inFlight } = await broker.backlog(queue);
      assert.deepEqual({ ready, delayed, inFlight }, expected, 'backlog');
    }

    test('its definition is registered, takes its URLs, reaches it, and declares what it can do', async () => {
      const { definition, url } = target;
      assert.ok(BROKERS.includes(definition), 'registered in worker/src/brokers/registry.ts');
      assert.equal(brokerFor(url), definition);
      for (const scheme of definition.schemes) assert.equal(brokerFor(`${scheme}://host:1`), definition);
      definition.validate(url, 'the test', { prefix: 'tf', queue: target.queue() });
      await definition.assertReachable(url, { what: 'the broker', setting: 'the test' });
      assert.equal(broker.chords !== undefined, definition.capabilities.chords, 'chords iff declared');
    });

    test('publish, receive, ack: the envelope arrives intact, once', async (t) => {
      const queue = target.queue();
      const sent = envelope(queue, {
        args: [1, 'two', { three: [3, null, true] }],
        headers: { trace: 'abc' },
        maxRetries: 2,
        expires: Date.now() + 3_600_000,
      });
      const before = Date.now();
      await broker.publish([sent]);
      await assertBacklog(queue, { ready: 1, delayed: 0, inFlight: 0 });

      const c = await consumer(t, queue);
      assert.equal(c.healthy, true);
      const [delivery, ...more] = await receiveSome(c, 10);
      assert.equal(more.length, 0);
      assert.ok(delivery);
      assert.deepEqual(delivery.envelope, sent);
      assert.equal(delivery.problem, undefined);
      assert.deepEqual(JSON.parse(delivery.raw), sent);
      assert.equal(delivery.deliveries, 1);
      assertPlausibleTime(delivery.enqueuedAt, before, 'enqueuedAt');
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 1 });

      await c.settle(delivery, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
      // Were the acknowledgement lost, another consumer would recover the message after its timeout.
      const other = await consumer(t, queue, { visibilityTimeoutMs });
      assert.deepEqual(await receiveFor(other, 3 * visibilityTimeoutMs), []);
      await c.close();
      assert.equal(c.healthy, false);
    });

    test('receive returns at most max; with an aborted signal it returns [] and takes nothing', async (t) => {
      const queue = target.queue();
      const sent = Array.from({ length: 7 }, (_, i) => envelope(queue, { args: [i] }));
      await broker.publish(sent);
      const c = await consumer(t, queue);

      assert.deepEqual(await c.receive(10, AbortSignal.abort()), []);
      const received: Delivery[] = [];
      for (let i = 0; received.length < sent.length; i++) {
        const max = (i % 3) + 1;
        const batch = await receiveSome(c, max);
        received.push(...batch);
      }
      assert.deepEqual(received.map((d) => d.envelope?.id).sort(), sent.map((e) => e.id).sort());
      await Promise.all(received.map((d) => c.settle(d, { kind: 'ack' })));

      // Waiting on an empty queue, an abort ends the wait with nothing.
      const controller = new AbortController();
      const waiting = c.receive(10, controller.signal);
      setTimeout(() => controller.abort(), 100);
      assert.deepEqual(await within(waiting, 'receive to return after its signal aborted'), []);
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('a message with a future eta is held until then, then delivered', async (t) => {
      const queue = target.queue();
      const eta = Date.now() + 2000;
      const sent = envelope(queue, { eta });
      await broker.publish([sent]);
      await assertBacklog(queue, { ready: 0, delayed: 1, inFlight: 0 });

      const c = await consumer(t, queue);
      assert.deepEqual(await receiveFor(c, 300), [], 'received before its eta');
      await assertBacklog(queue, { ready: 0, delayed: 1, inFlight: 0 });

      const [delivery] = await receiveSome(c, 10);
      const receivedAt = Date.now();
      assert.ok(receivedAt >= eta, `received ${eta - receivedAt} ms before its eta`);
      assert.deepEqual(delivery?.envelope, sent);
      await c.settle(delivery!, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });

      // An eta already past is no delay at all.
      await broker.publish([envelope(queue, { eta: Date.now() - 1000 })]);
      await assertBacklog(queue, { ready: 1, delayed: 0, inFlight: 0 });
    });

    test('requeue: the new envelope is delivered at its time, and the original is acknowledged with it', async (t) => {
      const queue = target.queue();
      const sent = envelope(queue, { args: ['retry me'], maxRetries: 3 });
      await broker.publish([sent]);
      const c = await consumer(t, queue, { visibilityTimeoutMs });
      const [first] = await receiveSome(c, 1);
      assert.ok(first);

      const retry: Envelope = { ...sent, attempt: sent.attempt + 1 };
      const at = Date.now() + 1000;
      await c.settle(first, { kind: 'requeue', envelope: retry, at });
      // One step: the original is no longer held and the retry waits, with nothing in between.
      await assertBacklog(queue, { ready: 0, delayed: 1, inFlight: 0 });
      assert.deepEqual(await receiveFor(c, 300), [], 'received before its time');

      const [second, ...more] = await receiveSome(c, 10);
      assert.ok(Date.now() >= at, 'received before its time');
      assert.equal(more.length, 0, 'the original was delivered again');
      assert.deepEqual(second?.envelope, retry);
      assert.equal(second?.envelope?.attempt, 2);
      assert.equal(second?.deliveries, 1, 'a requeued message starts its delivery count afresh');
      await c.settle(second!, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
      assert.deepEqual(await receiveFor(c, 3 * visibilityTimeoutMs), [], 'delivered again after the ack');

      // A requeue due now is delivered at once.
      await broker.publish([envelope(queue)]);
      const [third] = await receiveSome(c, 1);
      const now: Envelope = { ...third!.envelope!, attempt: 2 };
      await c.settle(third!, { kind: 'requeue', envelope: now, at: Date.now() - 1 });
      const [fourth] = await receiveSome(c, 1);
      assert.deepEqual(fourth?.envelope, now);
      await c.settle(fourth!, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('dead-letter: kept with reason, detail and raw message; requeued, it is received again', async (t) => {
      const queue = target.queue();
      const [one, two] = [envelope(queue, { args: [1] }), envelope(queue, { args: [2] })];
      await broker.publish([one, two]);
      const c = await consumer(t, queue);
      const deliveries = await receiveAll(c, 2);
      const before = Date.now();
      for (const d of deliveries) {
        await c.settle(d, { kind: 'dead-letter', reason: 'unknown-task', detail: `no task for ${d.envelope?.id}` });
      }
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });

      const letters = await broker.deadLetters(queue);
      assert.equal(letters.length, 2);
      for (const d of deliveries) {
        const letter = letters.find((l) => l.taskId === d.envelope?.id);
        assert.ok(letter, `no dead letter for ${d.envelope?.id}`);
        assert.equal(letter.reason, 'unknown-task');
        assert.equal(letter.detail, `no task for ${d.envelope?.id}`);
        assert.equal(letter.raw, d.raw);
        assert.equal(letter.task, 'conformance.echo');
        assert.equal(letter.deliveries, 1);
        assertPlausibleTime(letter.at, before, 'the dead letter time');
      }
      assert.deepEqual(
        (await broker.deadLetters(queue, { limit: 1 })).map((l) => l.id),
        [letters[0]?.id],
      );

      // By id: only that one goes back.
      const oneLetter = letters.find((l) => l.taskId === one.id)!;
      assert.equal(await broker.requeueDeadLetters(queue, [oneLetter.id]), 1);
      assert.deepEqual(
        (await broker.deadLetters(queue)).map((l) => l.taskId),
        [two.id],
      );
      const [again] = await receiveSome(c, 10);
      assert.deepEqual(again?.envelope, one);
      await c.settle(again!, { kind: 'ack' });

      // All of them.
      assert.equal(await broker.requeueDeadLetters(queue), 1);
      assert.deepEqual(await broker.deadLetters(queue), []);
      const [last] = await receiveSome(c, 10);
      assert.deepEqual(last?.envelope, two);
      await c.settle(last!, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
      assert.equal(await broker.requeueDeadLetters(queue), 0);
    });

    test('release: another consumer receives the delivery at once, without a visibility wait', async (t) => {
      const queue = target.queue();
      const sent = envelope(queue);
      await broker.publish([sent]);
      // The timeout is far longer than the wait below: only the release can explain the redelivery.
      const consumers = [
        await consumer(t, queue, { visibilityTimeoutMs: 10 * WAIT_MS }),
        await consumer(t, queue, { visibilityTimeoutMs: 10 * WAIT_MS }),
      ];
      // Whichever receives it (on Kafka, the owner of its partition) gives it back and leaves.
      const stop = new AbortController();
      const received = await within(
        Promise.race(
          consumers.map(async (c) => {
            const deliveries = await c.receive(10, stop.signal);
            if (deliveries.length > 0) stop.abort();
            return { c, deliveries };
          }),
        ),
        'the message to be received',
      );
      const [first, second] = received.c === consumers[0] ? consumers : [...consumers].reverse();
      const [delivery] = received.deliveries;
      await first!.release([delivery!]);
      // As a worker does when it stops: on Kafka the partition, and with it the message, goes to the
      // second consumer when the first leaves; on Redis the message is back on its lane already.
      await first!.close();

      const [again] = await receiveSome(second!, 10);
      assert.deepEqual(again?.envelope, sent);
      await second!.settle(again!, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('a consumer that closes without settling: redelivered after the visibility timeout; past maxDeliveries, poison', async (t) => {
      const queue = target.queue();
      const sent = envelope(queue);
      await broker.publish([sent]);
      const options = { visibilityTimeoutMs, maxDeliveries: 2 };

      const first = await consumer(t, queue, options);
      const [d1] = await receiveSome(first, 10);
      assert.equal(d1?.deliveries, 1);
      await first.close();

      const second = await consumer(t, queue, options);
      const [d2, ...more] = await receiveSome(second, 10);
      assert.equal(more.length, 0);
      assert.deepEqual(d2?.envelope, sent);
      assert.equal(d2?.deliveries, 2);
      assert.equal(d2?.problem, undefined);
      await second.close();

      const third = await consumer(t, queue, options);
      const [d3] = await receiveSome(third, 10);
      assert.equal(d3?.deliveries, 3);
      assert.equal(d3?.problem?.reason, 'poison');
      assert.equal(d3?.raw, d1?.raw);
      await third.settle(d3!, { kind: 'dead-letter', reason: 'poison', detail: d3!.problem!.message });
      const [letter, ...others] = await broker.deadLetters(queue);
      assert.equal(others.length, 0);
      assert.equal(letter?.reason, 'poison');
      assert.equal(letter?.deliveries, 3);
      assert.equal(letter?.taskId, sent.id);
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('release counts only when asked: a call put back after it ran is counted, past maxDeliveries poison', async (t) => {
      const queue = target.queue();
      const sent = envelope(queue);
      await broker.publish([sent]);
      const c = await consumer(t, queue, { maxDeliveries: 2 });
      const [first] = await receiveSome(c, 10);
      assert.equal(first?.deliveries, 1);
      // Handed back before it started (a shutdown, a rebalance): not a delivery.
      await c.release([first!]);
      const [again] = await receiveSome(c, 10);
      assert.deepEqual(again?.envelope, sent);
      assert.equal(again?.deliveries, 1, 'a release that did not count was counted');
      // Handed back after it ran without its outcome recorded: counted, across the re-add.
      await c.release([again!], { counted: true });
      const [second] = await receiveSome(c, 10);
      assert.equal(second?.deliveries, 2);
      assert.equal(second?.problem, undefined);
      await c.release([second!], { counted: true });
      const [third] = await receiveSome(c, 10);
      assert.equal(third?.deliveries, 3);
      assert.equal(third?.problem?.reason, 'poison');
      assert.match(third?.problem?.message ?? '', /delivered 3 times \(the limit is 2\)/);
      await c.settle(third!, { kind: 'dead-letter', reason: 'poison', detail: third!.problem!.message });
      assert.equal((await broker.deadLetters(queue))[0]?.deliveries, 3);
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('drop: a delivery that could not be settled is redelivered after the visibility timeout, counted', async (t) => {
      const queue = target.queue();
      const sent = envelope(queue);
      await broker.publish([sent]);
      const c = await consumer(t, queue, { visibilityTimeoutMs, maxDeliveries: 5 });
      const [first] = await receiveSome(c, 10);
      const droppedAt = Date.now();
      c.drop(first!);
      c.drop(first!); // twice changes nothing
      const [again, ...more] = await receiveSome(c, 10);
      assert.equal(more.length, 0);
      assert.ok(Date.now() - droppedAt >= visibilityTimeoutMs, 'redelivered before the visibility timeout');
      assert.deepEqual(again?.envelope, sent);
      assert.equal(again?.deliveries, 2);
      await c.settle(again!, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
      assert.deepEqual(await receiveFor(c, 3 * visibilityTimeoutMs), [], 'delivered again after the ack');
    });

    test('a message too large to run is dead-lettered as its head, size and SHA-256; requeue leaves it', async (t) => {
      if (!target.injectRaw) return t.skip('this adapter cannot publish a raw message');
      const queue = target.queue();
      const text = JSON.stringify({ ...envelope(queue), args: ['é'.repeat(10_000)] });
      await target.injectRaw(queue, text);
      const c = await consumer(t, queue, { maxMessageBytes: 8192 });
      const [d] = await receiveSome(c, 10);
      assert.equal(d?.problem?.reason, 'too-large');
      await c.settle(d!, { kind: 'dead-letter', reason: 'too-large', detail: d!.problem!.message });
      const [letter, ...others] = await broker.deadLetters(queue);
      assert.equal(others.length, 0);
      assert.equal(letter?.size, Buffer.byteLength(text));
      assert.equal(letter?.sha256, createHash('sha256').update(text).digest('hex'));
      assert.ok(Buffer.byteLength(letter?.raw ?? '') <= 4096, `kept ${Buffer.byteLength(letter?.raw ?? '')} bytes`);
      assert.ok(
        text.startsWith(letter?.raw ?? 'x') && Buffer.byteLength(letter?.raw ?? '') >= 4095,
        'the head, cut at a character',
      );
      assert.equal(await broker.requeueDeadLetters(queue), 0, 'a head alone cannot run');
      assert.equal((await broker.deadLetters(queue)).length, 1);
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('requeueing every dead letter goes a page at a time, through those there when it began', async (t) => {
      const queue = target.queue();
      const sent = Array.from({ length: 250 }, (_, i) => envelope(queue, { args: [i] }));
      await broker.publish(sent);
      const c = await consumer(t, queue);
      for (const d of await receiveAll(c, sent.length, 100)) {
        await c.settle(d, { kind: 'dead-letter', reason: 'unknown-task', detail: 'no such task' });
      }
      const pages: number[] = [];
      const late = envelope(queue, { args: ['late'] });
      const requeued = await broker.requeueDeadLetters(queue, undefined, {
        beforeEach: async (letters) => {
          pages.push(letters.length);
          if (pages.length > 1) return;
          // Dead-lettered while the requeue runs: not among the letters it began with.
          await broker.publish([late]);
          const [d] = await receiveSome(c, 1);
          await c.settle(d!, { kind: 'dead-letter', reason: 'unknown-task', detail: 'late' });
        },
      });
      assert.equal(requeued, 250);
      assert.ok(pages.every((n) => n <= 100) && pages.length >= 3, `pages ${pages}`);
      assert.equal(
        pages.reduce((a, b) => a + b, 0),
        250,
      );
      assert.deepEqual(
        (await broker.deadLetters(queue)).map((l) => l.taskId),
        [late.id],
      );
      const again = await receiveAll(c, 250, 100);
      assert.deepEqual(again.map((d) => d.envelope?.id).sort(), sent.map((e) => e.id).sort());
      await Promise.all(again.map((d) => c.settle(d, { kind: 'ack' })));
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('a delivery held by a live consumer is not redelivered, however many timeouts pass', async (t) => {
      const queue = target.queue();
      await broker.publish([envelope(queue)]);
      const holder = await consumer(t, queue, { visibilityTimeoutMs });
      const [held] = await receiveSome(holder, 10);
      const other = await consumer(t, queue, { visibilityTimeoutMs });
      assert.deepEqual(await receiveFor(other, 5 * visibilityTimeoutMs), []);
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 1 });
      await holder.settle(held!, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('priority: the most urgent waiting message is received first, then by arrival', async (t) => {
      const queue = target.queue();
      if (!priorities) {
        // Accepted and ignored: every message arrives once, whatever its priority.
        const sent = [0, 5, 9, 2, 7].map((priority) => envelope(queue, { priority }));
        await broker.publish(sent);
        const c = await consumer(t, queue);
        const received = await receiveAll(c, sent.length, 2);
        assert.deepEqual(received.map((d) => d.envelope?.id).sort(), sent.map((e) => e.id).sort());
        await Promise.all(received.map((d) => c.settle(d, { kind: 'ack' })));
        await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
        return;
      }
      const at = (priority: number, n: number) =>
        Array.from({ length: n }, (_, i) => envelope(queue, { priority, args: [`p${priority}-${i}`] }));
      const low = at(9, 3);
      const normal = at(5, 3);
      const urgent = [...at(0, 2), ...at(2, 1)];
      // Least urgent first, in separate calls: arrival order alone would get it backwards.
      for (const batch of [low, normal, urgent]) await broker.publish(batch);
      const c = await consumer(t, queue);

      const order: (string | undefined)[] = [];
      while (order.length < 9) {
        // One at a time, as a worker with one free slot asks: each must be the most urgent still waiting.
        for (const d of await receiveSome(c, 1)) {
          order.push(d.envelope?.id);
          await c.settle(d, { kind: 'ack' });
        }
      }
      assert.deepEqual(
        order,
        [...urgent, ...normal, ...low].map((e) => e.id),
      );

      // The same when asking for all of them at once.
      const again = [...at(8, 2), ...at(4, 2), ...at(1, 2)];
      await broker.publish(again);
      const batch = await receiveAll(c, 6, 6);
      assert.deepEqual(
        batch.map((d) => d.envelope?.id),
        [...again.slice(4), ...again.slice(2, 4), ...again.slice(0, 2)].map((e) => e.id),
      );
      await Promise.all(batch.map((d) => c.settle(d, { kind: 'ack' })));
    });

    test('a malformed message is delivered with its problem, to be dead-lettered, never dropped', async (t) => {
      if (!target.injectRaw) return t.skip('this adapter cannot publish a raw message');
      const queue = target.queue();
      const texts = {
        malformed: 'this is not JSON {',
        envelope: JSON.stringify({ v: 1, id: 'x' }),
        version: JSON.stringify({ ...envelope(queue), v: 99 }),
      };
      for (const text of Object.values(texts)) await target.injectRaw(queue, text);
      const c = await consumer(t, queue);
      const deliveries = await receiveAll(c, 3);
      const byRaw = new Map(deliveries.map((d) => [d.raw, d]));
      assert.equal(byRaw.get(texts.malformed)?.problem?.reason, 'malformed');
      assert.equal(byRaw.get(texts.envelope)?.problem?.reason, 'malformed');
      assert.equal(byRaw.get(texts.version)?.problem?.reason, 'unsupported-version');
      for (const d of deliveries) {
        assert.equal(d.envelope, undefined);
        assert.equal(d.deliveries, 1);
        await c.settle(d, { kind: 'dead-letter', reason: d.problem!.reason, detail: d.problem!.message });
      }
      const letters = await broker.deadLetters(queue);
      assert.deepEqual(letters.map((l) => l.raw).sort(), Object.values(texts).sort());
      assert.equal(letters.find((l) => l.raw === texts.malformed)?.reason, 'malformed');
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('purge deletes ready and delayed messages, not held ones, and counts them', async (t) => {
      const queue = target.queue();
      assert.equal(await broker.purge(queue), 0);
      const later = Date.now() + 3_600_000;
      await broker.publish([
        ...Array.from({ length: 3 }, () => envelope(queue)),
        ...Array.from({ length: 2 }, () => envelope(queue, { eta: later })),
      ]);
      await assertBacklog(queue, { ready: 3, delayed: 2, inFlight: 0 });
      const c = await consumer(t, queue);
      const [held, ...more] = await receiveSome(c, 1);
      assert.equal(more.length, 0);
      await assertBacklog(queue, { ready: 2, delayed: 2, inFlight: 1 });

      assert.equal(await broker.purge(queue), 4);
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 1 });
      assert.deepEqual(await receiveFor(c, 300), []);
      await c.settle(held!, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });

      // The queue works on after a purge.
      const after = envelope(queue);
      await broker.publish([after]);
      await assertBacklog(queue, { ready: 1, delayed: 0, inFlight: 0 });
      const [next] = await receiveSome(c, 10);
      assert.deepEqual(next?.envelope, after);
      await c.settle(next!, { kind: 'ack' });
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('purge while messages are published: it ends, and each message is purged or delivered, none stranded', async (t) => {
      const queue = target.queue();
      const c = await consumer(t, queue); // the queue has its consumers before the purge, as in production
      // A purge deletes what is waiting; it must not chase producers that keep publishing.
      const cap = 20_000;
      let published = 0;
      let purged = 0;
      let purging = true;
      const publish = async () => {
        await broker.publish(Array.from({ length: 5 }, () => envelope(queue)));
        published += 5;
      };
      await Promise.all([
        (async () => {
          while (purging && published < cap) await publish();
          await publish(); // and some after the last purge, to be delivered
        })(),
        (async () => {
          for (let i = 0; i < 20; i++) purged += await broker.purge(queue);
          purging = false;
        })(),
      ]);
      assert.ok(published < cap, `the purges ran on until ${published} messages had been published`);
      assert.ok(purged > 0 && purged < published, `purged ${purged} of ${published}: the purges did not overlap`);

      const received = new Set<string>();
      await within(
        (async () => {
          while (received.size < published - purged) {
            for (const d of await receiveSome(c, 100)) {
              received.add(d.envelope!.id);
              await c.settle(d, { kind: 'ack' });
            }
          }
        })(),
        `the ${published - purged} messages not purged`,
      );
      assert.equal(received.size, published - purged);
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('9,000 settlements in one tick — acks, requeues and dead letters mixed — all take effect', async (t) => {
      // More than Lua's unpack() takes at once (about 8,000): a batch of any size must settle.
      const queue = target.queue();
      const total = 9000;
      const sent = Array.from({ length: total }, (_, i) => envelope(queue, { args: [i] }));
      for (let i = 0; i < total; i += 1000) await broker.publish(sent.slice(i, i + 1000));
      const c = await consumer(t, queue);
      const deliveries = await receiveAll(c, total, 1000);
      const requeued = new Set<string>();
      await within(
        Promise.all(
          deliveries.map((d, i) => {
            const e = d.envelope!;
            if (i % 3 === 0) return c.settle(d, { kind: 'ack' });
            if (i % 3 === 1) {
              requeued.add(e.id);
              return c.settle(d, { kind: 'requeue', envelope: { ...e, attempt: 2 }, at: Date.now() - 1 });
            }
            return c.settle(d, { kind: 'dead-letter', reason: 'unknown-task', detail: 'no such task' });
          }),
        ),
        `${total} settlements`,
      );
      await assertBacklog(queue, { ready: total / 3, delayed: 0, inFlight: 0 });
      assert.equal((await broker.deadLetters(queue, { limit: total })).length, total / 3, 'dead letters');
      const again = await receiveAll(c, total / 3, 1000);
      assert.deepEqual(new Set(again.map((d) => d.envelope?.id)), requeued, 'the requeued calls, each once');
      assert.ok(
        again.every((d) => d.envelope?.attempt === 2),
        'as requeued',
      );
      await Promise.all(again.map((d) => c.settle(d, { kind: 'ack' })));
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });

    test('three consumers drain 2,000 messages concurrently: each received and acknowledged exactly once', async (t) => {
      const queue = target.queue();
      const total = 2000;
      const sent = Array.from({ length: total }, (_, i) => envelope(queue, { args: [i], priority: i % 10 }));
      // The default visibility timeout: nothing is recovered, so any duplicate is the broker's fault.
      const consumers = await Promise.all([1, 2, 3].map(() => consumer(t, queue)));
      const seen = new Map<string, number>();
      const done = new AbortController();
      const drain = async (c: Consumer, max: number) => {
        try {
          while (!done.signal.aborted) {
            const deliveries = await c.receive(max, done.signal);
            assert.ok(deliveries.length <= max, `receive(${max}) returned ${deliveries.length}`);
            for (const d of deliveries) {
              assert.equal(d.problem, undefined);
              const id = d.envelope!.id;
              seen.set(id, (seen.get(id) ?? 0) + 1);
            }
            await Promise.all(deliveries.map((d) => c.settle(d, { kind: 'ack' })));
            if (seen.size === total) done.abort();
          }
        } finally {
          done.abort(); // one consumer failing stops the others
        }
      };
      const draining = Promise.all(consumers.map((c, i) => drain(c, [1, 16, 64][i] as number)));
      for (let i = 0; i < total; i += 100) await broker.publish(sent.slice(i, i + 100));
      await within(draining, `${total} messages to be drained`, 6 * WAIT_MS);

      const duplicates = [...seen].filter(([, n]) => n > 1);
      assert.deepEqual(duplicates, [], 'received more than once');
      assert.equal(seen.size, total);
      await assertBacklog(queue, { ready: 0, delayed: 0, inFlight: 0 });
    });
  });
}

/** Receives until at least one delivery arrives; fails if none does within WAIT_MS. */
async function receiveSome(consumer: Consumer, max: number): Promise<Delivery[]> {
  const deliveries = await consumer.receive(max, AbortSignal.timeout(WAIT_MS));
  assert.ok(deliveries.length > 0, `nothing was received within ${WAIT_MS / 1000}s`);
  assert.ok(deliveries.length <= max, `receive(${max}) returned ${deliveries.length}`);
  return deliveries;
}

/** Receives until `count` deliveries have arrived, `max` at a time. */
async function receiveAll(consumer: Consumer, count: number, max = count): Promise<Delivery[]> {
  const deliveries: Delivery[] = [];
  while (deliveries.length < count) deliveries.push(...(await receiveSome(consumer, max)));
  assert.equal(deliveries.length, count, 'received more than was sent');
  return deliveries;
}

/** What a consumer receives while `ms` pass: for showing that nothing comes. */
function receiveFor(consumer: Consumer, ms: number): Promise<Delivery[]> {
  return consumer.receive(10, AbortSignal.timeout(ms));
}

/** A promise that must settle; the bound turns a hang into a failure naming what was awaited. */
async function within<T>(promise: Promise<T>, what: string, ms = WAIT_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms / 1000}s waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A broker's timestamp: on the same machine, between just before the act and now. */
function assertPlausibleTime(time: number, before: number, what: string): void {
  // A second of slack for clock granularity; seconds instead of ms, or 0, is far outside it.
  assert.ok(time >= before - 1000 && time <= Date.now() + 1000, `${what} ${time} is not between ${before} and now`);
}
