/** The calling side of the tutorial: enqueue, carry on, read results later. */
import { chain } from 'taskfleet';
import { app, processPayment, sendReceipt, sendWelcomeEmail, updateInventory } from './tasks.ts';

// This returns immediately — no waiting.
const result = await sendWelcomeEmail.delay('user@example.com');

// Later, when you need the result:
if (await result.ready()) console.log(await result.get());
console.log(await result.get({ timeout: 10_000 })); // "Email sent to user@example.com"

// Process payment, then send receipt, then update inventory.
const order = await chain(processPayment.s(123), sendReceipt.s(), updateInventory.s()).delay();
console.log(await order.get({ timeout: 10_000 }));

await app.close();
