/**
 * Just enough of the Dockerfile and .dockerignore formats to run our images' plans without Docker:
 * stages, their instructions with flags, exec-form JSON, ENV pairs with `$VAR` substitution, and
 * .dockerignore's patterns with `**` and `!` exceptions. Anything outside that subset is an error that
 * says so, rather than a plan quietly different from what Docker would build.
 */
import { posix } from 'node:path';

export interface Instruction {
  /** Upper case: FROM, COPY, RUN, … */
  name: string;
  /** Leading `--name=value` (or bare `--name`) options, such as COPY's --from. */
  flags: Record<string, string>;
  /** The rest of the instruction, continuation lines joined. */
  args: string;
  /** 1-based line where the instruction starts, for messages. */
  line: number;
}

export interface Stage {
  /** `AS <name>`, if any. */
  name: string | undefined;
  /** The FROM image (or an earlier stage's name). */
  from: string;
  instructions: Instruction[];
}

const flagPattern = /^--([a-z-]+)(?:=(\S*))?\s+/;

/** The stages of a Dockerfile, in order. */
export function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let logical = lines[i] ?? '';
    if (/^\s*(#|$)/.test(logical)) continue;
    // A trailing backslash continues the instruction; comment lines inside it are dropped, as Docker does.
    while (/\\\s*$/.test(logical) && i + 1 < lines.length) {
      logical = logical.replace(/\\\s*$/, ' ');
      i++;
      const next = lines[i] ?? '';
      if (!/^\s*#/.test(next)) logical += next.trim();
    }
    const match = /^\s*([A-Za-z]+)\s*(.*)$/.exec(logical);
    if (!match) throw new Error(`Dockerfile line ${start}: cannot read ${JSON.stringify(logical)}`);
    const name = (match[1] ?? '').toUpperCase();
    let args = (match[2] ?? '').trim();
    const flags: Record<string, string> = {};
    for (let flag = flagPattern.exec(`${args} `); flag; flag = flagPattern.exec(`${args} `)) {
      flags[flag[1] ?? ''] = flag[2] ?? '';
      args = args.slice(flag[0].length - 1).trimStart();
    }
    args = args.trim();
    if (name === 'FROM') {
      const from = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      if (!from) throw new Error(`Dockerfile line ${start}: FROM ${args}: expected FROM <image> [AS <name>]`);
      stages.push({ from: from[1] ?? '', name: from[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) throw new Error(`Dockerfile line ${start}: ${name} before the first FROM`);
    stage.instructions.push({ name, flags, args, line: start });
  }
  return stages;
}

/** An exec-form argument list (`["a", "b"]`); the shell form is refused, as its signals differ. */
export function execForm(instruction: Instruction, args = instruction.args): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch {
    parsed = undefined;
  }
  if (!Array.isArray(parsed) || !parsed.every((a) => typeof a === 'string')) {
    throw new Error(
      `Dockerfile line ${instruction.line}: ${instruction.name} ${args}: use the exec form (a JSON list of strings)`,
    );
  }
  return parsed;
}

/** `$NAME` and `${NAME}` replaced from `env` (unknown names become empty, as in Docker). */
export function substitute(value: string, env: ReadonlyMap<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, braced, bare) => {
    return env.get(braced ?? bare) ?? '';
  });
}

/** ENV's `KEY=value` pairs (values may be double-quoted), substituted from the environment so far. */
export function envPairs(instruction: Instruction, env: ReadonlyMap<string, string>): [string, string][] {
  const pairs: [string, string][] = [];
  const pattern = /([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)\s*/y;
  const text = instruction.args;
  pattern.lastIndex = 0;
  while (pattern.lastIndex < text.length) {
    const match = pattern.exec(text);
    if (!match) {
      throw new Error(`Dockerfile line ${instruction.line}: ENV ${text}: expected KEY=value pairs`);
    }
    const raw = match[2] ?? '';
    const value = raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw;
    pairs.push([match[1] ?? '', substitute(value, env)]);
  }
  return pairs;
}

/** HEALTHCHECK's options and its command (`HEALTHCHECK [--interval=…] CMD [...]`). */
export function healthcheck(instruction: Instruction): { options: Record<string, string>; command: string[] } {
  const match = /^CMD\s+(.*)$/s.exec(instruction.args);
  if (!match)
    throw new Error(`Dockerfile line ${instruction.line}: HEALTHCHECK ${instruction.args}: expected CMD [...]`);
  return { options: instruction.flags, command: execForm(instruction, match[1]) };
}

/** One .dockerignore pattern as a regular expression over slash-separated relative paths. */
function patternToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i] ?? '';
    if (c === '*' && pattern[i + 1] === '*') {
      // `**/` matches any number of directories (none too); a final `**` matches everything below.
      if (pattern[i + 2] === '/') {
        source += '(?:.*/)?';
        i += 2;
      } else {
        source += '.*';
        i += 1;
      }
    } else if (c === '*') source += '[^/]*';
    else if (c === '?') source += '[^/]';
    else source += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${source}$`);
}

/**
 * The .dockerignore rules: `excluded(path)` as Docker decides it — the last pattern that matches the
 * path or one of its parent directories wins, and a `!` pattern includes again.
 */
export function dockerignore(text: string): { excluded: (path: string) => boolean } {
  const rules = text
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const include = line.startsWith('!');
      const pattern = posix.normalize((include ? line.slice(1) : line).trim()).replace(/^\/+|\/+$/g, '');
      return { include, regexp: patternToRegExp(pattern) };
    });
  return {
    excluded(path: string): boolean {
      const parts = path.split('/');
      const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
      let excluded = false;
      for (const rule of rules) {
        if (candidates.some((candidate) => rule.regexp.test(candidate))) excluded = !rule.include;
      }
      return excluded;
    },
  };
}
