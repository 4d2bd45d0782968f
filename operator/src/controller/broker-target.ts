import { Control } from 'taskfleet/operator';
import { DEFAULT_PREFIX } from '../api/defaults.ts';
import type { TaskQueue } from '../api/types.ts';
import type { SecretReader } from '../brokers/definition.ts';
import { redisUrl } from '../brokers/redis/target.ts';
import { type BrokerTarget, brokerFields, brokerTarget as registryTarget } from '../brokers/registry.ts';
import type { KubeClient } from '../runtime/kube-client.ts';
import { apiPath } from '../runtime/kube-path.ts';
import { BrokerConfigError } from './errors.ts';
import type { Scrubber } from './scrub.ts';

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
  const target = await registryTarget(tq.spec.broker, { queue, secrets: secretReader(ctx, tq) });
  if (!target) {
    throw new BrokerConfigError(
      'UnsupportedBroker',
      `spec.broker names no broker this operator can probe: set ${brokerFields.map((f) => `spec.broker.${f}`).join(' or ')}`,
    );
  }
  return target;
}

/** The Secrets of `tq` as a broker reads them in one reconcile: each Secret read once, however many keys. */
function secretReader(ctx: SecretsContext, tq: TaskQueue): SecretReader {
  const secrets = new Map<string, Promise<Record<string, string> | undefined>>();
  return {
    allowed: ctx.readSecrets,
    key(ref, field, problem) {
      const { name, key } = ref.secretKeyRef;
      let secret = secrets.get(name);
      if (!secret) {
        secret = secretData(ctx, tq, name);
        secrets.set(name, secret);
      }
      return secretKey(ctx, secret, name, key, field, problem);
    },
    notRead: (field, instead) =>
      new BrokerConfigError(
        'SecretsNotRead',
        `${field} names a Secret, and this operator reads no Secrets (--read-secrets=false): it cannot measure this queue, so the replicas follow spec.scaling.fallback. To measure it, ${instead}`,
      ),
  };
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
    const url = await redisUrl(secretReader(ctx, tq), backend.url, backend.urlFrom, 'spec.resultBackend.redis');
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
