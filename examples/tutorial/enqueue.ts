/**
 * The calling side of the tutorial: enqueue, carry on, read results later. With a worker running
 * (`npx taskfleet worker --app examples/tutorial/tasks.ts`, or the image of ./Dockerfile):
 *   npx node examples/tutorial/enqueue.ts   (npx: the Node 24 in node_modules; see examples/README.md)
 * TASKFLEET_BROKER and TASKFLEET_BACKEND say where Redis is (default redis://localhost:6379/0);
 * FEED_URL is what fetch_external_data fetches.
 */
import { chain, ResultTimeoutError } from 'taskfleet';
import {
  app,
  callPartnerApi,
  fetchExternalData,
  processPayment,
  processUser,
  sendReceipt,
  sendWelcomeEmail,
  updateInventory,
} from './tasks.ts';

// This returns immediately — no waiting.
const result = await sendWelcomeEmail.delay('user@example.com');

// Later, when you need the result:
if (await result.ready()) console.log(await result.get());
console.log(await result.get({ timeout: 10_000 })); // "Email sent to user@example.com"

// Process payment, then send receipt, then update inventory.
const order = await chain(processPayment.s(123), sendReceipt.s(), updateInventory.s()).delay();
console.log(await order.get({ timeout: 10_000 })); // "inventory updated for order 123 (R-123)"

// Retries: a failing fetch is tried again 60 s later, three times at most. The result says RETRY meanwhile.
const feed = await fetchExternalData.delay(process.env.FEED_URL ?? 'https://example.com/feed.json');
try {
  console.log('feed:', JSON.stringify(await feed.get({ timeout: 15_000 })));
} catch (error) {
  if (!(error instanceof ResultTimeoutError)) throw error;
  console.log(`feed: ${await feed.state()} — follow it with: taskfleet result ${feed.id} --wait 300000`);
}

// Rate limits: call_partner_api runs at most 10 times a minute on each worker, one call every 6 s.
const calls = await callPartnerApi.applyBulk([[1], [2]]);
await Promise.all(calls.map((call) => call.get({ timeout: 30_000 })));
const [first, second] = await Promise.all(calls.map((call) => call.info()));
const apart = ((second?.startedAt ?? 0) - (first?.startedAt ?? 0)) / 1000;
console.log(`call_partner_api: 2 calls started ${Math.abs(apart).toFixed(1)} s apart (rate limit 10/m)`);

// The serialization trap: pass IDs, not objects. TypeScript rejects this call, and so would the SDK.
try {
  // @ts-expect-error: process_user takes a user id; a Date is not JSON and never reaches the broker
  await processUser.delay(new Date());
} catch (error) {
  console.log(`refused: ${(error as Error).message}`);
}
console.log(await (await processUser.delay(42)).get({ timeout: 10_000 }));

await app.close();
