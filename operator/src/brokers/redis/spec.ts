/**
 * A Redis connection in a TaskQueue: spec.broker.redis, and spec.resultBackend.redis. The schema is the
 * CRD's (with its CEL rules, so the API server refuses a URL that carries a password) and the type the
 * operator reads; api/schema.ts puts it into the TaskQueue.
 */
import Type, { type Static } from 'typebox';
import { DEFAULT_PREFIX } from '../../api/defaults.ts';
import { SecretKeySelector } from '../../api/fragments.ts';

/** Query parameters that carry credentials, as the redaction of 'taskfleet' masks them. */
const CREDENTIAL_PARAMS = 'password|pass|passwd|pwd|secret|token|access_token|auth|apikey|api_key|key|sasl_password';

/** `what` on Redis ("The broker", "The result backend"): a URL, inline or from a Secret, and a key prefix. */
export const redisConnection = (what: string) =>
  Type.Object(
    {
      url: Type.Optional(
        Type.String({
          description:
            'redis:// or rediss:// URL, without credentials: it is in the TaskQueue, which anyone with view on the namespace reads. Put a URL with a password in a Secret and use urlFrom.',
          pattern: '^rediss?://',
          maxLength: 2048,
        }),
      ),
      urlFrom: Type.Optional(SecretKeySelector),
      prefix: Type.Optional(
        Type.String({
          description: 'Prefix of the Redis keys the workers use.',
          default: DEFAULT_PREFIX,
          pattern: '^[A-Za-z0-9_.:-]{1,64}$',
        }),
      ),
    },
    {
      description: `${what} on Redis. Set exactly one of url and urlFrom.`,
      'x-kubernetes-validations': [
        { rule: 'has(self.url) != has(self.urlFrom)', message: 'set exactly one of url and urlFrom' },
        // On the connection, not on url itself: the API server's error then shows "object", not the URL —
        // which would put the password into kubectl's output, CI logs and audit logs.
        {
          // A user name alone is refused too: a lone userinfo (redis://s3cret@host) is a password to Redis.
          rule: "!has(self.url) || !self.url.matches('^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*@')",
          fieldPath: '.url',
          message:
            'the URL carries credentials (user information before @): put the URL in a Secret and set urlFrom instead of url',
        },
        {
          rule: `!has(self.url) || !self.url.matches('(?i)[?&](${CREDENTIAL_PARAMS})=')`,
          fieldPath: '.url',
          message:
            'the URL carries credentials (a password= or token= query parameter): put the URL in a Secret and set urlFrom instead of url',
        },
      ],
    },
  );

export type RedisConnection = Static<ReturnType<typeof redisConnection>>;
