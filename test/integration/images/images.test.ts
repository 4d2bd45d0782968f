/**
 * The container images, without Docker: each Dockerfile's plan is run for real (plan.ts) — its build
 * stage's `npm ci` and `npm run build` in a copy of the build context, its production install, its
 * runtime tree — and the result is started as `docker run` would start it: the ENTRYPOINT, in WORKDIR,
 * with the image's ENV and nothing else (no `source` export condition: the tree has no sources), as
 * user 1000, from a tree that is read-only and must stay unchanged. The instructions are read from the
 * Dockerfiles themselves, so the images and this test cannot drift apart.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { chmod, copyFile, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { freePort } from '../../stack/process.ts';
import { installCrdsInto } from '../../support/crds.ts';
import { eventually } from '../../support/eventually.ts';
import { kubectl } from '../../support/kube.ts';
import { operatorKubeconfig } from '../../support/operator.ts';
import { useKube, useRedis } from '../../support/stack.ts';
import { parseDockerfile } from './dockerfile.ts';
import { type BuildReport, type Image, type ImageProcess, inRootfs, PlanBuilder, runImage, snapshot } from './plan.ts';

const run = promisify(execFile);
const repo = fileURLToPath(new URL('../../../', import.meta.url));
const workerDockerfile = join(repo, 'images/worker/Dockerfile');
const operatorDockerfile = join(repo, 'images/operator/Dockerfile');
const tutorialDockerfile = join(repo, 'examples/tutorial/Dockerfile');
const workerVersion = (JSON.parse(await readFile(join(repo, 'worker/package.json'), 'utf8')) as { version: string })
  .version;

const dir = await mkdtemp(join(tmpdir(), 'taskfleet-images-'));
await chmod(dir, 0o755); // user 1000 reads the trees below
after(async () => {
  await run('chmod', ['-R', 'u+w', dir]);
  await rm(dir, { recursive: true, force: true });
});

let worker: Image;
let operator: Image;
let tutorial: Image;
const timings: string[] = [];
const pristine = new Map<Image, Map<string, string>>();

before(
  async () => {
    const builder = new PlanBuilder(join(dir, 'stages'));
    // The builder's own settings, not the image's: npm takes packages from this machine's cache first.
    // The builder's npm settings: its cache (and config) in HOME, offline where the cache has it, and the
    // CA this machine trusts for the registry, if it names one.
    const { NODE_EXTRA_CA_CERTS } = process.env;
    const runEnv = {
      HOME: process.env.HOME ?? '/root',
      npm_config_prefer_offline: 'true',
      ...(NODE_EXTRA_CA_CERTS ? { NODE_EXTRA_CA_CERTS } : {}),
    };
    const build = async (name: string, dockerfile: string, options: Parameters<PlanBuilder['build']>[1]) => {
      const report: BuildReport = { steps: [] };
      const started = performance.now();
      const image = await builder.build(dockerfile, { runEnv, ...options }, report);
      const slow = report.steps
        .filter((s) => s.ms >= 500)
        .map((s) => `${s.instruction.split(' ', 3).join(' ')} ${s.ms} ms`);
      timings.push(
        `${name}: ${Math.round(performance.now() - started)} ms (${slow.join('; ') || 'no step over 0.5 s'})`,
      );
      return image;
    };
    worker = await build('worker', workerDockerfile, { context: repo });
    operator = await build('operator', operatorDockerfile, { context: repo });
    tutorial = await build('tutorial', tutorialDockerfile, {
      context: join(repo, 'examples/tutorial'),
      images: { [`ghcr.io/taskfleet/worker:${workerVersion}`]: worker },
    });
    // The build and install stages have served: only the images' trees stay (the build's is the bulk).
    const images = new Set([worker, operator, tutorial].map((image) => image.rootfs));
    for (const stage of await readdir(join(dir, 'stages'))) {
      if (!images.has(join(dir, 'stages', stage))) await rm(join(dir, 'stages', stage), { recursive: true });
    }
    // As a pod's readOnlyRootFilesystem: nothing in the image may be written.
    for (const image of [worker, operator, tutorial]) {
      await run('chmod', ['-R', 'a-w', image.rootfs]);
      pristine.set(image, await snapshot(image.rootfs));
    }
  },
  { timeout: 15 * 60_000 },
);

/** Stops `child` if a test ends with it running. */
function stopAfter(child: ImageProcess): void {
  after(async () => {
    if (child.running) child.child.kill('SIGKILL');
    await child.exited;
  });
}

async function status(url: string): Promise<number | undefined> {
  return fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
    (r) => r.status,
    () => undefined,
  );
}

/** Runs the image's HEALTHCHECK command as Docker would (its environment, its user); returns the exit code. */
async function healthcheck(image: Image, env: Record<string, string>): Promise<number | null> {
  const command = image.config.healthcheck?.command;
  assert.ok(command, 'the image has a HEALTHCHECK');
  const check = runImage(image, { command, env });
  return (await check.exited).code;
}

/** Running as root, the plan switches to the image's USER: check that it did (else the tree's modes prove nothing). */
async function assertUser(child: ImageProcess): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const uid = /^Uid:\s+(\d+)/m.exec(await readFile(`/proc/${child.child.pid}/status`, 'utf8'))?.[1];
  assert.equal(uid, '1000', "the process runs as the image's USER");
}

async function assertUnchanged(image: Image): Promise<void> {
  const now = await snapshot(image.rootfs);
  const before = pristine.get(image);
  const changed = [...new Set([...now.keys(), ...(before?.keys() ?? [])])].filter((p) => now.get(p) !== before?.get(p));
  assert.deepEqual(changed, [], 'nothing in the image was written while it ran');
}

test('the Dockerfiles pin the Node the tests run on, run as 1000:1000, and share one build stage', (t) => {
  t.diagnostic(`plan builds (npm prefers this machine's cache): ${timings.join(' | ')}`);
  const worker = parseDockerfile(readFileSync(workerDockerfile, 'utf8'));
  const operator = parseDockerfile(readFileSync(operatorDockerfile, 'utf8'));
  for (const stages of [worker, operator]) {
    const names = new Set(stages.map((s) => s.name));
    for (const stage of stages) {
      if (names.has(stage.from)) continue;
      assert.equal(
        stage.from,
        `node:${process.versions.node}-bookworm-slim`,
        'every stage starts from the Node these tests run on (the `node` dev dependency): bump both together',
      );
    }
    const user = stages.at(-1)?.instructions.findLast((i) => i.name === 'USER');
    assert.equal(user?.args, '1000:1000', 'a numeric user, so that Kubernetes can check runAsNonRoot');
  }
  const stage = (stages: typeof worker, name: string) =>
    stages.find((s) => s.name === name)?.instructions.map((i) => [i.name, i.flags, i.args]);
  assert.deepEqual(stage(worker, 'build'), stage(operator, 'build'), 'one build serves both images');
});

test('the runtime trees hold dist/, the command and production dependencies only', async () => {
  const lock = JSON.parse(await readFile(join(repo, 'package-lock.json'), 'utf8')) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  for (const [image, workspaces, absent] of [
    [worker, ['worker'], ['@kubernetes/client-node', '@taskfleet/operator']],
    [operator, ['worker', 'operator'], []],
  ] as const) {
    const app = inRootfs(image.rootfs, '/opt/taskfleet');
    const packages = await installedPackages(join(app, 'node_modules'), 'node_modules');
    assert.ok(packages.includes('node_modules/taskfleet'), 'taskfleet is installed');
    for (const name of ['typescript', '@biomejs/biome', 'esbuild', 'node', 'bullmq', ...absent]) {
      assert.ok(!packages.includes(`node_modules/${name}`), `${name} is not in the runtime tree`);
    }
    const dev = packages.filter((p) => {
      const entry = lock.packages[p];
      return entry === undefined || entry.dev === true || entry.devOptional === true;
    });
    assert.deepEqual(dev, [], 'every installed package is a production dependency in the lockfile');
    for (const workspace of workspaces) {
      // The worker package has its command's launcher too (bin/taskfleet.js, which loads dist/).
      const expected = workspace === 'worker' ? ['bin', 'dist', 'package.json'] : ['dist', 'package.json'];
      assert.deepEqual(
        (await readdir(join(app, workspace))).sort(),
        expected,
        `${workspace}/ holds its dist/ (and bin/) and manifest only`,
      );
    }
  }
  const scripts = await readdir(inRootfs(worker.rootfs, '/opt/taskfleet/worker/dist/brokers/redis/scripts'));
  assert.ok(scripts.includes('settle.lua'), 'the Redis scripts are beside the compiled broker');
});

test("the operator image loads @kubernetes/client-node's KubeConfig and informers tree-shaken, without its generated API", async () => {
  const file = inRootfs(operator.rootfs, '/opt/taskfleet/operator/dist/runtime/kubernetes.js');
  const bundle = await readFile(file, 'utf8');
  assert.doesNotMatch(bundle, /from\s*["']@kubernetes\/client-node["']/, 'it does not import the package root');
  assert.doesNotMatch(bundle, /\bCoreV1Api\b/, 'the generated API clients are not in it');
  const { KubeConfig, makeInformer } = (await import(
    pathToFileURL(file).href
  )) as typeof import('@kubernetes/client-node');
  const config = new KubeConfig();
  const kube = await useKube();
  config.loadFromFile(kube.kubeconfig);
  assert.equal(config.getCurrentCluster()?.server, kube.server, 'its KubeConfig reads a kubeconfig');
  assert.equal(typeof makeInformer, 'function');
});

test('the worker image runs the tutorial from a read-only /app as user 1000, and answers /healthz', async (t) => {
  const redis = await useRedis();
  const queue = `images-${randomUUID().slice(0, 8)}`;
  const port = String(await freePort());
  const feed = createServer((_, response) => {
    response.setHeader('content-type', 'application/json').end('{"items":3}');
  });
  await new Promise<void>((resolve) => feed.listen(0, '127.0.0.1', resolve));
  t.after(() => feed.close());
  const feedAddress = feed.address();
  assert.ok(feedAddress && typeof feedAddress === 'object');

  const env = { TASKFLEET_BROKER: redis.url, TASKFLEET_BACKEND: redis.url, TASKFLEET_QUEUE: queue };
  const started = performance.now();
  const running = runImage(tutorial, { env: { ...env, TASKFLEET_METRICS_PORT: port } });
  stopAfter(running);
  const ready = await eventually('the worker to start', () => {
    if (!running.running) throw new Error(`the worker exited:\n${running.output}`);
    return running.logs.find((l) => l.msg === 'worker started');
  });
  t.diagnostic(`worker started in ${Math.round(performance.now() - started)} ms`);
  assert.equal(ready.queue, queue);
  await assertUser(running);

  // The tutorial's calling side, as a user runs it, against the worker in the image.
  const producer = await run(process.execPath, [join(repo, 'examples/tutorial/enqueue.ts')], {
    env: { ...process.env, ...env, FEED_URL: `http://127.0.0.1:${feedAddress.port}/feed.json` },
    timeout: 90_000,
  });
  const lines = producer.stdout.trim().split('\n');
  assert.ok(lines.includes('Email sent to user@example.com'), producer.stdout);
  assert.ok(lines.includes('inventory updated for order 123 (R-123)'), producer.stdout);
  assert.ok(lines.includes('feed: {"items":3}'), producer.stdout);
  assert.match(producer.stdout, /call_partner_api: 2 calls started (5\.\d|6\.\d) s apart/);
  assert.match(producer.stdout, /refused: argument 1 of process_user cannot be sent: a Date is not JSON/);

  assert.equal(await status(`http://127.0.0.1:${port}/healthz`), 200);
  const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  assert.match(
    metrics,
    new RegExp(`taskfleet_tasks_total\\{[^}]*queue="${queue}"[^}]*task="send_welcome_email"[^}]*\\} 1`),
    'the worker in the image ran the calls',
  );
  assert.equal(await healthcheck(tutorial, { TASKFLEET_METRICS_PORT: port }), 0, 'HEALTHCHECK passes');

  running.child.kill('SIGTERM');
  assert.deepEqual(await running.exited, { code: 0, signal: null }, running.output);
  assert.equal(await healthcheck(tutorial, { TASKFLEET_METRICS_PORT: port }), 1, 'HEALTHCHECK fails once it stopped');
  await assertUnchanged(tutorial);
});

test('the worker base image without tasks says what to add', async () => {
  const redis = await useRedis();
  const bare = runImage(worker, { env: { TASKFLEET_BROKER: redis.url, TASKFLEET_METRICS_PORT: '0' } });
  stopAfter(bare);
  const exit = await bare.exited;
  assert.notEqual(exit.code, 0);
  assert.match(bare.output, /could not import --app tasks\.ts/);
  await assertUnchanged(worker);
});

test('the operator image starts on the API server with its RBAC, leads, and answers /healthz and /readyz', async (t) => {
  const namespace = `images-${randomUUID().slice(0, 8)}`;
  // `kubectl wait` right after creating the CRD can fail before the CRD has any condition: retry it.
  const kube = await useKube();
  await eventually('the TaskQueue CRD', () => installCrdsInto(kube).then(() => true));
  // Readable by user 1000, as a mounted Secret would be.
  const kubeconfig = join(dir, `${namespace}.kubeconfig`);
  await copyFile(await operatorKubeconfig(namespace), kubeconfig);
  await chmod(kubeconfig, 0o644);
  const port = String(await freePort());
  const env = {
    KUBECONFIG: kubeconfig,
    POD_NAMESPACE: namespace,
    POD_NAME: 'operator-0',
    TASKFLEET_METRICS_PORT: port,
  };
  const started = performance.now();
  const child = runImage(operator, { env });
  stopAfter(child);
  const up = async (path: string) => {
    if (!child.running) throw new Error(`the operator exited:\n${child.output}`);
    return (await status(`http://127.0.0.1:${port}${path}`)) === 200;
  };
  await eventually('/healthz', () => up('/healthz'));
  await eventually('/readyz', () => up('/readyz'));
  await assertUser(child);
  t.diagnostic(`operator ready in ${Math.round(performance.now() - started)} ms`);
  const holder = await eventually('the Lease', async () => {
    const lease = await kubectl(['get', 'lease', 'taskfleet-operator', '-n', namespace, '-o', 'json']).catch(() => '');
    return lease ? (JSON.parse(lease) as { spec: { holderIdentity?: string } }).spec.holderIdentity : undefined;
  });
  assert.equal(holder, 'operator-0');
  assert.equal(await healthcheck(operator, { TASKFLEET_METRICS_PORT: port }), 0, 'HEALTHCHECK passes');

  child.child.kill('SIGTERM');
  assert.deepEqual(await child.exited, { code: 0, signal: null }, child.output);
  await assertUnchanged(operator);
});

/** Every package directory under a node_modules (scoped ones and nested node_modules too), as lockfile keys. */
async function installedPackages(dir: string, key: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.name.startsWith('.')) continue;
    if (entry.name.startsWith('@')) {
      for (const scoped of await readdir(join(dir, entry.name))) {
        found.push(`${key}/${entry.name}/${scoped}`);
        found.push(
          ...(await installedPackages(
            join(dir, entry.name, scoped, 'node_modules'),
            `${key}/${entry.name}/${scoped}/node_modules`,
          )),
        );
      }
    } else {
      found.push(`${key}/${entry.name}`);
      if (!entry.isSymbolicLink()) {
        found.push(
          ...(await installedPackages(join(dir, entry.name, 'node_modules'), `${key}/${entry.name}/node_modules`)),
        );
      }
    }
  }
  return found;
}
