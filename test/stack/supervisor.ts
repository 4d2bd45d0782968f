/**
 * The process that owns a running stack.
 *
 *   node test/stack/supervisor.ts [--json] [components...]
 *
 * It starts the components, reports their connection details, then runs until its standard input
 * closes or it receives SIGTERM, SIGINT or SIGHUP, and tears everything down. Whoever spawns it
 * with a pipe on standard input owns the stack: when that owner exits for any reason — a failed
 * test, Ctrl-C, a crash, SIGKILL — the pipe closes and the stack goes with it.
 *
 * With --json (for programs) it prints exactly one line on stdout: {"ready": StackInfo} or
 * {"error": "..."}. Without it (for people) it prints what runs where and how to reach it.
 */
import { parseComponents, type RunningStack, type StackInfo, startStack } from './stack.ts';

export type SupervisorMessage = { ready: StackInfo } | { error: string };

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const components = parseComponents(args.filter((a) => a !== '--json').join(','));

  let stack: RunningStack | undefined;
  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    if (!json) console.error(`\nstack: ${why}, stopping...`);
    await stack?.stop();
    process.exit(0);
  };
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => void shutdown(signal));
  process.stdin.on('end', () => void shutdown('owner gone'));
  process.stdin.on('error', () => void shutdown('owner gone'));
  process.stdin.resume();

  try {
    stack = await startStack(components);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (json) console.log(JSON.stringify({ error: message } satisfies SupervisorMessage));
    else console.error(`stack: ${message}`);
    process.exit(1);
  }
  if (stopping) return; // asked to stop while starting: shutdown() finishes the job
  if (json) console.log(JSON.stringify({ ready: stack.info } satisfies SupervisorMessage));
  else console.log(describe(stack.info));
}

/** What a person needs to use the stack from another shell. */
export function describe(info: StackInfo): string {
  const lines = [`Taskfleet test stack (Node ${info.node}), files in ${info.dir}`];
  if (info.redis) lines.push(`  redis ${info.redis.version}    ${info.redis.url}`);
  if (info.kafka) lines.push(`  kafka ${info.kafka.version}     bootstrap ${info.kafka.brokers.join(',')}`);
  if (info.kube) {
    lines.push(`  kubernetes ${info.kube.version} (etcd ${info.kube.etcdVersion})  ${info.kube.server}`);
    lines.push(`    export KUBECONFIG=${info.kube.kubeconfig}`);
    lines.push(`    alias kubectl=${info.kube.kubectl}`);
  }
  if (info.helm) lines.push(`  helm ${info.helm.version}     ${info.helm.bin}`);
  lines.push('Ctrl-C stops everything and removes the directory.');
  return lines.join('\n');
}

if (import.meta.main) await main();
