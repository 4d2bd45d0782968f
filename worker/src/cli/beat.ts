import { resolve } from 'node:path';
import type { Taskfleet } from '../app.ts';
import { redact } from '../brokers/redact.ts';
import type { Logger } from '../observe/logger.ts';
import { Beat } from '../schedule/beat.ts';
import { loadScheduleFile } from '../schedule/file.ts';

export interface BeatCommandOptions {
  /** A JSON or YAML file of schedules besides the app's. */
  schedulesFile?: string | undefined;
  leaseTtl?: number | undefined;
  logger: Logger;
}

/**
 * `taskfleet beat`: fires the app's schedules (and the file's) until SIGTERM or SIGINT, which stop it
 * and release the lease so another beat takes over at once; a second signal exits at once.
 */
export async function runBeat(app: Taskfleet, options: BeatCommandOptions): Promise<void> {
  const { logger } = options;
  const fromFile = options.schedulesFile
    ? await loadScheduleFile(resolve(process.cwd(), options.schedulesFile), {
        knownTask: (task) => app.tasks.has(task),
      })
    : [];
  const beat = new Beat(app, {
    schedules: fromFile,
    logger,
    ...(options.leaseTtl !== undefined ? { leaseTtl: options.leaseTtl } : {}),
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) process.exit(1);
    logger.info(`${signal}: stopping and releasing the lease`, { signal });
    beat.stop().then(
      () => app.close().then(() => process.exit(0)),
      (error) => {
        logger.error('shutdown failed', { error });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  logger.info('connecting', { broker: redact(app.brokerUrl) });
  beat.start();
}
