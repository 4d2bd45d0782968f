/**
 * Checks of the values the operator reads from Secrets, before any client sees them. A client's own
 * error quotes what it was given (ioredis, kafkajs, `new URL`), so a value is checked here first, and the
 * message says what is wrong without quoting it: "Secret db key url (spec.broker.redis.urlFrom) is not
 * a redis:// or rediss:// URL".
 */

/** What is wrong with a value that should be a Redis URL, in words, or undefined. */
export function redisUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return 'is not a redis:// or rediss:// URL';
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') return 'is not a redis:// or rediss:// URL';
  if (!url.hostname) return 'is a redis:// URL without a host';
  return undefined;
}

/** What is wrong with a value that should hold PEM blocks of `label` (CERTIFICATE, PRIVATE KEY), or undefined. */
export function pemProblem(value: string, label: 'CERTIFICATE' | 'PRIVATE KEY'): string | undefined {
  // Any key type: "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY".
  const begin = new RegExp(`-----BEGIN ([A-Z ]+ )?${label}-----`);
  const end = new RegExp(`-----END ([A-Z ]+ )?${label}-----`);
  if (!begin.test(value) || !end.test(value)) {
    return `does not hold a PEM ${label === 'CERTIFICATE' ? 'certificate' : 'private key'} (-----BEGIN ${label}-----)`;
  }
  return undefined;
}

/** What is wrong with a SASL user name or password, or undefined. */
export function credentialProblem(value: string): string | undefined {
  // Only emptiness: the workers send what the Secret holds as it is, and the probe must measure as they connect.
  return value.length === 0 ? 'is empty' : undefined;
}
