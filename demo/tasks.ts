/**
 * The demo's tasks. The worker pods run this module (`taskfleet worker --app /app/demo/tasks.ts`): on a
 * real cluster it reaches them as a ConfigMap mounted into the stock worker image, on the local stack the
 * pod runner maps /app/demo to this folder. The demo itself imports it to send the tasks, as an app would.
 * Broker, queue and key prefix come from the TASKFLEET_* variables the operator gives each worker pod
 * (and from configure() on the sending side).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Taskfleet } from 'taskfleet';

/** With the task history on, so that the console (printed at the start) can show and retry every call. */
export const app = new Taskfleet({ history: true });

/**
 * Renders one thumbnail, pretending: 100–300 ms of waiting, the same for the same image, so that a burst
 * takes the workers long enough to watch the fleet grow.
 */
export const renderThumbnail = app.task('render_thumbnail', async (ctx, imageId: number) => {
  await sleep(workMs(imageId), undefined, { signal: ctx.signal });
  return `thumbnails/${imageId}.webp`;
});

/** 100–300 ms, spread evenly over image ids (a multiplicative hash, not a random number). */
export function workMs(imageId: number): number {
  return 100 + (((imageId * 2_654_435_761) % 2 ** 32) % 201);
}

/**
 * Tells an uploader their thumbnail is ready; the demo sends a few that fail, as a webhook that timed
 * out would, so there is something to retry from the console. A retry made there (which carries the
 * id it retries in the header taskfleet-retry-of) succeeds.
 */
export const notifyUploader = app.task('notify_uploader', { maxRetries: 0 }, (ctx, imageId: number) => {
  if (!ctx.headers['taskfleet-retry-of']) throw new Error(`the webhook for image ${imageId} timed out`);
  return `notified about ${imageId}`;
});
