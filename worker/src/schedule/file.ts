import { readFile } from 'node:fs/promises';
import { parse } from 'yaml';
import { ConfigError } from '../errors.ts';
import {
  addSchedule,
  type ParseScheduleOptions,
  parseSchedule,
  type Schedule,
  type ScheduleDefinition,
} from './schedule.ts';

/**
 * Schedules from a JSON or YAML document (YAML reads JSON too): a list of entries, or an object whose
 * `schedules` is that list; each entry is a definition with its `name`, as in a TaskQueue's
 * `spec.schedules`:
 *
 * ```yaml
 * schedules:
 *   - name: nightly-report
 *     cron: "0 3 * * *"
 *     timeZone: Europe/Paris
 *     task: report
 *     args: [daily]
 *   - { name: heartbeat, every: 30000, task: ping, missed: skip }
 * ```
 *
 * Errors name the file and the entry.
 */
export function parseScheduleDocument(
  text: string,
  source: string,
  options: Omit<ParseScheduleOptions, 'where'> = {},
): Schedule[] {
  let document: unknown;
  try {
    document = parse(text);
  } catch (error) {
    throw new ConfigError(`${source} is not valid YAML or JSON: ${(error as Error).message}`);
  }
  const list =
    typeof document === 'object' && document !== null && !Array.isArray(document) && 'schedules' in document
      ? (document as { schedules: unknown }).schedules
      : document;
  if (!Array.isArray(list)) {
    throw new ConfigError(`${source}: expected a list of schedules, or an object with a "schedules" list`);
  }
  const schedules = new Map<string, Schedule>();
  list.forEach((entry, i) => {
    const name = typeof entry === 'object' && entry !== null ? (entry as { name?: unknown }).name : undefined;
    const where = `${source}: schedules[${i}]${typeof name === 'string' ? ` (${name})` : ''}`;
    if (typeof name !== 'string') throw new ConfigError(`${where}: every schedule needs a name`);
    addSchedule(schedules, parseSchedule(name, entry as ScheduleDefinition, { ...options, where }), where);
  });
  return [...schedules.values()];
}

/** Reads `parseScheduleDocument` from a file. */
export async function loadScheduleFile(
  path: string,
  options: Omit<ParseScheduleOptions, 'where'> = {},
): Promise<Schedule[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ConfigError(`cannot read the schedules file ${path}: ${(error as Error).message}`);
  }
  return parseScheduleDocument(text, path, options);
}
