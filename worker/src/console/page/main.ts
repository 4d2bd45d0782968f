/**
 * The console's page (docs/console.md): hash-routed views over the JSON API. Everything shown comes
 * from producers and workers (names, arguments, errors): it is set as text, never parsed as HTML.
 */
import { Graphs, type Point } from './graphs.ts';

interface Session {
  user: string;
  role: 'admin' | 'readonly';
  csrf: string;
  broker: string;
  history: boolean;
}
type Json = Record<string, unknown>;
type Entry = {
  id: string;
  task: string;
  state: string;
  queue: string;
  worker: string;
  attempt: number;
  createdAt?: number;
  startedAt?: number;
  finishedAt: number;
  args?: unknown[];
  kwargs?: Json;
  result?: unknown;
  error?: { name: string; message: string; stack?: string };
  parentId?: string;
  rootId: string;
  groupId?: string;
  retryOf?: string;
};

const view = document.getElementById('view') as HTMLElement;
let session: Session | undefined;
let token = sessionStorage.getItem('taskfleet-token') ?? undefined;
let queues: string[] = [];
let stream: AbortController | undefined;
/** The overview's parts while it is shown: its graphs stay, its tables are redrawn on every update. */
let shown:
  | { graphs?: Graphs; pending: Point[]; picker: HTMLSelectElement; box: HTMLElement; tables: HTMLElement }
  | undefined;
let graphQueue: string | undefined;

function el<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string> = {},
  ...children: (Node | string | undefined)[]
): HTMLElementTagNameMap[K] {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  for (const child of children) if (child !== undefined) node.append(child);
  return node;
}

function toast(text: string): void {
  const box = document.getElementById('toast') as HTMLElement;
  box.textContent = text;
  box.className = 'shown';
  setTimeout(() => {
    box.className = '';
  }, 5000);
}

const headers = (): Record<string, string> => (token ? { authorization: `Bearer ${token}` } : {});

async function api<T>(path: string, body?: unknown): Promise<T> {
  const res = await fetch(path, {
    method: body === undefined ? 'GET' : 'POST',
    headers: {
      ...headers(),
      ...(body === undefined ? {} : { 'content-type': 'application/json', 'x-taskfleet-csrf': session?.csrf ?? '' }),
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const data = (await res.json().catch(() => ({}))) as T & { error?: { message: string } };
  if (!res.ok) throw new ApiFailure(res.status, data.error?.message ?? `${res.status}`);
  return data;
}

/** An answer of the API that is not 2xx: its status beside the message it gave. */
class ApiFailure extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

const admin = () => session?.role === 'admin';

function button(label: string, testid: string, act: () => Promise<string>): HTMLButtonElement | undefined {
  if (!admin()) return undefined;
  const b = el('button', { 'data-testid': testid }, label);
  b.onclick = () => act().then(toast, (error: Error) => toast(error.message));
  return b;
}

const rate = (perSecond: unknown) => (typeof perSecond === 'number' ? `${perSecond.toFixed(1)}/s` : '—');
const when = (ms?: number) => (ms === undefined ? '' : new Date(ms).toLocaleTimeString());
const q = encodeURIComponent;

function table(head: string[], rows: HTMLTableRowElement[]): HTMLTableElement {
  return el('table', {}, el('thead', {}, el('tr', {}, ...head.map((h) => el('th', {}, h)))), el('tbody', {}, ...rows));
}

function cell(text: unknown, testid?: string): HTMLTableCellElement {
  return el('td', testid ? { 'data-testid': testid } : {}, String(text ?? ''));
}

// --- Overview, live from /api/events ---------------------------------------------------------------
function renderOverview(o: {
  workers: Json[];
  queues: Json[];
  kubernetes?: { taskQueues: Json[]; error?: string };
}): void {
  queues = o.queues.map((x) => String(x.name));
  const workers = o.workers.map((w) =>
    el(
      'tr',
      { 'data-testid': 'worker-row', 'data-worker-id': String(w.id) },
      cell(w.id),
      cell(w.queue),
      cell(w.concurrency),
      cell(w.running, 'running'),
      cell(
        Object.entries((w.processed as Json) ?? {})
          .map(([k, v]) => `${k} ${v}`)
          .join(', '),
        'processed',
      ),
      cell(`${Math.round((Date.now() - Number(w.lastHeartbeat)) / 1000)} s ago`),
    ),
  );
  const rows = o.queues.map((x) =>
    el(
      'tr',
      { 'data-testid': 'queue-row', 'data-queue': String(x.name) },
      cell(x.name),
      cell(x.ready, 'ready'),
      cell(x.delayed),
      cell(x.inFlight),
      cell(x.deadLetters ?? '—'),
      cell(x.oldestAgeSeconds === undefined ? '—' : `${Number(x.oldestAgeSeconds).toFixed(1)} s`),
      cell(rate(x.arrivalsPerSecond), 'arrivals'),
      cell(rate(x.completionsPerSecond), 'completions'),
      el(
        'td',
        {},
        button('Purge…', 'purge', async () => {
          const name = String(x.name);
          const count = Number(x.ready) + Number(x.delayed);
          const typed = prompt(`Purge ${count} waiting messages from ${name}? Type the queue's name to confirm.`);
          if (typed === null) return 'purge cancelled';
          const out = await api<{ purged: number }>(`/api/queues/${q(name)}/purge`, { confirm: typed });
          return `purged ${out.purged} from ${name}`;
        }) ?? '',
      ),
    ),
  );
  const parts: Node[] = [
    el('h2', {}, 'Workers'),
    workers.length
      ? table(['Worker', 'Queue', 'Concurrency', 'Running', 'Processed', 'Heartbeat'], workers)
      : el('p', {}, 'No live workers.'),
    el('h2', {}, 'Queues'),
    table(
      ['Queue', 'Ready', 'Delayed', 'In flight', 'Dead letters', 'Oldest waiting', 'Arrivals', 'Completions', ''],
      rows,
    ),
  ];
  if (o.kubernetes) {
    parts.push(el('h2', {}, 'TaskQueues'));
    if (o.kubernetes.error) parts.push(el('p', {}, `Kubernetes: ${o.kubernetes.error}`));
    parts.push(
      table(
        ['TaskQueue', 'Queue', 'Desired', 'Ready', 'Conditions', 'Last scale'],
        o.kubernetes.taskQueues.map((t) =>
          el(
            'tr',
            { 'data-testid': 'taskqueue-row', 'data-name': String(t.name) },
            cell(`${t.namespace}/${t.name}`),
            cell(t.queue),
            cell(t.desiredReplicas, 'desired'),
            cell(t.readyReplicas, 'ready-replicas'),
            cell(
              ((t.conditions as Json[]) ?? [])
                .map((c) => `${c.type}=${c.status}${c.reason ? ` (${c.reason})` : ''}`)
                .join(', '),
            ),
            cell(((t.lastScale as Json[]) ?? [])[0]?.reason ?? ''),
          ),
        ),
      ),
    );
  }
  overviewLayout().tables.replaceChildren(...parts);
}

/** The overview's layout (graphs of one queue, then the tables), built when the overview is entered. */
function overviewLayout(): NonNullable<typeof shown> {
  if (shown && view.contains(shown.tables)) {
    syncPicker(shown.picker);
    return shown;
  }
  shown?.graphs?.destroy();
  const picker = el('select', { 'data-testid': 'graph-queue', 'aria-label': 'queue graphed' });
  const box = el('div', { class: 'graphs' });
  const tables = el('div');
  view.replaceChildren(el('h2', {}, 'Graphs of ', picker), box, tables);
  shown = { pending: [], picker, box, tables };
  syncPicker(picker);
  picker.onchange = () => {
    graphQueue = picker.value;
    void drawGraphs();
  };
  void drawGraphs();
  return shown;
}

function syncPicker(picker: HTMLSelectElement): void {
  const names = queues.length ? queues : [graphQueue ?? ''];
  if ([...picker.options].map((o) => o.value).join() !== names.join()) {
    picker.replaceChildren(...names.map((name) => el('option', { value: name }, name)));
  }
  graphQueue = graphQueue && names.includes(graphQueue) ? graphQueue : names[0];
  picker.value = graphQueue ?? '';
}

/** Loads the graphed queue's points since the console started; `point` events extend them. */
async function drawGraphs(): Promise<void> {
  const layout = shown;
  const queue = graphQueue;
  if (!layout || !queue) return;
  layout.graphs?.destroy();
  layout.graphs = undefined;
  layout.pending = [];
  const series = await api<{ points: Point[]; capacity: number }>(`/api/queues/${q(queue)}/series`).catch(
    (error: Error) => {
      layout.box.replaceChildren(el('p', {}, `Graphs: ${error.message}`));
      return undefined;
    },
  );
  if (!series || shown !== layout || graphQueue !== queue) return;
  // Points pushed while the series was read, and not in it, follow it.
  const last = series.points.at(-1)?.at ?? 0;
  const points = [...series.points, ...layout.pending.filter((p) => p.at > last)];
  layout.box.replaceChildren();
  layout.graphs = new Graphs(layout.box, queue, points, series.capacity);
}

function onPoint(point: { at: number; queues: Record<string, Omit<Point, 'at'>> }): void {
  if (!shown || !view.contains(shown.box) || !graphQueue) return;
  const p = point.queues[graphQueue];
  if (!p) return;
  if (shown.graphs) shown.graphs.add({ at: point.at, ...p });
  else shown.pending.push({ at: point.at, ...p });
}

async function overview(): Promise<void> {
  stream = new AbortController();
  const res = await fetch('/api/events', { headers: headers(), signal: stream.signal });
  const reader = (res.body as ReadableStream<BufferSource>).pipeThrough(new TextDecoderStream()).getReader();
  let text = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
    let end = text.indexOf('\n\n');
    while (end >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      const data = block.split('\n').find((l) => l.startsWith('data: '));
      const onOverview = location.hash.replace(/\?.*/, '') in { '': 1, '#/': 1 };
      if (data && onOverview && block.startsWith('event: overview')) renderOverview(JSON.parse(data.slice(6)));
      if (data && onOverview && block.startsWith('event: point')) onPoint(JSON.parse(data.slice(6)));
      end = text.indexOf('\n\n');
    }
  }
}

// --- Tasks ---------------------------------------------------------------------------------------
async function tasks(params: URLSearchParams): Promise<void> {
  const queue = params.get('queue') ?? queues[0] ?? '';
  const form = el('form');
  const field = (name: string, label: string) =>
    el('label', {}, `${label} `, el('input', { name, value: params.get(name) ?? '', size: '14' }));
  const state = el(
    'select',
    { name: 'state' },
    ...['', 'SUCCESS', 'FAILURE', 'RETRY', 'REVOKED'].map((s) => el('option', { value: s }, s || 'any state')),
  );
  state.value = params.get('state') ?? '';
  form.append(
    field('queue', 'Queue'),
    field('id', 'Task id'),
    field('task', 'Task'),
    state,
    field('worker', 'Worker'),
    el('button', {}, 'Search'),
  );
  (form.elements.namedItem('queue') as HTMLInputElement).value = queue;
  form.onsubmit = (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const id = String(data.get('id') ?? '');
    if (id) {
      location.hash = `#/task/${q(id)}?queue=${q(String(data.get('queue')))}`;
      return;
    }
    data.delete('id');
    location.hash = `#/tasks?${new URLSearchParams(data as unknown as Record<string, string>)}`;
  };
  const query = new URLSearchParams();
  for (const k of ['task', 'state', 'worker', 'cursor']) if (params.get(k)) query.set(k, params.get(k) as string);
  const page = await api<{ entries: Entry[]; next?: string }>(`/api/queues/${q(queue)}/tasks?${query}`);
  const selected = new Set<string>();
  const rows = page.entries.map((e) => {
    const box = el('input', { type: 'checkbox' });
    box.onchange = () => (box.checked ? selected.add(e.id) : selected.delete(e.id));
    return el(
      'tr',
      { 'data-testid': 'task-row', 'data-task-id': e.id, 'data-state': e.state },
      admin() ? el('td', {}, box) : cell(''),
      el('td', {}, el('a', { href: `#/task/${q(e.id)}?queue=${q(queue)}` }, e.id)),
      cell(e.task),
      el('td', { class: e.state }, e.state),
      cell(e.attempt),
      cell(e.worker),
      cell(when(e.finishedAt)),
      cell(e.error ? `${e.error.name}: ${e.error.message}` : ''),
    );
  });
  const retry = (body: unknown) => async () => {
    const out = await api<{ retried: unknown[]; skipped: { why: string }[] }>(
      `/api/queues/${q(queue)}/tasks/retry`,
      body,
    );
    return `retried ${out.retried.length}${out.skipped.length ? `, skipped ${out.skipped.length}: ${out.skipped[0]?.why}` : ''}`;
  };
  const filter: Json = {};
  for (const k of ['task', 'state', 'worker']) if (params.get(k)) filter[k] = params.get(k);
  view.replaceChildren(
    form,
    el(
      'p',
      {},
      button('Retry selected', 'retry-selected', () => retry({ ids: [...selected] })()) ?? '',
      button('Retry all matching', 'retry-matching', retry({ filter })) ?? '',
      button('Revoke selected', 'revoke', async () => {
        const out = await api<{ revoked: number }>('/api/tasks/revoke', { ids: [...selected] });
        return `revoked ${out.revoked}`;
      }) ?? '',
    ),
    table(['', 'Id', 'Task', 'State', 'Attempt', 'Worker', 'Finished', 'Error'], rows),
    page.next
      ? el(
          'a',
          { href: `#/tasks?${new URLSearchParams({ ...Object.fromEntries(params), cursor: page.next })}` },
          'Next page',
        )
      : '',
  );
}

// --- One task -------------------------------------------------------------------------------------
async function task(id: string, params: URLSearchParams): Promise<void> {
  const queue = params.get('queue');
  // An id neither the history nor the result backend has (404) may still be waiting to run, or never
  // sent: it shows as PENDING, as Celery's AsyncResult does, and a revoke of it still applies.
  const t = await api<{ entry?: Entry; result?: Json; workflow: Entry[] }>(
    `/api/tasks/${q(id)}${queue ? `?queue=${q(queue)}` : ''}`,
  ).catch((error: unknown) => {
    if (error instanceof ApiFailure && error.status === 404)
      return { entry: undefined, result: undefined, workflow: [] };
    throw error;
  });
  const e = t.entry;
  const state = e?.state ?? String(t.result?.state ?? 'PENDING');
  const pre = (value: unknown) => el('pre', {}, JSON.stringify(value, null, 2) ?? '');
  const revoke = (terminate: boolean) => async () => {
    await api('/api/tasks/revoke', { ids: [id], terminate });
    return terminate ? 'terminated' : 'revoked';
  };
  const parts: (Node | string)[] = [
    el(
      'h2',
      {},
      `${e?.task ?? t.result?.task ?? ''} `,
      el('span', { class: state, 'data-testid': 'task-state' }, state),
    ),
    el('p', {}, `id ${id} · queue ${e?.queue ?? ''} · worker ${e?.worker ?? ''} · attempt ${e?.attempt ?? ''}`),
    el(
      'p',
      {},
      `created ${when(e?.createdAt)} · started ${when(e?.startedAt)} · finished ${when(e?.finishedAt)}${e?.startedAt ? ` · took ${e.finishedAt - e.startedAt} ms` : ''}`,
    ),
  ];
  if (!e && !t.result) {
    parts.push(el('p', {}, 'Not in the history or the result backend yet: waiting to run, running, or never sent.'));
  }
  if (e?.retryOf) parts.push(el('p', {}, 'retry of ', el('a', { href: `#/task/${q(e.retryOf)}` }, e.retryOf)));
  if (e?.parentId) parts.push(el('p', {}, 'parent ', el('a', { href: `#/task/${q(e.parentId)}` }, e.parentId)));
  const actions = el('p');
  if (e && (state === 'FAILURE' || state === 'REVOKED')) {
    actions.append(
      button('Retry', 'retry', async () => {
        const out = await api<{ retried: { id: string }[]; skipped: { why: string }[] }>(
          `/api/queues/${q(e.queue)}/tasks/retry`,
          { ids: [id] },
        );
        const made = out.retried[0];
        if (made) location.hash = `#/task/${q(made.id)}?queue=${q(e.queue)}`;
        return made ? `retried as ${made.id}` : (out.skipped[0]?.why ?? 'not retried');
      }) ?? '',
    );
  }
  actions.append(button('Revoke', 'revoke', revoke(false)) ?? '', button('Terminate', 'terminate', revoke(true)) ?? '');
  parts.push(actions);
  parts.push(el('h3', {}, 'Arguments'), pre({ args: e?.args, kwargs: e?.kwargs }));
  if (e?.error || t.result?.error) {
    const error = (e?.error ?? t.result?.error) as Entry['error'];
    parts.push(el('h3', {}, 'Error'), el('pre', {}, `${error?.name}: ${error?.message}\n${error?.stack ?? ''}`));
  } else parts.push(el('h3', {}, 'Result'), pre(e?.result ?? t.result?.result));
  parts.push(el('h3', {}, 'Workflow'), workflow(t.workflow));
  view.replaceChildren(...parts);
}

/**
 * The workflow's calls in columns by depth along parent links, a chord's callback one column after its
 * members (they carry its id as their group); members of one group boxed together.
 */
function workflow(entries: Entry[]): HTMLElement {
  const byId = new Map(entries.map((e) => [e.id, e]));
  const members = new Map<string, Entry[]>();
  for (const e of entries) {
    if (!e.groupId) continue;
    const list = members.get(e.groupId) ?? [];
    list.push(e);
    members.set(e.groupId, list);
  }
  const depth = (e: Entry, seen = 0): number => {
    if (seen > 50) return 0;
    if (e.parentId && byId.has(e.parentId)) return 1 + depth(byId.get(e.parentId) as Entry, seen + 1);
    const header = members.get(e.id);
    return header ? 1 + Math.max(...header.map((m) => depth(m, seen + 1))) : 0;
  };
  const columns = new Map<number, Entry[]>();
  for (const e of entries) columns.set(depth(e), [...(columns.get(depth(e)) ?? []), e]);
  const box = el('div');
  for (const d of [...columns.keys()].sort((a, b) => a - b)) {
    const column = el('div', { class: 'column' });
    const groups = new Map<string, Entry[]>();
    for (const e of columns.get(d) ?? []) groups.set(e.groupId ?? e.id, [...(groups.get(e.groupId ?? e.id) ?? []), e]);
    for (const [key, members] of groups) {
      const holder =
        members.length > 1 || members[0]?.groupId ? el('div', { class: 'group', title: `group ${key}` }) : column;
      for (const m of members) {
        holder.append(
          el(
            'a',
            {
              class: `node ${m.state}`,
              href: `#/task/${q(m.id)}?queue=${q(m.queue)}`,
              'data-testid': 'workflow-node',
              'data-task-id': m.id,
              'data-state': m.state,
            },
            `${m.task} ${m.state}`,
          ),
        );
      }
      if (holder !== column) column.append(holder);
    }
    box.append(column);
  }
  return box;
}

// --- Dead letters ---------------------------------------------------------------------------------
async function deadLetters(params: URLSearchParams): Promise<void> {
  const queue = params.get('queue') ?? queues[0] ?? '';
  const picker = el('select', {}, ...queues.map((name) => el('option', { value: name }, name)));
  picker.value = queue;
  picker.onchange = () => {
    location.hash = `#/dead-letters?queue=${q(picker.value)}`;
  };
  const letters = await api<Json[]>(`/api/queues/${q(queue)}/dead-letters?limit=100`);
  const act = (verb: 'requeue' | 'delete', ids?: string[]) => async () => {
    if (!ids && !confirm(`${verb} every dead letter of ${queue}?`)) return 'cancelled';
    const out = await api<Json>(`/api/queues/${q(queue)}/dead-letters/${verb}`, ids ? { ids } : {});
    void route();
    return `${verb === 'requeue' ? 'requeued' : 'deleted'} ${out.requeued ?? out.deleted}`;
  };
  const rows = letters.map((l) =>
    el(
      'tr',
      { 'data-testid': 'dead-letter-row', 'data-id': String(l.id) },
      cell(l.id),
      cell(l.reason),
      cell(l.task),
      cell(l.taskId),
      cell(l.deliveries),
      cell(l.detail),
      el(
        'td',
        {},
        button('Requeue', 'requeue', act('requeue', [String(l.id)])) ?? '',
        button('Delete', 'delete', act('delete', [String(l.id)])) ?? '',
      ),
    ),
  );
  view.replaceChildren(
    el(
      'p',
      {},
      'Queue ',
      picker,
      ' ',
      button('Requeue all', 'requeue-all', act('requeue')) ?? '',
      button('Delete all', 'delete-all', act('delete')) ?? '',
    ),
    rows.length
      ? table(['Id', 'Reason', 'Task', 'Task id', 'Delivered', 'Detail', ''], rows)
      : el('p', {}, 'No dead letters.'),
  );
}

// --- Routing and sign-in --------------------------------------------------------------------------
async function route(): Promise<void> {
  const [path = '', search = ''] = location.hash.slice(1).split('?');
  const params = new URLSearchParams(search);
  try {
    if (path.startsWith('/task/')) await task(decodeURIComponent(path.slice(6)), params);
    else if (path === '/tasks') await tasks(params);
    else if (path === '/dead-letters') await deadLetters(params);
    else renderOverview(await api('/api/overview'));
  } catch (error) {
    view.replaceChildren(el('p', {}, (error as Error).message));
  }
}

function signIn(message: string): void {
  const input = el('input', { type: 'password', size: '40', 'aria-label': 'token' });
  const form = el('form', {}, el('p', {}, message), input, el('button', {}, 'Sign in'));
  form.onsubmit = (event) => {
    event.preventDefault();
    token = input.value;
    sessionStorage.setItem('taskfleet-token', token);
    void start();
  };
  view.replaceChildren(form);
}

async function start(): Promise<void> {
  try {
    session = await api<Session>('/api/session');
  } catch (error) {
    signIn(`Sign in with a console token (${(error as Error).message}).`);
    return;
  }
  (document.getElementById('who') as HTMLElement).textContent = `${session.user} (${session.role}) · ${session.broker}`;
  window.onhashchange = () => void route();
  await route();
  const live = () =>
    overview()
      .catch(() => undefined)
      .finally(() => setTimeout(live, 2000));
  stream?.abort();
  void live();
}

void start();
