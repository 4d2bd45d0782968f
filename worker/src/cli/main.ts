#!/usr/bin/env node
/**
 * The `taskfleet` command: run a worker, and inspect and manage a running fleet.
 * Every flag has a TASKFLEET_* environment variable (the operator sets those in worker pods).
 */
import { parseArgs } from 'node:util';
import { Taskfleet } from '../app.ts';
import { redact, redactText } from '../brokers/redact.ts';
import { redis } from '../brokers/redis/definition.ts';
import { brokerFor } from '../brokers/registry.ts';
import { ConsoleApi } from '../console/api.ts';
import { assertBindable, authFromEnv, hasCredentials } from '../console/auth.ts';
import { taskQueuesFrom } from '../console/kubernetes.ts';
import { startConsole } from '../console/server.ts';
import type { HistoryEntry, HistoryState } from '../history/entry.ts';
import { createLogger, type Logger, parseLogLevel } from '../observe/logger.ts';
import { assertHasTasks, Worker } from '../runtime/worker.ts';
import { loadApp } from './app-module.ts';
import { runBeat } from './beat.ts';
import { printable, printableJson } from './printable.ts';

/** A flag, its TASKFLEET_* variable, and its line in the usage (flags without `help` are listed by their command). */
interface FlagSpec {
  type: 'string' | 'boolean';
  env?: string;
  short?: string;
  /** The value's placeholder in the usage: `<module>`. */
  value?: string;
  help?: string;
}

const options = {
  app: { type: 'string', env: 'TASKFLEET_APP', value: '<module>', help: 'a module that exports a Taskfleet app' },
  queue: {
    type: 'string',
    env: 'TASKFLEET_QUEUE',
    value: '<name>',
    help: "queue to consume (default: the app's defaultQueue)",
  },
  concurrency: { type: 'string', env: 'TASKFLEET_CONCURRENCY', value: '<n>', help: 'calls run at once (default 16)' },
  prefetch: {
    type: 'string',
    env: 'TASKFLEET_PREFETCH',
    value: '<n>',
    help: 'calls fetched ahead of free slots (default: concurrency)',
  },
  broker: {
    type: 'string',
    env: 'TASKFLEET_BROKER',
    value: '<url>',
    help: 'redis://host:port/db, or kafka://host:port,… (docs/kafka.md)',
  },
  backend: { type: 'string', env: 'TASKFLEET_BACKEND', value: '<url>', help: 'result backend, redis://host:port/db' },
  'metrics-port': {
    type: 'string',
    env: 'TASKFLEET_METRICS_PORT',
    value: '<port>',
    help: 'serve /metrics, /healthz, /readyz (default 9090; 0: none)',
  },
  'log-level': {
    type: 'string',
    env: 'TASKFLEET_LOG_LEVEL',
    value: '<level>',
    help: 'debug, info, warn, error (default info)',
  },
  'visibility-timeout': {
    type: 'string',
    env: 'TASKFLEET_VISIBILITY_TIMEOUT',
    value: '<ms>',
    help: "how soon a dead worker's calls are redelivered (default 30000)",
  },
  'shutdown-grace': {
    type: 'string',
    env: 'TASKFLEET_SHUTDOWN_GRACE',
    value: '<ms>',
    help: 'how long SIGTERM waits for running calls (default 30000)',
  },
  'max-deliveries': {
    type: 'string',
    env: 'TASKFLEET_MAX_DELIVERIES',
    value: '<n>',
    help: 'dead-letter a call delivered more times than this as poison (default 5)',
  },
  'max-dead-letters': {
    type: 'string',
    env: 'TASKFLEET_MAX_DEAD_LETTERS',
    value: '<n>',
    help: 'Redis: about how many dead letters a queue keeps (default 10000)',
  },
  'max-result-bytes': {
    type: 'string',
    env: 'TASKFLEET_MAX_RESULT_BYTES',
    value: '<n>',
    help: 'a larger result fails its call (default 1048576)',
  },
  'eta-horizon': {
    type: 'string',
    env: 'TASKFLEET_ETA_HORIZON',
    value: '<ms>',
    help: 'the furthest ahead a countdown or ETA may be (default one year)',
  },
  ordered: {
    type: 'boolean',
    env: 'TASKFLEET_ORDERED',
    help: 'Kafka: run calls sharing a partition key one at a time, in order',
  },
  prefix: { type: 'string', env: 'TASKFLEET_PREFIX', value: '<prefix>', help: 'Redis key prefix (default tf)' },
  schedules: {
    type: 'string',
    env: 'TASKFLEET_SCHEDULES',
    value: '<file>',
    help: 'beat: more schedules, from a JSON or YAML file',
  },
  'lease-ttl': {
    type: 'string',
    env: 'TASKFLEET_BEAT_LEASE_TTL',
    value: '<ms>',
    help: 'beat: how soon another beat takes over from a dead one (default 10000)',
  },
  host: {
    type: 'string',
    env: 'TASKFLEET_CONSOLE_HOST',
    value: '<addr>',
    help: 'console: the address to listen on (default 127.0.0.1; beyond loopback needs sign-in)',
  },
  port: { type: 'string', env: 'TASKFLEET_CONSOLE_PORT', value: '<port>', help: 'console: the port (default 5555)' },
  queues: {
    type: 'string',
    env: 'TASKFLEET_CONSOLE_QUEUES',
    value: '<a,b>',
    help: 'console: queues to show before a worker of theirs is seen',
  },
  kubeconfig: {
    type: 'string',
    env: 'TASKFLEET_CONSOLE_KUBECONFIG',
    value: '<file>',
    help: "console: show TaskQueues from this cluster ('in-cluster': the pod's account)",
  },
  namespace: {
    type: 'string',
    env: 'TASKFLEET_CONSOLE_NAMESPACE',
    value: '<ns>',
    help: "console: only this namespace's TaskQueues",
  },
  refresh: {
    type: 'string',
    env: 'TASKFLEET_CONSOLE_REFRESH',
    value: '<ms>',
    help: 'console: how often the page is updated (default 2000)',
  },
  wait: { type: 'string' },
  limit: { type: 'string' },
  terminate: { type: 'boolean' },
  task: { type: 'string' },
  state: { type: 'string' },
  json: { type: 'boolean', help: 'machine-readable output (inspect, result, dlq, history)' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies Record<string, FlagSpec>;

type Flags = { [K in keyof typeof options]?: (typeof options)[K]['type'] extends 'boolean' ? boolean : string };

/** A mistake in how the command was called: exit code 2 and the usage. */
class UsageError extends Error {}

function flagsFrom(argv: string[]): { flags: Flags; positionals: string[] } {
  const parsed = parseArgs({
    args: argv,
    options: Object.fromEntries(
      Object.entries(options).map(([k, { type, ...rest }]) => [
        k,
        { type, ...('short' in rest ? { short: rest.short } : {}) },
      ]),
    ),
    allowPositionals: true,
    strict: true,
  });
  const flags = { ...parsed.values } as Flags & Record<string, unknown>;
  for (const [name, spec] of Object.entries(options)) {
    if (flags[name] === undefined && 'env' in spec) {
      const value = process.env[spec.env];
      if (value !== undefined && value !== '')
        flags[name] = spec.type === 'boolean' ? /^(1|true|yes)$/i.test(value) : value;
    }
  }
  return { flags, positionals: parsed.positionals };
}

function integer(flags: Flags, name: keyof Flags, min = 0): number | undefined {
  const value = flags[name];
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min)
    throw new UsageError(`--${name} must be an integer ≥ ${min}, not ${JSON.stringify(value)}`);
  return n;
}

/** The app options the connection flags set: broker, backend and key prefix, where given. */
function connectionOverrides(flags: Flags): { broker?: string; backend?: string; prefix?: string } {
  return {
    ...(flags.broker ? { broker: flags.broker } : {}),
    ...(flags.backend ? { backend: flags.backend } : {}),
    ...(flags.prefix ? { prefix: flags.prefix } : {}),
  };
}

/** The app options the bound flags set, where given. */
function boundOverrides(flags: Flags): { maxDeadLetters?: number; maxResultBytes?: number; etaHorizon?: number } {
  const maxDeadLetters = integer(flags, 'max-dead-letters', 1);
  const maxResultBytes = integer(flags, 'max-result-bytes', 1);
  const etaHorizon = integer(flags, 'eta-horizon', 1);
  return {
    ...(maxDeadLetters !== undefined ? { maxDeadLetters } : {}),
    ...(maxResultBytes !== undefined ? { maxResultBytes } : {}),
    ...(etaHorizon !== undefined ? { etaHorizon } : {}),
  };
}

/**
 * The app for commands that only read or manage the fleet: the user's, or one made from the URLs;
 * `uses` is the connection the command talks to, checked first: the app's connections wait for their
 * broker as long as it takes (a worker outlives a Redis restart), so a command given a wrong URL would
 * wait in silence forever.
 */
async function appFor(flags: Flags, uses: 'broker' | 'backend'): Promise<Taskfleet> {
  const overrides = connectionOverrides(flags);
  let app: Taskfleet;
  if (flags.app) {
    app = await loadApp(flags.app);
    app.configure(overrides);
  } else {
    // A broker that can be the result backend (Redis) is, unless told otherwise; Kafka cannot. Flags are
    // overrides (configure()), not options, so that they win over TASKFLEET_* as they do with --app.
    const brokerIsBackend = !flags.backend && flags.broker && brokerFor(flags.broker)?.capabilities.resultBackend;
    app = new Taskfleet();
    app.configure({ ...overrides, ...(brokerIsBackend ? { backend: flags.broker } : {}) });
  }
  if (uses === 'broker') {
    await app.brokerDefinition.assertReachable(app.brokerUrl, {
      what: 'the broker',
      setting: '--broker (TASKFLEET_BROKER)',
    });
  } else if (app.backendUrl !== undefined) {
    // (with none, the command's first use of it says what to configure)
    const setting =
      app.backendUrl === app.brokerUrl
        ? '--backend or --broker (TASKFLEET_BACKEND, TASKFLEET_BROKER)'
        : '--backend (TASKFLEET_BACKEND)';
    await redis.assertReachable(app.backendUrl, { what: 'the result backend', setting });
  }
  return app;
}

/** Runs a one-shot command on the app appFor() makes, and closes it however the command ends. */
async function withApp<T>(flags: Flags, uses: 'broker' | 'backend', use: (app: Taskfleet) => Promise<T>): Promise<T> {
  const app = await appFor(flags, uses);
  try {
    return await use(app);
  } finally {
    await app.close();
  }
}

/**
 * Node prints a process warning (a dependency's, as kafkajs' negative timeout, or a deprecation) as
 * plain text on stderr: a worker or beat writes it as a JSON log line instead, like everything else.
 */
function logProcessWarnings(logger: Logger): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning) => {
    const code = (warning as Error & { code?: unknown }).code;
    logger.warn(warning.message, { warning: warning.name, ...(typeof code === 'string' ? { code } : {}) });
  });
}

async function runWorker(flags: Flags): Promise<void> {
  if (!flags.app) throw new UsageError('taskfleet worker needs --app <module> (or TASKFLEET_APP)');
  const logger = createLogger(parseLogLevel(flags['log-level'] ?? 'info'));
  logProcessWarnings(logger);
  const app = await loadApp(flags.app);
  app.configure({
    ...connectionOverrides(flags),
    ...boundOverrides(flags),
    ...(flags.queue ? { defaultQueue: flags.queue } : {}),
  });
  assertHasTasks(app, app.defaultQueue);
  const metricsPort = integer(flags, 'metrics-port') ?? 9090;
  const maxDeliveries = integer(flags, 'max-deliveries', 1);
  const concurrency = integer(flags, 'concurrency', 1);
  const prefetch = integer(flags, 'prefetch');
  const visibilityTimeout = integer(flags, 'visibility-timeout', 100);
  const shutdownGrace = integer(flags, 'shutdown-grace');
  const worker = new Worker(app, {
    logger,
    ...(flags.queue ? { queue: flags.queue } : {}),
    ...(concurrency !== undefined ? { concurrency } : {}),
    ...(prefetch !== undefined ? { prefetch } : {}),
    ...(metricsPort > 0 ? { metricsPort } : {}),
    ...(visibilityTimeout !== undefined ? { visibilityTimeout } : {}),
    ...(shutdownGrace !== undefined ? { shutdownGrace } : {}),
    ...(maxDeliveries !== undefined ? { maxDeliveries } : {}),
    ...(flags.ordered ? { ordered: true } : {}),
    // The operator sets it from the downward API: a pod's hostname is its name cut to 63 characters.
    ...(process.env.TASKFLEET_POD_NAME ? { hostname: process.env.TASKFLEET_POD_NAME } : {}),
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals === 1) {
      logger.info(`${signal}: shutting down gracefully (send it again to stop now)`, { signal });
      worker.stop().then(
        () => app.close().then(() => process.exit(0)),
        (error) => {
          logger.error('shutdown failed', { error });
          process.exit(1);
        },
      );
    } else {
      worker.forceStop();
    }
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  logger.info('connecting', { broker: redact(app.brokerUrl), backend: app.backendUrl ? redact(app.backendUrl) : null });
  await worker.start();
}

async function consoleServer(flags: Flags): Promise<void> {
  const logger = createLogger(parseLogLevel(flags['log-level'] ?? 'info'));
  logProcessWarnings(logger);
  const auth = authFromEnv();
  const host = flags.host ?? '127.0.0.1';
  // Refused before connecting to anything: a console open to the network must not start at all.
  assertBindable(host, auth);
  const port = integer(flags, 'port') ?? 5555;
  const refreshMs = integer(flags, 'refresh', 200);
  const app = await appFor(flags, 'broker');
  const queues = (flags.queues ?? '')
    .split(',')
    .map((q) => q.trim())
    .filter(Boolean);
  const kubeconfig = flags.kubeconfig ?? (process.env.KUBECONFIG ? process.env.KUBECONFIG : undefined);
  const kubernetes =
    kubeconfig !== undefined
      ? await taskQueuesFrom({
          ...(kubeconfig !== 'in-cluster' ? { kubeconfig } : {}),
          ...(flags.namespace ? { namespace: flags.namespace } : {}),
        })
      : undefined;
  const api = new ConsoleApi(app, { queues, ...(kubernetes ? { kubernetes } : {}) });
  const server = await startConsole({ api, auth, logger, host, port, ...(refreshMs ? { refreshMs } : {}) });
  logger.info(`console at ${server.url}`, { url: server.url, broker: api.broker, signIn: hasCredentials(auth) });
  const stop = () => {
    void server.close().then(() => app.close().then(() => process.exit(0)));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

async function beat(flags: Flags): Promise<void> {
  if (!flags.app) throw new UsageError('taskfleet beat needs --app <module> (or TASKFLEET_APP)');
  const logger = createLogger(parseLogLevel(flags['log-level'] ?? 'info'));
  logProcessWarnings(logger);
  const leaseTtl = integer(flags, 'lease-ttl', 100);
  const app = await appFor(flags, 'broker');
  if (flags.queue) app.configure({ defaultQueue: flags.queue });
  await runBeat(app, { schedulesFile: flags.schedules, leaseTtl, logger });
}

/**
 * Prints a result: JSON with --json, else the human lines. Both are printable only (see printable.ts):
 * names, ids, details and errors come from whoever wrote to the queue, and must not drive the terminal.
 * The human lines pass each such value through `p` themselves.
 */
function print(flags: Flags, value: unknown, human: () => string): void {
  console.log(flags.json ? printableJson(value) : human());
}

const p = printable;

async function inspect(flags: Flags, what: string | undefined): Promise<void> {
  await withApp(flags, 'backend', async (app) => {
    const workers = await app.control.workers();
    const now = Date.now();
    switch (what) {
      case 'workers':
        print(flags, workers, () =>
          workers.length === 0
            ? 'no live workers'
            : workers
                .map(
                  (w) =>
                    `${p(w.id)}  queue=${p(w.queue)}  concurrency=${p(w.concurrency)}  active=${w.active.length}  up ${Math.round((now - w.startedAt) / 1000)}s`,
                )
                .join('\n'),
        );
        break;
      case 'active': {
        const active = workers.flatMap((w) => w.active.map((a) => ({ worker: w.id, ...a })));
        print(flags, active, () =>
          active.length === 0
            ? 'no task is running'
            : active
                .map(
                  (a) =>
                    `${p(a.worker)}  ${p(a.task)}  ${p(a.id)}  attempt ${p(a.attempt)}  running ${((now - a.startedAt) / 1000).toFixed(1)}s`,
                )
                .join('\n'),
        );
        break;
      }
      case 'stats': {
        const stats = workers.map((w) => ({
          worker: w.id,
          queue: w.queue,
          processed: w.processed,
          active: w.active.length,
          reserved: w.reserved,
        }));
        print(flags, stats, () =>
          stats.length === 0
            ? 'no live workers'
            : stats
                .map(
                  (s) =>
                    `${p(s.worker)}  active=${s.active} reserved=${p(s.reserved)}  ${Object.entries(s.processed)
                      .map(([k, v]) => `${p(k)}=${p(v)}`)
                      .join(' ')}`,
                )
                .join('\n'),
        );
        break;
      }
      default:
        throw new UsageError('inspect what? active, stats or workers');
    }
  });
}

async function result(flags: Flags, id: string | undefined): Promise<void> {
  if (!id) throw new UsageError('result needs a task id');
  await withApp(flags, 'backend', async (app) => {
    const wait = integer(flags, 'wait');
    const handle = app.result(id);
    if (wait !== undefined) await handle.get({ timeout: wait }).catch(() => {});
    const record = await handle.info();
    print(flags, record ?? { id, state: 'PENDING' }, () =>
      record
        ? [
            `${p(record.id)}  ${p(record.task)}  ${p(record.state)}  attempts ${p(record.attempts)}`,
            record.error
              ? `error: ${p(record.error.name)}: ${p(record.error.message)}`
              : `result: ${p(JSON.stringify(record.result))}`,
          ].join('\n')
        : `${p(id)}  PENDING (unknown, not started, or expired)`,
    );
  });
}

async function revoke(flags: Flags, ids: string[]): Promise<void> {
  if (ids.length === 0) throw new UsageError('revoke needs at least one task id');
  await withApp(flags, 'backend', async (app) => {
    await app.control.revoke(ids, { terminate: flags.terminate === true });
    console.log(
      `revoked ${ids.length} task${ids.length === 1 ? '' : 's'}${flags.terminate ? ' (running ones are aborted)' : ''}`,
    );
  });
}

async function purge(flags: Flags, queue: string | undefined): Promise<void> {
  if (!queue) throw new UsageError('purge needs a queue name');
  await withApp(flags, 'broker', async (app) => {
    const count = await app.broker.purge(queue);
    console.log(`purged ${count} message${count === 1 ? '' : 's'} from ${p(queue)}`);
  });
}

async function dlq(flags: Flags, [verb, queue, ...ids]: string[]): Promise<void> {
  if (!queue || (verb !== 'list' && verb !== 'requeue'))
    throw new UsageError('dlq list <queue> | dlq requeue <queue> [<id>...]');
  await withApp(flags, 'broker', async (app) => {
    if (verb === 'list') {
      const letters = await app.broker.deadLetters(queue, { limit: integer(flags, 'limit', 1) ?? 100 });
      print(flags, letters, () =>
        letters.length === 0
          ? `no dead letters in ${p(queue)}`
          : letters
              .map(
                (l) =>
                  `${p(l.id)}  ${p(l.reason)}  ${p(l.task ?? '?')} ${p(l.taskId ?? '')}  delivered ${p(l.deliveries)}x${l.sha256 ? `  kept: its first ${Buffer.byteLength(l.raw)} of ${l.size} bytes, sha256 ${p(l.sha256)}` : ''}\n    ${p(l.detail)}`,
              )
              .join('\n'),
      );
    } else {
      const count = await app.requeueDeadLetters(queue, ids.length > 0 ? ids : undefined);
      console.log(`requeued ${count} dead letter${count === 1 ? '' : 's'} onto ${p(queue)}`);
    }
  });
}

const HISTORY_USAGE = 'history <queue> [<task-id>] [--task <name>] [--state <state>] [--limit <n>]';

async function history(flags: Flags, [queue, id, ...rest]: string[]): Promise<void> {
  if (!queue || rest.length > 0) throw new UsageError(HISTORY_USAGE);
  await withApp(flags, 'broker', async (app) => {
    if (id !== undefined) {
      const entry = await app.history.entry(queue, id);
      print(flags, entry ?? null, () =>
        entry
          ? describeEntry(entry)
          : `${p(id)}: not in the history of ${p(queue)} (never run here, or no longer kept)`,
      );
      return;
    }
    const page = await app.history.list(queue, {
      ...(flags.task !== undefined ? { task: flags.task } : {}),
      ...(flags.state !== undefined ? { state: flags.state.toUpperCase() as HistoryState } : {}),
      limit: integer(flags, 'limit', 1) ?? 50,
    });
    print(flags, page, () =>
      page.entries.length === 0
        ? `nothing in the history of ${p(queue)}${flags.task || flags.state ? ' that matches' : ''}`
        : page.entries.map(entryLine).join('\n'),
    );
  });
}

/** One entry on one line: when it ended, how, what, and why when it failed. */
function entryLine(e: HistoryEntry): string {
  const took = e.startedAt === undefined ? 'not run' : `${e.finishedAt - e.startedAt} ms`;
  const why = e.error ? `  ${p(e.error.name)}: ${p(e.error.message)}` : '';
  return `${new Date(e.finishedAt).toISOString()}  ${e.state.padEnd(8)} ${p(e.task)} ${p(e.id)}  attempt ${e.attempt}, ${took}${why}`;
}

function describeEntry(e: HistoryEntry): string {
  const call =
    e.args === undefined
      ? [`args, kwargs: (left out: the message was ${e.omitted?.message ?? '?'} bytes)`]
      : [`args: ${p(JSON.stringify(e.args))}`, `kwargs: ${p(JSON.stringify(e.kwargs ?? {}))}`];
  return [
    entryLine(e),
    ...call,
    ...(e.result !== undefined ? [`result: ${p(JSON.stringify(e.result))}`] : []),
    ...(e.omitted?.result !== undefined ? [`result: (left out: ${e.omitted.result ?? 'not JSON'} bytes)`] : []),
    ...(e.error?.stack ? [`stack: ${p(e.error.stack)}`] : []),
    ...(e.deadLetter ? [`dead-lettered: ${p(e.deadLetter)}`] : []),
    `worker: ${p(e.worker)}  queue: ${p(e.queue)}${e.createdAt === undefined ? '' : `  created ${new Date(e.createdAt).toISOString()}`}`,
  ].join('\n');
}

/**
 * A verb of the command: its lines in the usage (what to type, what it does) and what it runs, which
 * resolves to the exit code, or to -1 for the verbs that keep running until a signal (worker, beat).
 */
interface Verb {
  usage: readonly (readonly [synopsis: string, help: string])[];
  run(flags: Flags, positionals: string[]): Promise<number>;
}

const done = (work: Promise<void>): Promise<number> => work.then(() => 0);

const verbs: Record<string, Verb> = {
  worker: {
    usage: [['worker --app <module> [options]', 'run a worker for the tasks <module> registers']],
    run: (flags) => runWorker(flags).then(() => -1),
  },
  beat: {
    usage: [
      ['beat --app <module> [--schedules <file>]', "fire <module>'s periodic tasks (run two or more: one fires)"],
    ],
    run: (flags) => beat(flags).then(() => -1),
  },
  console: {
    usage: [['console [--host <addr>] [--port <port>]', 'the web console: see the fleet, find any task, act on it']],
    run: (flags) => consoleServer(flags).then(() => -1),
  },
  inspect: {
    usage: [['inspect active|stats|workers', 'what live workers are doing']],
    run: (flags, [what]) => done(inspect(flags, what)),
  },
  result: {
    usage: [['result <task-id> [--wait <ms>]', "a task's state and result"]],
    run: (flags, [id]) => done(result(flags, id)),
  },
  revoke: {
    usage: [['revoke <task-id>... [--terminate]', 'stop tasks from running (--terminate: abort running ones)']],
    run: (flags, ids) => done(revoke(flags, ids)),
  },
  purge: {
    usage: [['purge <queue>', 'delete every message waiting in a queue']],
    run: (flags, [queue]) => done(purge(flags, queue)),
  },
  dlq: {
    usage: [
      ['dlq list <queue> [--limit <n>]', 'dead letters, with why each could not run'],
      ['dlq requeue <queue> [<id>...]', 'put dead letters back on their queue (all without ids)'],
    ],
    run: (flags, positionals) => done(dlq(flags, positionals)),
  },
  history: {
    usage: [[HISTORY_USAGE, "a queue's recent calls, newest first, or one call's latest attempt"]],
    run: (flags, positionals) => done(history(flags, positionals)),
  },
};

/** `taskfleet --help`: the verbs' usage lines, then every flag that has a line, with its variable. */
function usageText(): string {
  const synopses = Object.values(verbs)
    .flatMap((verb) => verb.usage)
    .map(([synopsis, help]) => {
      const left = `  taskfleet ${synopsis}`;
      return left.length < 47 ? `${left.padEnd(48)}${help}` : `${left}\n${' '.repeat(48)}${help}`;
    });
  const flags = Object.entries(options as Record<string, FlagSpec>).flatMap(([name, spec]) => {
    if (spec.help === undefined) return [];
    const flag = `--${name}${spec.value ? ` ${spec.value}` : ''}`;
    return [`  ${flag.padEnd(25)} ${(spec.env ?? '').padEnd(27)} ${spec.help}`];
  });
  return [
    'taskfleet — Celery-style background tasks for TypeScript',
    '',
    'Usage:',
    ...synopses,
    '',
    'Options (each also an environment variable):',
    ...flags,
    '',
  ].join('\n');
}

export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (!command || command === '--help' || command === '-h' || command === 'help') {
      console.log(usageText());
      return command ? 0 : 2;
    }
    const { flags, positionals } = flagsFrom(rest);
    if (flags.help) {
      console.log(usageText());
      return 0;
    }
    const verb = Object.hasOwn(verbs, command) ? verbs[command] : undefined;
    if (!verb) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
    return await verb.run(flags, positionals);
  } catch (error) {
    // Messages may quote what the command was given or read (a task id, a URL): printable, and redacted.
    const message = printable(redactText((error as Error).message ?? String(error)));
    if (error instanceof UsageError || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      console.error(`taskfleet: ${message}\nRun \`taskfleet --help\` for usage.`);
      return 2;
    }
    console.error(`taskfleet: ${message}`);
    return 1;
  }
}

if (import.meta.main) {
  const code = await main(process.argv.slice(2));
  if (code >= 0) process.exit(code);
}
