import { readFile, writeFile } from 'node:fs/promises';

const DOC = new URL('../../docs/benchmarks.md', import.meta.url);
const INTRO = `# Benchmarks

Performance is measured here, by \`make bench\`, and never asserted with timers in tests. Every
figure stands beside an anchor measured in the same run, on the same Redis: the ratios are what to
read and compare across machines; the absolute numbers describe only the machine and the moment.
`;

/**
 * Replaces one benchmark's section of docs/benchmarks.md — the text between its begin and end markers —
 * or appends it; every other section, and any hand-written text outside the markers, is kept.
 */
export async function writeDocSection(
  name: 'worker' | 'operator' | 'kafka',
  makeTarget: string,
  section: string,
): Promise<string> {
  const begin = `<!-- ${name} benchmark: begin (written by \`${makeTarget}\`; edits here are overwritten) -->`;
  const end = `<!-- ${name} benchmark: end -->`;
  const current = await readFile(DOC, 'utf8').catch(() => INTRO);
  const block = `${begin}\n${section.trim()}\n${end}`;
  const start = current.indexOf(begin);
  const stop = current.indexOf(end);
  const next =
    start >= 0 && stop > start
      ? `${current.slice(0, start)}${block}${current.slice(stop + end.length)}`
      : `${current.trimEnd()}\n\n${block}\n`;
  await writeFile(DOC, next);
  return DOC.pathname;
}
