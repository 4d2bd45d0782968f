import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ecKey = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
const days = ['-days', '30'];

/** openssl in the PKI directory. */
export const openssl = (pki: string, ...args: string[]) => run('openssl', args, { cwd: pki });

/**
 * A self-signed CA (`ca.crt`, `ca.key`) in `pki`, and a function that issues certificates from it:
 * `<name>.key` and `<name>.crt` for `subject`, with the given X.509 extensions (SANs, key usage).
 * EC P-256 keys, valid 30 days: a throwaway stack's, made in milliseconds.
 */
export async function certificateAuthority(
  pki: string,
  commonName: string,
): Promise<(name: string, subject: string, extensions: string) => Promise<void>> {
  await openssl(
    pki,
    'req',
    '-x509',
    ...ecKey,
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
    ...days,
    '-subj',
    `/CN=${commonName}`,
  );
  return async (name, subject, extensions) => {
    await writeFile(join(pki, `${name}.ext`), extensions);
    await openssl(pki, 'req', '-new', ...ecKey, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', subject);
    await openssl(
      pki,
      'x509',
      '-req',
      '-in',
      `${name}.csr`,
      '-CA',
      'ca.crt',
      '-CAkey',
      'ca.key',
      '-CAcreateserial',
      '-out',
      `${name}.crt`,
      ...days,
      '-extfile',
      `${name}.ext`,
    );
  };
}
