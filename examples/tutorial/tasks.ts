/**
 * The Celery tutorial's tasks, in TypeScript. Run a worker for them with:
 *   npx taskfleet worker --app examples/tutorial/tasks.ts
 * or in a container: ./Dockerfile puts this module in the worker image.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Taskfleet } from 'taskfleet';

export const app = new Taskfleet({
  broker: process.env.TASKFLEET_BROKER ?? 'redis://localhost:6379/0',
  backend: process.env.TASKFLEET_BACKEND ?? 'redis://localhost:6379/0',
});

export const sendWelcomeEmail = app.task('send_welcome_email', async (_ctx, userEmail: string) => {
  await sleep(500); // simulating a slow email send
  return `Email sent to ${userEmail}`;
});

// Process payment, then send receipt, then update inventory: see enqueue.ts for the chain.
export const processPayment = app.task('process_payment', (_ctx, orderId: number) => ({ orderId, charged: 4200 }));
export const sendReceipt = app.task('send_receipt', (_ctx, payment: { orderId: number; charged: number }) => {
  return { orderId: payment.orderId, receipt: `R-${payment.orderId}` };
});
export const updateInventory = app.task('update_inventory', (_ctx, receipt: { orderId: number; receipt: string }) => {
  return `inventory updated for order ${receipt.orderId} (${receipt.receipt})`;
});

// Retries that don't drive you crazy: up to 3 retries, 60 s apart.
export const fetchExternalData = app.task(
  'fetch_external_data',
  { maxRetries: 3, retryDelay: 60_000 },
  async (ctx, url: string) => {
    const response = await fetch(url, { signal: AbortSignal.any([ctx.signal, AbortSignal.timeout(10_000)]) });
    if (!response.ok) throw ctx.retry({ error: new Error(`GET ${url}: ${response.status}`) });
    return (await response.json()) as Record<string, unknown>;
  },
);

// Be kind to APIs: at most 10 calls a minute on each worker.
export const callPartnerApi = app.task('call_partner_api', { rateLimit: '10/m' }, async (_ctx, userId: number) => {
  return { userId, synced: true };
});

// Pass IDs, not objects: arguments must be JSON, and a Date or a class instance is refused at enqueue.
export const processUser = app.task('process_user', async (_ctx, userId: number) => ({ userId, processed: true }));
