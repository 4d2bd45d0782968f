/**
 * Builds an image's plan without Docker: each stage of a Dockerfile gets a directory standing for its
 * root filesystem; COPY copies into it (from the build context, filtered by .dockerignore, or from an
 * earlier stage), RUN runs the command on this machine in the directory standing for WORKDIR, and ENV,
 * WORKDIR, USER, ENTRYPOINT, CMD and HEALTHCHECK make up the image's configuration. Then `run()` starts
 * the entrypoint as `docker run` would: in WORKDIR, with the image's environment (and no other), as the
 * image's USER when this process may switch to it.
 *
 * What this cannot show: the base image itself (Node and npm come from this machine — the test checks
 * that the image pins the same Node), and RUN commands with absolute paths (refused: they would touch
 * this machine's /).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { cp, lstat, mkdir, readdir, readFile, stat } from 'node:fs/promises';
import { dirname, join, posix, relative } from 'node:path';
import { promisify } from 'node:util';
import { dockerignore, envPairs, execForm, healthcheck, type Instruction, parseDockerfile } from './dockerfile.ts';

const run = promisify(execFile);

/** The PATH of the official node images. */
export const BASE_IMAGE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export interface ImageConfig {
  env: Map<string, string>;
  workdir: string;
  /** `uid[:gid]` or a name; unset: root. */
  user: string | undefined;
  entrypoint: string[];
  cmd: string[];
  healthcheck: { options: Record<string, string>; command: string[] } | undefined;
  exposed: string[];
}

export interface Image {
  /** The FROM of the stage. */
  from: string;
  /** The directory standing for the image's /. */
  rootfs: string;
  config: ImageConfig;
}

/** Where the stage's files go, and how long each step took. */
export interface BuildReport {
  steps: { instruction: string; ms: number; cached: boolean }[];
}

export interface BuildOptions {
  /** The build context: a directory, with its .dockerignore if it has one. */
  context: string;
  /** Images a FROM may name that this builder made (a user's image on top of ours). */
  images?: Record<string, Image>;
  /** Extra environment for RUN (the builder's settings, such as npm's offline cache; not the image's). */
  runEnv?: Record<string, string>;
}

function emptyConfig(): ImageConfig {
  return {
    env: new Map([['PATH', BASE_IMAGE_PATH]]),
    workdir: '/',
    user: undefined,
    entrypoint: [],
    cmd: [],
    healthcheck: undefined,
    exposed: [],
  };
}

function cloneConfig(config: ImageConfig): ImageConfig {
  return { ...config, env: new Map(config.env) };
}

/** The path standing for `path` (absolute in the image) under `rootfs`. */
export function inRootfs(rootfs: string, path: string): string {
  return join(rootfs, posix.resolve('/', path));
}

/**
 * Runs Dockerfiles' plans in `dir`, one subdirectory per stage. Stages with the same base and the
 * same instructions from the same context are built once, as Docker's layer cache would.
 */
export class PlanBuilder {
  readonly #dir: string;
  readonly #cache = new Map<string, Image>();
  #count = 0;

  constructor(dir: string) {
    this.#dir = dir;
  }

  /** Builds every stage of `dockerfile`; returns the last one, the image. */
  async build(dockerfile: string, options: BuildOptions, report: BuildReport = { steps: [] }): Promise<Image> {
    const stages = parseDockerfile(await readFile(dockerfile, 'utf8'));
    const ignore = existsSync(join(options.context, '.dockerignore'))
      ? dockerignore(await readFile(join(options.context, '.dockerignore'), 'utf8'))
      : dockerignore('');
    const built = new Map<string, Image>();
    let image: Image | undefined;
    // A stage's key covers the stages before it too: the same text on a different base is not the same.
    let key = createHash('sha256').update(options.context).digest('hex');
    for (const stage of stages) {
      key = createHash('sha256')
        .update(JSON.stringify([key, stage.from, stage.instructions.map((i) => [i.name, i.flags, i.args])]))
        .digest('hex');
      const cached = this.#cache.get(key);
      if (cached) {
        report.steps.push({ instruction: `FROM ${stage.from} (stage ${stage.name ?? 'final'})`, ms: 0, cached: true });
        image = cached;
      } else {
        const rootfs = join(this.#dir, `stage-${++this.#count}-${stage.name ?? 'final'}`);
        await mkdir(rootfs, { recursive: true });
        const base = built.get(stage.from) ?? options.images?.[stage.from];
        if (base) await cp(base.rootfs, rootfs, { recursive: true, verbatimSymlinks: true });
        image = { from: stage.from, rootfs, config: base ? cloneConfig(base.config) : emptyConfig() };
        for (const instruction of stage.instructions) {
          const started = performance.now();
          await this.#apply(image, instruction, { ...options, stages: built, ignore });
          report.steps.push({
            instruction: `${instruction.name} ${instruction.args}`.slice(0, 100),
            ms: Math.round(performance.now() - started),
            cached: false,
          });
        }
        this.#cache.set(key, image);
      }
      if (stage.name) built.set(stage.name, image);
    }
    if (!image) throw new Error(`${dockerfile} has no FROM`);
    return image;
  }

  async #apply(
    image: Image,
    instruction: Instruction,
    context: BuildOptions & { stages: Map<string, Image>; ignore: ReturnType<typeof dockerignore> },
  ): Promise<void> {
    const { config, rootfs } = image;
    const where = `line ${instruction.line}: ${instruction.name} ${instruction.args}`;
    switch (instruction.name) {
      case 'WORKDIR':
        config.workdir = posix.resolve(config.workdir, instruction.args);
        await mkdir(inRootfs(rootfs, config.workdir), { recursive: true });
        return;
      case 'ENV':
        for (const [name, value] of envPairs(instruction, config.env)) config.env.set(name, value);
        return;
      case 'USER':
        config.user = instruction.args;
        return;
      case 'ENTRYPOINT':
        config.entrypoint = execForm(instruction);
        config.cmd = []; // as in Docker: a new ENTRYPOINT resets the inherited CMD
        return;
      case 'CMD':
        config.cmd = execForm(instruction);
        return;
      case 'HEALTHCHECK':
        config.healthcheck = healthcheck(instruction);
        return;
      case 'EXPOSE':
        config.exposed.push(...instruction.args.split(/\s+/));
        return;
      case 'LABEL':
        return;
      case 'COPY':
        await this.#copy(image, instruction, context);
        return;
      case 'RUN': {
        if (/(^|[\s;&|=])\/(?!dev\/null)/.test(instruction.args)) {
          throw new Error(`${where}: RUN with an absolute path cannot be planned here; use paths relative to WORKDIR`);
        }
        const cwd = inRootfs(rootfs, config.workdir);
        const env = { ...hostEnvironment(image), ...context.runEnv };
        try {
          await run('sh', ['-c', instruction.args], { cwd, env, maxBuffer: 64 * 1024 * 1024 });
        } catch (error) {
          const { stdout, stderr } = error as { stdout?: string; stderr?: string };
          throw new Error(`${where} failed:\n${stdout ?? ''}\n${stderr ?? ''}`);
        }
        return;
      }
      default:
        throw new Error(`${where}: ${instruction.name} is not part of what this plan can build`);
    }
  }

  /** COPY as Docker does it: a directory's contents go into the destination; a file into it or as it. */
  async #copy(
    image: Image,
    instruction: Instruction,
    context: BuildOptions & { stages: Map<string, Image>; ignore: ReturnType<typeof dockerignore> },
  ): Promise<void> {
    const words = instruction.args.split(/\s+/);
    const dest = words.pop() ?? '';
    if (words.length === 0) throw new Error(`line ${instruction.line}: COPY needs a source and a destination`);
    const target = inRootfs(image.rootfs, posix.resolve(image.config.workdir, dest));
    const intoDirectory = dest.endsWith('/') || words.length > 1;
    const fromStage = instruction.flags.from;
    const source = fromStage === undefined ? undefined : context.stages.get(fromStage);
    if (fromStage !== undefined && !source) {
      throw new Error(`line ${instruction.line}: COPY --from=${fromStage}: no earlier stage of that name`);
    }
    for (const word of words) {
      // From the context, sources are relative to it and .dockerignore applies; from a stage, absolute.
      const from = source ? inRootfs(source.rootfs, word) : join(context.context, posix.normalize(word));
      const relativePath = source ? undefined : relative(context.context, from);
      if (relativePath !== undefined && (relativePath.startsWith('..') || context.ignore.excluded(relativePath))) {
        throw new Error(
          `line ${instruction.line}: COPY ${word}: not in the build context (or excluded by .dockerignore)`,
        );
      }
      const info = await lstat(from).catch(() => undefined);
      if (!info) throw new Error(`line ${instruction.line}: COPY ${word}: no such file`);
      if (info.isDirectory()) {
        await mkdir(target, { recursive: true });
        await cp(from, target, {
          recursive: true,
          verbatimSymlinks: true,
          filter: (path) => relativePath === undefined || !context.ignore.excluded(relative(context.context, path)),
        });
      } else {
        const file = intoDirectory || (await isDirectory(target)) ? join(target, posix.basename(word)) : target;
        await mkdir(dirname(file), { recursive: true });
        await cp(from, file, { verbatimSymlinks: true });
      }
    }
  }
}

async function isDirectory(path: string): Promise<boolean> {
  return (await stat(path).catch(() => undefined))?.isDirectory() ?? false;
}

/**
 * The image's environment for a process on this machine: its own PATH entries map into the rootfs; the
 * base image's (where Node is) become this machine's Node and system directories — and nothing else
 * of this process's PATH, such as the checkout's node_modules/.bin, which would hide a missing command.
 */
export function hostEnvironment(image: Image): Record<string, string> {
  const env = Object.fromEntries(image.config.env);
  const base = new Set(BASE_IMAGE_PATH.split(':'));
  const mapped = (env.PATH ?? BASE_IMAGE_PATH)
    .split(':')
    .filter((entry) => !base.has(entry))
    .map((entry) => inRootfs(image.rootfs, entry));
  env.PATH = [...mapped, dirname(process.execPath), BASE_IMAGE_PATH].join(':');
  return env;
}

/** Resolves a command's first word through the image's PATH, inside the rootfs first. */
function resolveCommand(image: Image, command: string, env: Record<string, string>): string {
  if (command.includes('/')) return inRootfs(image.rootfs, posix.resolve(image.config.workdir, command));
  for (const dir of (env.PATH ?? '').split(':')) {
    if (dir && existsSync(join(dir, command))) return join(dir, command);
  }
  throw new Error(`${command} is not on the image's PATH (${env.PATH})`);
}

/** A process started from an image, with its output kept. */
export class ImageProcess {
  readonly child: ChildProcess;
  output = '';
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(child: ChildProcess) {
    this.child = child;
    child.stdout?.setEncoding('utf8').on('data', (d: string) => {
      this.output += d;
    });
    child.stderr?.setEncoding('utf8').on('data', (d: string) => {
      this.output += d;
    });
    this.exited = once(child, 'close').then(([code, signal]) => ({
      code: code as number | null,
      signal: signal as NodeJS.Signals | null,
    }));
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  /** The structured log lines written so far. */
  get logs(): Record<string, unknown>[] {
    return this.output
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }
}

export interface RunOptions {
  /** `docker run <image> <args>`: replaces CMD. */
  args?: string[];
  /** `docker run --entrypoint`: the command instead of ENTRYPOINT (and then no CMD). */
  command?: string[];
  /** `docker run -e`. */
  env?: Record<string, string>;
}

/**
 * `docker run`: ENTRYPOINT + CMD (or the given command) in WORKDIR with the image's environment only,
 * as the image's numeric USER when this process runs as root (otherwise as this user). The kernel kills
 * it if this process dies.
 */
export function runImage(image: Image, { args, command, env = {} }: RunOptions = {}): ImageProcess {
  const environment = { ...hostEnvironment(image), ...env };
  const argv = command ?? [...image.config.entrypoint, ...(args ?? image.config.cmd)];
  const [first, ...rest] = argv;
  if (!first) throw new Error('the image has no ENTRYPOINT or CMD');
  const executable = resolveCommand(image, first, environment);
  const user = /^(\d+)(?::(\d+))?$/.exec(image.config.user ?? '');
  const switchUser =
    user && process.getuid?.() === 0 ? [`--reuid=${user[1]}`, `--regid=${user[2] ?? user[1]}`, '--clear-groups'] : [];
  const child = spawn('setpriv', [...switchUser, '--pdeathsig', 'KILL', '--', executable, ...rest], {
    cwd: inRootfs(image.rootfs, image.config.workdir),
    env: environment,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return new ImageProcess(child);
}

/** Every path under `dir` with its type, size, mode and modification time: to prove nothing changed. */
export async function snapshot(dir: string): Promise<Map<string, string>> {
  const entries = new Map<string, string>();
  const walk = async (path: string): Promise<void> => {
    const info = await lstat(path);
    entries.set(relative(dir, path), `${info.mode.toString(8)} ${info.size} ${info.mtimeMs}`);
    if (info.isDirectory()) {
      for (const name of await readdir(path)) await walk(join(path, name));
    }
  };
  await walk(dir);
  return entries;
}
