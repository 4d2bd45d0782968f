/**
 * Schema pieces that the TaskQueue schema (api/schema.ts) and the broker connections (brokers/<broker>/spec.ts)
 * share: strings of a fixed set, names of objects in the TaskQueue's namespace, and Secret key references.
 */
import Type, { type Static, type TUnsafe } from 'typebox';
import { DNS1123_SUBDOMAIN, DNS1123_SUBDOMAIN_MAX_LENGTH, SECRET_KEY, SECRET_KEY_MAX_LENGTH } from './names.ts';

/**
 * A string that is one of `enum`, typed as their union. Not `Type.Union` of literals: that is an anyOf
 * of consts, which a CRD's structural schema refuses. The keys stay in the order given.
 */
export function stringEnum<const Values extends readonly [string, ...string[]]>(options: {
  description: string;
  enum: Values;
  default?: Values[number];
}): TUnsafe<Values[number]> {
  return Type.Unsafe<Values[number]>({ type: 'string', ...options });
}

/**
 * The name of an object in the TaskQueue's namespace, as the API server validates names: a DNS-1123
 * subdomain. The operator puts it into a request path, so nothing else (`/`, `..`) may pass.
 */
export const objectName = (description: string) =>
  Type.String({
    description: `${description} A DNS-1123 subdomain, at most 253 characters.`,
    minLength: 1,
    maxLength: DNS1123_SUBDOMAIN_MAX_LENGTH,
    pattern: DNS1123_SUBDOMAIN,
  });

/** A key of a Secret in the TaskQueue's namespace, described as `description` says what it holds. */
export const secretKeySelector = (description: string) =>
  Type.Object(
    {
      secretKeyRef: Type.Object(
        {
          name: objectName('Name of the Secret, in the TaskQueue’s namespace.'),
          key: Type.String({
            description: 'Key in the Secret: letters, digits, -, _ and ., at most 253 characters.',
            minLength: 1,
            maxLength: SECRET_KEY_MAX_LENGTH,
            pattern: SECRET_KEY,
          }),
        },
        { description: 'The Secret and key.' },
      ),
    },
    { description },
  );

/** A key of a Secret in the TaskQueue's namespace. */
export const SecretKeySelector = secretKeySelector(
  'A key of a Secret in the TaskQueue’s namespace. The operator passes it to workers by reference; its value is never copied into the Deployment.',
);
export type SecretKeySelector = Static<typeof SecretKeySelector>;
