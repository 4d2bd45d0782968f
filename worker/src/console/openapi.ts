/**
 * The console's API as OpenAPI 3.1, served at /api/openapi.json. The shapes are those of contract.ts
 * (and HistoryEntry, ResultRecord, DeadLetter), described here by their fields' names and kinds.
 */
const json = (schema: object) => ({ content: { 'application/json': { schema } } });
const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
const ok = (description: string, schema: object) => ({ description, ...json(schema) });
const errors = {
  '400': ok('A bad parameter or body: the message says which and how to fix it', ref('Error')),
  '401': ok('Not signed in', ref('Error')),
  '404': ok('Nothing there', ref('Error')),
};
const actionErrors = { ...errors, '403': ok('Read-only role, or a missing/wrong CSRF token', ref('Error')) };
const queue = { name: 'queue', in: 'path', required: true, schema: { type: 'string' } };
const action = (summary: string, body: object, response: object) => ({
  post: {
    summary,
    parameters: [
      {
        name: 'x-taskfleet-csrf',
        in: 'header',
        required: true,
        schema: { type: 'string' },
        description: 'From GET /api/session',
      },
    ],
    requestBody: { required: true, ...json(body) },
    responses: { '200': ok('Done', response), ...actionErrors },
  },
});
const obj = (properties: Record<string, object>, required: string[] = []) => ({ type: 'object', properties, required });
const str = { type: 'string' };
const int = { type: 'integer' };
const num = { type: 'number' };
const ids = { type: 'array', items: str, maxItems: 1000 };
const filter = obj({ task: str, state: ref('State'), worker: str, since: int, until: int });

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'Taskfleet console API',
    version: '1',
    description:
      'What the console page uses, for scripts too (docs/console.md). Sign in as the page does: a bearer token, basic auth, or an auth proxy. Every POST needs the x-taskfleet-csrf header from GET /api/session and a JSON body; the read-only role gets 403.',
  },
  security: [{ bearer: [] }, { basic: [] }],
  paths: {
    '/api/session': {
      get: {
        summary: 'Who you are, your role and CSRF token',
        responses: { '200': ok('The session', ref('Session')), ...errors },
      },
    },
    '/api/overview': {
      get: {
        summary: 'Workers, queues and TaskQueues now',
        responses: { '200': ok('The overview', ref('Overview')), ...errors },
      },
    },
    '/api/events': {
      get: {
        summary:
          'Server-Sent Events every refreshMs: `overview` (an Overview) and `point` (a SeriesPoint), or `problem` when the broker does not answer',
        responses: {
          '200': { description: 'An event stream', content: { 'text/event-stream': { schema: str } } },
          ...errors,
        },
      },
    },
    '/api/queues/{queue}/tasks': {
      get: {
        summary: "A page of the queue's task history, newest first",
        parameters: [
          queue,
          ...['task', 'worker', 'cursor'].map((name) => ({ name, in: 'query', schema: str })),
          { name: 'state', in: 'query', schema: ref('State') },
          ...['since', 'until'].map((name) => ({ name, in: 'query', schema: int, description: 'epoch ms' })),
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 50 } },
        ],
        responses: { '200': ok('A page', ref('TaskPage')), ...errors, '409': ok('No history kept', ref('Error')) },
      },
    },
    '/api/queues/{queue}/latency': {
      get: {
        summary: 'Duration and wait percentiles over the newest 500 entries',
        parameters: [queue],
        responses: { '200': ok('Percentiles (ms)', ref('Latency')), ...errors },
      },
    },
    '/api/queues/{queue}/series': {
      get: {
        summary:
          "The queue's graph points since the console started (one per refreshMs, at most capacity), oldest first",
        parameters: [queue],
        responses: { '200': ok('Points', ref('Series')), ...errors },
      },
    },
    '/api/queues/{queue}/dead-letters': {
      get: {
        summary: "The queue's dead letters, oldest first",
        parameters: [
          queue,
          { name: 'limit', in: 'query', schema: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
        ],
        responses: { '200': ok('Dead letters', { type: 'array', items: ref('DeadLetter') }), ...errors },
      },
    },
    '/api/tasks/{id}': {
      get: {
        summary: 'A call: its latest attempt, its result record, and its workflow',
        parameters: [
          { name: 'id', in: 'path', required: true, schema: str },
          { name: 'queue', in: 'query', schema: str },
        ],
        responses: { '200': ok('The call', ref('Task')), ...errors },
      },
    },
    '/api/tasks/revoke': action(
      'Revoke calls (terminate: abort running ones)',
      obj({ ids, terminate: { type: 'boolean' } }, ['ids']),
      obj({ revoked: int }),
    ),
    '/api/queues/{queue}/tasks/retry': action(
      'New calls with the arguments of FAILURE or REVOKED ones (by ids, or all matching a filter, up to 1,000)',
      obj({ ids, filter }),
      obj({
        retried: { type: 'array', items: obj({ from: str, id: str }) },
        skipped: { type: 'array', items: obj({ id: str, why: str }) },
      }),
    ),
    '/api/queues/{queue}/dead-letters/requeue': action(
      'Requeue dead letters (all without ids)',
      obj({ ids }),
      obj({ requeued: int }),
    ),
    '/api/queues/{queue}/dead-letters/delete': action(
      'Delete dead letters (all without ids)',
      obj({ ids }),
      obj({ deleted: int }),
    ),
    '/api/queues/{queue}/purge': action(
      "Delete every waiting message; confirm is the queue's name",
      obj({ confirm: str }, ['confirm']),
      obj({ purged: int }),
    ),
  },
  components: {
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer' }, basic: { type: 'http', scheme: 'basic' } },
    schemas: {
      Error: obj({ error: obj({ code: str, message: str }, ['code', 'message']) }, ['error']),
      State: { type: 'string', enum: ['SUCCESS', 'FAILURE', 'RETRY', 'REVOKED'] },
      Session: obj({
        user: str,
        role: { type: 'string', enum: ['admin', 'readonly'] },
        csrf: str,
        broker: str,
        history: { type: 'boolean' },
        refreshMs: int,
      }),
      Overview: obj({
        at: int,
        workers: {
          type: 'array',
          items: obj({
            id: str,
            hostname: str,
            queue: str,
            concurrency: int,
            running: int,
            reserved: int,
            processed: { type: 'object', additionalProperties: int },
            startedAt: int,
            lastHeartbeat: int,
            version: str,
          }),
        },
        queues: {
          type: 'array',
          items: obj({
            name: str,
            ready: int,
            delayed: int,
            inFlight: int,
            deadLetters: int,
            oldestAgeSeconds: num,
            added: int,
            delivered: int,
            historySize: int,
            arrivalsPerSecond: num,
            completionsPerSecond: num,
          }),
        },
        kubernetes: obj({
          taskQueues: {
            type: 'array',
            items: obj({
              namespace: str,
              name: str,
              queue: str,
              desiredReplicas: int,
              readyReplicas: int,
              replicas: int,
            }),
          },
          error: str,
        }),
      }),
      Entry: obj({
        id: str,
        task: str,
        state: ref('State'),
        queue: str,
        worker: str,
        attempt: int,
        createdAt: int,
        startedAt: int,
        finishedAt: int,
        retryAt: int,
        args: { type: 'array' },
        kwargs: { type: 'object' },
        result: {},
        error: obj({ name: str, message: str, stack: str }),
        deadLetter: str,
        parentId: str,
        rootId: str,
        groupId: str,
        retryOf: str,
        omitted: { type: 'object' },
      }),
      TaskPage: obj({ entries: { type: 'array', items: ref('Entry') }, next: str, scanned: int }),
      Task: obj({
        id: str,
        entry: ref('Entry'),
        result: { type: 'object' },
        workflow: { type: 'array', items: ref('Entry') },
      }),
      Latency: obj({
        sampled: int,
        duration: { oneOf: [ref('Percentiles'), { type: 'null' }] },
        wait: { oneOf: [ref('Percentiles'), { type: 'null' }] },
      }),
      Percentiles: obj({ p50: num, p90: num, p99: num }, ['p50', 'p90', 'p99']),
      QueuePoint: obj(
        {
          ready: int,
          delayed: int,
          inFlight: int,
          deadLetters: int,
          oldestAgeSeconds: num,
          arrivalsPerSecond: num,
          completionsPerSecond: num,
          outcomesPerSecond: { type: 'object', additionalProperties: num },
          duration: ref('Percentiles'),
          wait: ref('Percentiles'),
          desiredReplicas: int,
          readyReplicas: int,
        },
        ['ready', 'delayed', 'inFlight', 'outcomesPerSecond'],
      ),
      SeriesPoint: obj({ at: int, queues: { type: 'object', additionalProperties: ref('QueuePoint') } }, [
        'at',
        'queues',
      ]),
      Series: obj(
        {
          queue: str,
          intervalMs: int,
          capacity: int,
          points: { type: 'array', items: { allOf: [ref('QueuePoint'), obj({ at: int }, ['at'])] } },
        },
        ['queue', 'intervalMs', 'capacity', 'points'],
      ),
      DeadLetter: obj({
        id: str,
        reason: str,
        detail: str,
        task: str,
        taskId: str,
        deliveries: int,
        at: int,
        size: int,
        sha256: str,
        raw: str,
      }),
    },
  },
} as const;
