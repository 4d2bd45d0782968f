import { Control, TaskfleetError } from 'taskfleet';
import { DEFAULT_PREFIX } from '../api/defaults.ts';
import type { SecretKeySelector, TaskQueue } from '../api/types.ts';
import type { BrokerTarget, KafkaTarget } from '../probes/probe.ts';
import type { KubeClient } from '../runtime/kube-client.ts';
import { apiPath } from '../runtime/kube-path.ts';
import type { Scrubber } from './scrub.ts';
import { credentialProblem, pemProblem, redisUrlProblem } from './secret-values.ts';

/** A problem only the user can fix (a missing Secret, an unsupported broker): a condition, not a retry loop. */
export class BrokerConfigError extends TaskfleetError {
  override name = 'BrokerConfigError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('BROKER_CONFIG', message);
    this.reason = reason;
  }
}

/** What resolving a TaskQueue's broker settings takes. */
export interface SecretsContext {
  /** Secrets are read with a GET each (they are not watched). */
  kube: Pick<KubeClient, 'find'>;
  /** `--read-secrets`: false, and a setting that needs a Secret is SecretsNotRead, with nothing read. */
  readSecrets: boolean;
  /** The reconcile's scrubber: every value read from a Secret is recorded in it. */
  scrub: Pick<Scrubber, 'secret'>;
}

/** Where the queue's broker is, with what the spec takes from Secrets read. */
export async function brokerTarget(ctx: SecretsContext, tq: TaskQueue): Promise<BrokerTarget> {
  const queue = tq.spec.queue ?? tq.metadata.name;
  const { redis, kafka } = tq.spec.broker;
  if (kafka) return kafkaTarget(ctx, tq, kafka, queue);
  if (!redis) {
    throw new BrokerConfigError(
      'UnsupportedBroker',
      'spec.broker names no broker this operator can probe: set spec.broker.redis or spec.broker.kafka',
    );
  }
  const url = await secretOrValue(ctx, tq, redis.url, redis.urlFrom, 'spec.broker.redis');
  return { kind: 'redis', url, prefix: redis.prefix ?? DEFAULT_PREFIX, queue };
}

/**
 * The result backends' {@link Control}s (heartbeats, report requests): one connection per distinct
 * backend URL and prefix, kept until {@link close}.
 */
export class ResultBackends {
  readonly #controls = new Map<string, Control>();

  /** The Control of `tq`'s result backend, its URL read as the broker's is; undefined without a backend. */
  async control(ctx: SecretsContext, tq: TaskQueue): Promise<Control | undefined> {
    const backend = tq.spec.resultBackend?.redis;
    if (!backend) return undefined;
    const url = await secretOrValue(ctx, tq, backend.url, backend.urlFrom, 'spec.resultBackend.redis');
    const prefix = backend.prefix ?? DEFAULT_PREFIX;
    const key = `${url}\u0000${prefix}`;
    let control = this.#controls.get(key);
    if (!control) {
      control = Control.connect(url, prefix);
      this.#controls.set(key, control);
    }
    return control;
  }

  async close(): Promise<void> {
    await Promise.all([...this.#controls.values()].map((c) => c.close()));
  }
}

/** With `--read-secrets=false`: the error of a probe that would need the Secret `field` names. */
function secretsNotRead(field: string, instead: string): BrokerConfigError {
  return new BrokerConfigError(
    'SecretsNotRead',
    `${field} names a Secret, and this operator reads no Secrets (--read-secrets=false): it cannot measure this queue, so the replicas follow spec.scaling.fallback. To measure it, ${instead}`,
  );
}

async function kafkaTarget(
  ctx: SecretsContext,
  tq: TaskQueue,
  kafka: NonNullable<TaskQueue['spec']['broker']['kafka']>,
  queue: string,
): Promise<KafkaTarget> {
  const field = 'spec.broker.kafka';
  const prefix = kafka.prefix ?? DEFAULT_PREFIX;
  if (!/^[A-Za-z0-9._-]+$/.test(`${prefix}.${queue}`)) {
    throw new BrokerConfigError(
      'InvalidSpec',
      `queue ${queue} (prefix ${prefix}) cannot name Kafka topics: use letters, digits, ., _ and - only`,
    );
  }
  const target: KafkaTarget = { kind: 'kafka', brokers: kafka.brokers, prefix, queue };
  if (!ctx.readSecrets) {
    if (kafka.sasl) {
      throw secretsNotRead(
        `${field}.sasl.secretRef`,
        'the operator needs a listener it may use without credentials: run it with --read-secrets=true, or rely on fallback replicas',
      );
    }
    const file = (['caFrom', 'certFrom', 'keyFrom'] as const).find((f) => kafka.tls?.[f]);
    if (file) {
      throw secretsNotRead(
        `${field}.tls.${file}`,
        'use a listener whose certificate the system CAs trust, without a client certificate (tls.enabled only)',
      );
    }
  }
  // Each Secret is read once per probe, however many keys are taken from it.
  const secrets = new Map<string, Promise<Record<string, string> | undefined>>();
  const read = (ref: SecretKeySelector, where: string, problem: (value: string) => string | undefined) => {
    const { name, key } = ref.secretKeyRef;
    let secret = secrets.get(name);
    if (!secret) {
      secret = secretData(ctx, tq, name);
      secrets.set(name, secret);
    }
    return secretKey(ctx, secret, name, key, where, problem);
  };
  const { tls, sasl } = kafka;
  if (tls?.enabled) {
    const [ca, cert, key] = await Promise.all([
      tls.caFrom && read(tls.caFrom, `${field}.tls.caFrom`, (v) => pemProblem(v, 'CERTIFICATE')),
      tls.certFrom && read(tls.certFrom, `${field}.tls.certFrom`, (v) => pemProblem(v, 'CERTIFICATE')),
      tls.keyFrom && read(tls.keyFrom, `${field}.tls.keyFrom`, (v) => pemProblem(v, 'PRIVATE KEY')),
    ]);
    target.tls =
      ca !== undefined || cert !== undefined
        ? {
            ...(ca !== undefined ? { ca } : {}),
            ...(cert !== undefined ? { cert } : {}),
            ...(key !== undefined ? { key } : {}),
          }
        : true;
  }
  if (sasl) {
    const ref = (key: string) => ({ secretKeyRef: { name: sasl.secretRef.name, key } });
    const [username, password] = await Promise.all([
      read(ref('username'), `${field}.sasl.secretRef`, credentialProblem),
      read(ref('password'), `${field}.sasl.secretRef`, credentialProblem),
    ]);
    target.sasl = { mechanism: sasl.mechanism, username, password };
  }
  return target;
}

async function secretOrValue(
  ctx: SecretsContext,
  tq: TaskQueue,
  value: string | undefined,
  from: { secretKeyRef: { name: string; key: string } } | undefined,
  field: string,
): Promise<string> {
  if (value !== undefined) {
    // Inline, so no secret; the current CRD checks the scheme, an older one may not have.
    if (redisUrlProblem(value)) {
      throw new BrokerConfigError('InvalidSpec', `${field}.url is not a redis:// or rediss:// URL`);
    }
    return value;
  }
  if (!from) throw new BrokerConfigError('InvalidSpec', `${field} has neither url nor urlFrom`);
  if (!ctx.readSecrets) {
    throw secretsNotRead(
      `${field}.urlFrom`,
      `set ${field}.url to a URL without credentials instead (a Redis the operator's and the workers' pods may use without a password)`,
    );
  }
  const { name, key } = from.secretKeyRef;
  return secretKey(ctx, secretData(ctx, tq, name), name, key, `${field}.urlFrom`, redisUrlProblem);
}

/** A Secret's data (base64 values), or undefined when it does not exist. */
async function secretData(
  ctx: SecretsContext,
  tq: TaskQueue,
  name: string,
): Promise<Record<string, string> | undefined> {
  // Never reached with --read-secrets=false: every caller refuses first, and this is the last guard.
  if (!ctx.readSecrets) throw new BrokerConfigError('SecretsNotRead', 'this operator reads no Secrets');
  const secret = await ctx.kube.find<{ data?: Record<string, string> }>(
    apiPath({ group: '', version: 'v1', resource: 'secrets', namespace: tq.metadata.namespace as string, name }),
  );
  return secret ? (secret.data ?? {}) : undefined;
}

/**
 * One key of a Secret, decoded and recorded in the reconcile's scrubber. A missing Secret or key is a
 * SecretNotFound condition naming `field`; a value `problem` finds wrong is InvalidSecretValue, in words
 * that describe it and never quote it.
 */
async function secretKey(
  ctx: SecretsContext,
  data: Promise<Record<string, string> | undefined>,
  name: string,
  key: string,
  field: string,
  problem: (value: string) => string | undefined,
): Promise<string> {
  const values = await data;
  if (!values) throw new BrokerConfigError('SecretNotFound', `Secret ${name} (${field}) does not exist`);
  const encoded = values[key];
  if (encoded === undefined)
    throw new BrokerConfigError('SecretNotFound', `Secret ${name} has no key ${key} (${field})`);
  const value = ctx.scrub.secret(Buffer.from(encoded, 'base64').toString('utf8'));
  const wrong = problem(value);
  if (wrong) throw new BrokerConfigError('InvalidSecretValue', `Secret ${name} key ${key} (${field}) ${wrong}`);
  return value;
}
