/** Query parameters that carry credentials in connection URLs (Redis' `?password=`, tokens, keys). */
const SECRET_PARAMS = /^(password|pass|passwd|pwd|secret|token|access_token|auth|apikey|api_key|key|sasl_password)$/i;
const MASK = '***';

/** An authority listing several hosts (`kafka://h1:9092,h2:9092`), which the WHATWG URL parser refuses. */
const HOST_LIST = /^[a-z][a-z0-9+.-]*:\/\/[^\s/?#@]+(,[^\s/?#@]+)+(\/|\?|$)/i;

/**
 * A broker or backend URL, of any broker, as it may be logged: without the password of its userinfo and
 * without the value of any query parameter that carries a credential (`?password=`, `?token=`). A URL
 * with a list of hosts is masked as text is (see redactText); anything else that is not a URL is not
 * shown at all, since it might be a secret pasted in the wrong place.
 */
export function redact(url: string): string {
  if (HOST_LIST.test(url)) return redactText(url);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(unparseable URL)';
  }
  if (parsed.password) parsed.password = MASK;
  for (const name of [...parsed.searchParams.keys()]) {
    if (SECRET_PARAMS.test(name)) parsed.searchParams.set(name, MASK);
  }
  // URLSearchParams encodes the mask; show it as written.
  return parsed.toString().replaceAll(encodeURIComponent(MASK), MASK);
}

/** `scheme://user:password@` → `scheme://user:***@`; `scheme://token@` → `scheme://***@`. */
const USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)([^\s/@?#]*)@/gi;
/**
 * `password=…` in a query string or a `key=value` text, up to the next separator; after any character
 * that cannot be part of a longer name (`(password=…)` in an error message too), never inside one.
 */
const PARAM =
  /([^A-Za-z0-9_]|^)(password|pass|passwd|pwd|secret|token|access_token|auth|apikey|api_key|sasl_password)=([^&\s#;,'")]*)/gi;

/**
 * Free text (an error message, a log line, a condition) as it may be shown: credentials in any URL it
 * contains are masked, and so is every occurrence of each of `secrets` (values the caller read from a
 * Secret, say), whole and line by line for multi-line values such as PEM keys. This is the last line of
 * defence in front of logs, conditions, Events and metrics; messages should not quote such values in
 * the first place.
 */
export function redactText(text: string, secrets: Iterable<string> = []): string {
  let out = text;
  for (const secret of secrets) {
    for (const value of secretForms(secret)) out = out.split(value).join(MASK);
  }
  out = out.replace(USERINFO, (_match, scheme: string, userinfo: string) => {
    const colon = userinfo.indexOf(':');
    // A bare user name is no secret, but a lone token in the userinfo (redis://s3cret@host) is.
    return colon < 0 ? `${scheme}${MASK}@` : `${scheme}${userinfo.slice(0, colon)}:${MASK}@`;
  });
  return out.replace(PARAM, (_match, before: string, name: string) => `${before}${name}=${MASK}`);
}

/**
 * The forms of a secret value worth masking: the value, its URL encoding, and each long enough line of a
 * multi-line value. Values shorter than 4 characters are not masked (they would mask half of every
 * message); nothing may quote them anyway.
 */
function secretForms(secret: string): string[] {
  const forms = new Set<string>();
  const add = (value: string) => {
    if (value.length >= 4) forms.add(value);
  };
  add(secret);
  add(encodeURIComponent(secret));
  if (secret.includes('\n')) {
    for (const line of secret.split(/\r?\n/)) if (line.trim().length >= 8) add(line.trim());
  }
  // Longest first, so that a value containing another is masked whole.
  return [...forms].sort((a, b) => b.length - a.length);
}
