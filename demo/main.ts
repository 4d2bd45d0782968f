/**
 * `make demo`: a TaskQueue's worker fleet scaling 0 → N → 0 on bursts of tasks, watched live.
 *
 * It starts the local stack (or uses the cluster KUBECONFIG points at: see cluster.ts), installs the chart
 * with Helm, applies a TaskQueue whose workers run demo/tasks.ts, sends bursts of tasks the way an app
 * would, and shows the backlog, the rates, desired and ready replicas and the worker pods while the
 * operator scales the fleet out and back to zero. At the end it writes docs/demo.svg. Ctrl-C stops it
 * and leaves nothing running.
 *
 *   TASKFLEET_DEMO_QUICK=1   smaller bursts, shorter windows (the test's mode; about a minute)
 *   TASKFLEET_DEMO_SVG=path  where to write the picture (docs/demo.svg)
 *   TASKFLEET_DEMO_LOCAL=1   the local stack even when KUBECONFIG is set
 *   TASKFLEET_DEMO_IMAGE, TASKFLEET_DEMO_OPERATOR_IMAGE, TASKFLEET_DEMO_REDIS_IMAGE   images, on a real cluster
 */
import { randomBytes } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { relative, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { authFromEnv, ConsoleApi, type ConsoleServer, startConsole, taskQueuesFrom } from 'taskfleet/console';
import {
  type FleetSample,
  installArgs,
  installChart,
  type Json,
  sampleFleet,
  taskQueueManifest,
  taskQueuePath,
  type WorkerPod,
  workerPods,
} from '../test/stack/taskqueue.ts';
import { silentLogger } from '../worker/src/observe/logger.ts';
import { apply, chooseCluster, type DemoCluster, localCluster, realCluster, TASKS_MOUNT } from './cluster.ts';
import { type ChartMark, type ChartPoint, timelineSvg } from './svg.ts';
import { app, notifyUploader, renderThumbnail } from './tasks.ts';
import { backlogOf, clock, count, type DemoEvent, LiveView, type Snapshot } from './view.ts';

const repo = new URL('../', import.meta.url).pathname;
const QUEUE = 'thumbnails';

/** What the demo sends and how the TaskQueue scales. */
interface Plan {
  bursts: number[];
  /** Before the first burst, and between a burst's backlog emptying and the next. */
  leadSeconds: number;
  pauseSeconds: number;
  concurrency: number;
  terminationGracePeriodSeconds: number;
  scaling: Json;
}

const FULL: Plan = {
  bursts: [2000, 4000],
  leadSeconds: 3,
  pauseSeconds: 6,
  concurrency: 4,
  terminationGracePeriodSeconds: 15,
  scaling: {
    pollIntervalSeconds: 1,
    minReplicas: 0,
    maxReplicas: 6,
    targetBacklogPerReplica: 500,
    idleSecondsBeforeZero: 10,
    scaleDown: { stabilizationSeconds: 10 },
  },
};

const QUICK: Plan = {
  bursts: [600, 1200],
  leadSeconds: 1,
  pauseSeconds: 2,
  concurrency: 4,
  terminationGracePeriodSeconds: 10,
  scaling: {
    pollIntervalSeconds: 1,
    minReplicas: 0,
    maxReplicas: 6,
    targetBacklogPerReplica: 150,
    idleSecondsBeforeZero: 5,
    scaleDown: { stabilizationSeconds: 5 },
  },
};

class Interrupted extends Error {
  override name = 'Interrupted';
}

/** One sample of the run, for the view, the picture and the summary. */
interface Point {
  t: number;
  sample: FleetSample;
  pods: WorkerPod[];
}

async function main(): Promise<number> {
  const quick = process.env.TASKFLEET_DEMO_QUICK === '1';
  const plan = quick ? QUICK : FULL;
  const svgPath = resolve(process.env.TASKFLEET_DEMO_SVG || `${repo}docs/demo.svg`);
  const stop = new AbortController();
  let signals = 0;
  /** On a real cluster, what a second Ctrl-C (no cleanup) would leave behind. */
  let leftover: string | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      // Local: the stack and the pods die with this process (pipe, parent-death signal). A cluster keeps
      // what was installed, so say how to remove it.
      process.stderr.write(`\n${signal} again: exiting now${leftover ? `; to clean up: ${leftover}` : ''}\n`);
      process.exit(130);
    }
    stop.abort(new Interrupted(signal));
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, onSignal);

  const started = Date.now();
  const log = (line: string) => console.log(line);
  log(
    `Taskfleet demo: ${plan.bursts.length} bursts of tasks (${plan.bursts.map(count).join(' then ')}) scale a worker fleet 0 → ${plan.scaling.maxReplicas} → 0. Ctrl-C stops it.`,
  );
  let cluster: DemoCluster | undefined;
  let view: LiveView | undefined;
  process.on('exit', () => view?.close());
  let code = 0;
  try {
    const choice = await chooseCluster();
    if ('skip' in choice && choice.skip) log(choice.skip);
    if ('use' in choice) {
      const namespace = `taskfleet-demo-${randomBytes(3).toString('hex')}`;
      leftover = `helm uninstall ${namespace} -n ${namespace}; kubectl delete namespace ${namespace}`;
      cluster = await realCluster(choice.use, choice.describe, namespace, log, stop.signal);
    } else {
      cluster = await interruptible(localCluster(log), stop.signal);
    }
    const run = await runFleet(cluster, plan, stop.signal, log, (v) => {
      view = v;
    });
    const summary = await finish(run, cluster, plan, svgPath);
    view?.close();
    log('');
    for (const line of summary) log(line);
  } catch (error) {
    view?.close();
    if (stop.signal.aborted) {
      log(`\ninterrupted (${(stop.signal.reason as Error).message}): stopping everything the demo started`);
      log(`${shown(svgPath)} is left as it was`);
      code = 130;
    } else {
      log(`\nthe demo failed: ${(error as Error).message}`);
      code = 1;
    }
  } finally {
    await app.close().catch(() => {});
    await cluster?.close().catch((error: Error) => log(`cleaning up: ${error.message}`));
  }
  if (code === 0 && cluster?.kind === 'local') log('the local stack is stopped and its directory removed.');
  log(`(${clock(Date.now() - started)} in all)`);
  return code;
}

interface FleetRun {
  points: Point[];
  events: DemoEvent[];
  scaleEvents: ChartMark[];
  bursts: ChartMark[];
  sent: number;
  /** How long after the first burst the first worker was ready. */
  firstReadyAfterMs?: number;
  /** When (ms since the TaskQueue was applied) the new fleet first stood at 0, the backlog last emptied, the fleet was back at 0. */
  idleFrom: number;
  drainedAt: number;
  zeroAt: number;
}

async function runFleet(
  cluster: DemoCluster,
  plan: Plan,
  signal: AbortSignal,
  log: (line: string) => void,
  onView: (view: LiveView) => void,
): Promise<FleetRun> {
  const { client, namespace, release } = cluster;
  await apply(client, `/api/v1/namespaces/${namespace}`, {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: namespace },
  });

  const release_ = { release, namespace, values: cluster.chartValues };
  log(`installing the chart: helm ${installArgs(release_).join(' ').replace(repo, '')}`);
  await installChart(cluster.helm, release_);

  // The tasks module reaches the worker pods as a ConfigMap (the stock worker image runs it as is).
  await apply(client, `/api/v1/namespaces/${namespace}/configmaps/demo-tasks`, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'demo-tasks', namespace },
    data: { 'tasks.ts': await readFile(new URL('tasks.ts', import.meta.url), 'utf8') },
  });
  const manifest = taskQueueManifest({
    name: QUEUE,
    namespace,
    broker: { redis: { url: cluster.fleetRedisUrl } },
    // Results, heartbeats and revocations on the same Redis: the console shows the workers and can act.
    resultBackend: { redis: { url: cluster.fleetRedisUrl } },
    image: cluster.workerImage,
    app: `${TASKS_MOUNT}/tasks.ts`,
    concurrency: plan.concurrency,
    terminationGracePeriodSeconds: plan.terminationGracePeriodSeconds,
    scaling: plan.scaling,
    volumes: [{ name: 'demo-tasks', configMap: { name: 'demo-tasks' } }],
    volumeMounts: [{ name: 'demo-tasks', mountPath: TASKS_MOUNT, readOnly: true }],
  });
  await apply(client, taskQueuePath(namespace, QUEUE), manifest);
  const t0 = Date.now(); // the clock of the events, the summary and the picture
  const now = () => Date.now() - t0;
  log(`applied TaskQueue ${namespace}/${QUEUE}: ${settingsOf(plan)}`);

  const operatorTimeout = cluster.kind === 'local' ? 120_000 : 300_000;
  log('waiting for the operator (installed by the chart) to take up the TaskQueue…');
  const waitStarted = Date.now();
  for (;;) {
    const sample = await sampleFleet(client, namespace, QUEUE).catch(() => undefined);
    if (sample?.observedGeneration !== undefined) break;
    if (Date.now() - waitStarted > operatorTimeout) {
      throw new Error(
        `the operator did not report on the TaskQueue within ${operatorTimeout / 60_000} minutes. ${await cluster.diagnose()}`,
      );
    }
    await sleep(500, undefined, { signal });
  }
  log(
    `the operator is up: it reported on the TaskQueue ${((Date.now() - waitStarted) / 1000).toFixed(1)} s after it was applied`,
  );

  app.configure({ broker: cluster.producerRedisUrl, backend: cluster.producerRedisUrl, defaultQueue: QUEUE });
  const console_ = await openConsole(cluster);
  log(`the console: ${console_.url} (open it to watch the fleet scale, and to retry the failed notify_uploader calls)`);

  const run: FleetRun = {
    points: [],
    events: [],
    scaleEvents: [],
    bursts: [],
    sent: 0,
    idleFrom: 0,
    drainedAt: 0,
    zeroAt: 0,
  };
  let phase = 'starting';
  const view = new LiveView(process.stdout);
  onView(view);
  const event = (text: string) => {
    run.events.push({ atMs: now(), text });
    refresh();
  };
  const snapshot = (): Snapshot => {
    const last = run.points.at(-1);
    return {
      elapsedMs: now(),
      where: cluster.where,
      queue: `${namespace}/${QUEUE}`,
      settings: settingsOf(plan),
      phase,
      sample: last?.sample,
      pods: last?.pods ?? [],
      history: run.points.map((p) => ({
        backlog: backlogOf(p.sample),
        ready: p.sample.readyReplicas,
        desired: p.sample.desired,
      })),
      maxReplicas: plan.scaling.maxReplicas,
      events: run.events,
    };
  };
  const refresh = () => view.update(snapshot());
  const setPhase = (text: string) => {
    phase = text;
    refresh();
  };

  // The sampler: what the operator and the Deployment say, twice a second, until the run ends.
  let sampling = true;
  let failingSince: number | undefined;
  const sampler = (async () => {
    while (sampling) {
      try {
        const [sample, pods] = await Promise.all([
          sampleFleet(client, namespace, QUEUE),
          workerPods(client, namespace, QUEUE),
        ]);
        failingSince = undefined;
        const previous = run.points.at(-1)?.sample;
        run.points.push({ t: now(), sample, pods });
        if (previous && sample.desired !== previous.desired) {
          const label = `${previous.desired} → ${sample.desired}`;
          run.scaleEvents.push({ t: now(), label });
          event(sample.lastScaleReason?.startsWith('scaled') ? sample.lastScaleReason : `scaled ${label}`);
        }
        if (run.bursts.length > 0 && run.firstReadyAfterMs === undefined && sample.readyReplicas > 0) {
          run.firstReadyAfterMs = now() - (run.bursts[0] as ChartMark).t;
        }
        refresh();
      } catch (error) {
        failingSince ??= now();
        if (now() - failingSince > 15_000) {
          event(`cannot read the TaskQueue: ${(error as Error).message}`);
          failingSince = now();
        }
      }
      await sleep(500);
    }
  })();

  const latest = () => run.points.at(-1);
  const until = async (what: string, predicate: (p: Point) => boolean, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const point = latest();
      if (point && predicate(point)) return point;
      if (Date.now() > deadline) {
        throw new Error(
          `timed out after ${timeoutMs / 1000} s waiting for ${what}. ${await cluster.diagnose().catch(() => '')}`,
        );
      }
      await sleep(250, undefined, { signal });
    }
  };

  try {
    await until('the first status', () => true, 10_000);
    // A new Deployment starts with Kubernetes' default of 1 replica; with nothing to do, the operator takes
    // it to 0 once the queue has been idle long enough. The run proper starts from 0.
    setPhase(
      `the new worker Deployment starts at 1 replica (Kubernetes' default): to 0 after ${plan.scaling.idleSecondsBeforeZero} s idle`,
    );
    const idle = await until('the new fleet to settle at 0 workers', (p) => atZero(p), 120_000);
    run.idleFrom = idle.t;
    setPhase(`0 workers; the first burst in ${plan.leadSeconds} s`);
    await sleep(plan.leadSeconds * 1000, undefined, { signal });
    for (const [i, size] of plan.bursts.entries()) {
      const which = `burst ${i + 1} of ${plan.bursts.length}`;
      setPhase(`${which}: sending ${count(size)} tasks`);
      const sentAt = now();
      await send(size, run.sent, signal);
      run.sent += size;
      run.bursts.push({ t: sentAt, label: `${count(size)} tasks` });
      event(`sent ${which}: ${count(size)} render_thumbnail tasks (100–300 ms each)`);
      if (i === 0) {
        await notifyUploader.applyBulk([[1], [2], [3]]);
        event('sent 3 notify_uploader tasks that fail: retry them from the console');
      }
      setPhase(`${which}: the workers drain ${count(size)} tasks`);
      // The operator's status shows the burst at its next probe; then wait for the backlog to empty.
      await until(`the operator to see ${which}`, (p) => p.t > sentAt && backlogOf(p.sample) > 0, 30_000).catch(
        () => undefined,
      );
      await until(`${which} to be done`, (p) => p.t > sentAt && backlogOf(p.sample) === 0, 300_000);
      run.drainedAt = now();
      event(`${which} done: backlog 0, ${clock(run.drainedAt - sentAt)} after it was sent`);
      if (i < plan.bursts.length - 1) {
        setPhase(`pause: the next burst in ${plan.pauseSeconds} s`);
        await sleep(plan.pauseSeconds * 1000, undefined, { signal });
      }
    }
    setPhase(`idle: the fleet scales back to 0 (after ${plan.scaling.idleSecondsBeforeZero} s without work)`);
    const zero = await until('the fleet to scale back to 0 replicas and 0 pods', (p) => atZero(p), 180_000);
    run.zeroAt = zero.t;
    event(`back to 0: no replicas, no pods, ${clock(run.zeroAt - run.drainedAt)} after the backlog emptied`);
    setPhase('done: 0 workers, nothing waiting');
    await sleep(4000, undefined, { signal }); // a flat tail on the picture
  } finally {
    sampling = false;
    await sampler;
    refresh();
    view.close();
    await console_.close();
  }
  return run;
}

/**
 * The web console on loopback (docs/console.md), over the demo's Redis and cluster: at 127.0.0.1:5555
 * (TASKFLEET_DEMO_CONSOLE_PORT), or a free port when that one is taken.
 */
async function openConsole(cluster: DemoCluster): Promise<ConsoleServer> {
  const api = new ConsoleApi(app, {
    queues: [QUEUE],
    kubernetes: await taskQueuesFrom({ kubeconfig: cluster.helm.kubeconfig, namespace: cluster.namespace }),
  });
  const options = { api, auth: authFromEnv({}), logger: silentLogger, host: '127.0.0.1' };
  const port = Number(process.env.TASKFLEET_DEMO_CONSOLE_PORT || 5555);
  return startConsole({ ...options, port }).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EADDRINUSE') throw error;
    return startConsole({ ...options, port: 0 });
  });
}

const atZero = (p: Point) => p.sample.replicas === 0 && p.sample.readyReplicas === 0 && p.pods.length === 0;

/** Sends `size` tasks in chunks of 500 (one round trip each), as an app would on a busy afternoon. */
async function send(size: number, firstId: number, signal: AbortSignal): Promise<void> {
  for (let i = 0; i < size; i += 500) {
    signal.throwIfAborted();
    const ids = Array.from({ length: Math.min(500, size - i) }, (_, k) => [firstId + i + k] as [number]);
    await renderThumbnail.applyBulk(ids);
  }
}

/** Writes the picture; returns the summary lines. */
async function finish(run: FleetRun, cluster: DemoCluster, plan: Plan, svgPath: string): Promise<string[]> {
  // The picture starts with the fleet at 0, before the first burst (not with the new Deployment's 1 replica).
  const scaleEvents = run.scaleEvents.filter((e) => e.t > run.idleFrom);
  const kept = run.points.filter((p) => p.t >= run.idleFrom);
  const peakReady = Math.max(0, ...kept.map((p) => p.sample.readyReplicas));
  const peakDesired = Math.max(0, ...kept.map((p) => p.sample.desired));
  const points: ChartPoint[] = kept.map((p) => ({
    t: p.t,
    backlog: backlogOf(p.sample),
    ready: p.sample.readyReplicas,
    desired: p.sample.desired,
  }));
  const svg = timelineSvg({
    title: `Taskfleet: ${count(run.sent)} tasks in ${plan.bursts.length} bursts scale a worker fleet 0 → ${peakReady} → 0`,
    subtitle: [
      `Bursts of ${plan.bursts.map(count).join(' and ')} tasks (100–300 ms each, ${plan.concurrency} at a time per worker), on the ${cluster.kind === 'local' ? cluster.where : 'cluster KUBECONFIG pointed at'}.`,
      `TaskQueue scaling: ${settingsOf(plan)}.`,
    ],
    points,
    scaleEvents,
    bursts: run.bursts,
    maxReplicas: plan.scaling.maxReplicas,
  });
  await writeFile(svgPath, svg);
  return [
    `${count(run.sent)} tasks sent in ${plan.bursts.length} bursts, all done (backlog 0).`,
    `The fleet went 0 → ${peakReady} → 0: peak ${peakReady} ready workers (desired up to ${peakDesired});` +
      (run.firstReadyAfterMs === undefined
        ? ''
        : ` the first worker was ready ${(run.firstReadyAfterMs / 1000).toFixed(1)} s after the first burst;`) +
      ` back to 0 replicas ${clock(run.zeroAt - run.drainedAt)} after the backlog emptied.`,
    `Scale events (${scaleEvents.length}): ${scaleEvents.map((e) => `${clock(e.t)} ${e.label}`).join(', ')}.`,
    `Wrote ${shown(svgPath)}: backlog and replicas over time, scale events marked.`,
  ];
}

/** A path relative to the working directory when it is inside it (docs/demo.svg), else in full. */
function shown(path: string): string {
  const inside = relative(process.cwd(), path);
  return inside.startsWith('..') ? path : inside;
}

function settingsOf(plan: Plan): string {
  const s = plan.scaling;
  return [
    `poll ${s.pollIntervalSeconds} s`,
    `${count(s.targetBacklogPerReplica)} tasks per replica`,
    `max ${s.maxReplicas}`,
    `scale-down window ${s.scaleDown.stabilizationSeconds} s`,
    `to 0 after ${s.idleSecondsBeforeZero} s idle`,
  ].join(', ');
}

/** Rejects as soon as `signal` aborts; the work itself goes on (its resources die with the process). */
function interruptible<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener('abort', () => reject(signal.reason), { once: true });
    work.then(resolve, reject);
  });
}

if (import.meta.main) process.exit(await main());
