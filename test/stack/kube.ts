import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { join } from 'node:path';
import { certificateAuthority, openssl } from './pki.ts';
import { freePort, type Service, StackError, startOnFreePort, startService, waitUntil } from './process.ts';
import { cachePath } from './versions.ts';

export interface KubeEndpoint {
  /** https://127.0.0.1:<port> */
  server: string;
  /** A kubeconfig whose user is an admin (a client certificate in O=system:masters). */
  kubeconfig: string;
  /** The kubectl built beside the API server. */
  kubectl: string;
  /** `gitVersion` as the API server's /version reports it. */
  version: string;
  etcdVersion: string;
  /** The CA that signed the serving and client certificates (PEM file). */
  caFile: string;
  /** The service-account signing key (PEM file), for tests that mint tokens. */
  serviceAccountKeyFile: string;
  /**
   * The API server's audit log (JSON lines, one audit.k8s.io/v1 Event each): the Metadata of every request
   * on Secrets and on deployments/scale (see {@link AUDIT_POLICY}), so that a test can tell what a
   * client read or scaled.
   */
  auditLog: string;
}

/**
 * What the stack's API server audits: who read or wrote a Secret, and who scaled a Deployment — the two
 * things a confused operator could be made to do for someone else — at Metadata level (never a body), and
 * nothing else, so that the log stays small and cheap to write.
 */
const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    resources:
      - group: ""
        resources: [secrets]
      - group: apps
        resources: [deployments/scale]
  - level: None
`;

/**
 * A Kubernetes control plane as envtest starts it, plus kube-controller-manager so that Deployments
 * get ReplicaSets and owner references get garbage-collected: etcd, kube-apiserver with RBAC and
 * service-account tokens, and an admin kubeconfig. No scheduler or kubelet: pods stay Pending.
 */
export async function startKube(dir: string): Promise<{ endpoint: KubeEndpoint; services: Service[] }> {
  const home = join(dir, 'kube');
  const pki = join(home, 'pki');
  await mkdir(pki, { recursive: true });
  const kubeBin = join(cachePath('kube'), 'bin');
  const [etcdClient, etcdPeer, apiPort] = [await freePort(), await freePort(), await freePort()];
  await makePki(pki);
  const [auditPolicy, auditLog] = [join(home, 'audit-policy.yaml'), join(home, 'audit.log')];
  await writeFile(auditPolicy, AUDIT_POLICY);
  const services: Service[] = [];
  try {
    const etcd = startService('etcd', dir, join(cachePath('etcd'), 'bin', 'etcd'), [
      '--name=stack',
      `--data-dir=${join(home, 'etcd')}`,
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`,
      `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=stack=http://127.0.0.1:${etcdPeer}`,
      '--unsafe-no-fsync', // a throwaway cluster: durability across power loss buys nothing here
      '--log-level=warn',
    ]);
    services.push(etcd);
    let etcdVersion = 'unknown';
    await waitUntil('etcd', etcd, async () => {
      const health = await get(`http://127.0.0.1:${etcdClient}/health`);
      etcdVersion = (JSON.parse(await get(`http://127.0.0.1:${etcdClient}/version`)) as { etcdserver: string })
        .etcdserver;
      return (JSON.parse(health) as { health: string }).health === 'true';
    });

    const apiserver = startService('kube-apiserver', dir, join(kubeBin, 'kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${join(home, 'apiserver')}`,
      `--tls-cert-file=${join(pki, 'apiserver.crt')}`,
      `--tls-private-key-file=${join(pki, 'apiserver.key')}`,
      `--client-ca-file=${join(pki, 'ca.crt')}`,
      '--authorization-mode=RBAC',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${join(pki, 'sa.pub')}`,
      `--service-account-signing-key-file=${join(pki, 'sa.key')}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--allow-privileged=true',
      // The default reconciler refuses a loopback advertise address; nothing here needs the kubernetes Service endpoints.
      '--endpoint-reconciler-type=none',
      '--profiling=false',
      `--audit-policy-file=${auditPolicy}`,
      `--audit-log-path=${auditLog}`,
      // Written before the response is sent: a test reads what happened as soon as its request returns.
      '--audit-log-mode=blocking',
      '--v=1',
    ]);
    services.push(apiserver);
    const tls = { ca: await readFile(join(pki, 'ca.crt')), ...(await adminCredentials(pki)) };
    const server = `https://127.0.0.1:${apiPort}`;
    // /readyz turns ok only after the RBAC bootstrap roles and the default namespaces exist.
    await waitUntil('kube-apiserver', apiserver, async () => (await get(`${server}/readyz`, tls)) === 'ok', 90_000);
    const version = (JSON.parse(await get(`${server}/version`, tls)) as { gitVersion: string }).gitVersion;

    const kubeconfig = join(home, 'admin.kubeconfig');
    await writeFile(kubeconfig, kubeconfigFor(server, tls), { mode: 0o600 });
    // Its port is chosen only now: the API server and etcd, started meanwhile, open many connections,
    // and one of their ephemeral ports may be the one chosen (CI saw it once).
    const { service: controllerManager } = await startOnFreePort(
      (cmPort) =>
        startService('kube-controller-manager', dir, join(kubeBin, 'kube-controller-manager'), [
          `--kubeconfig=${kubeconfig}`,
          `--authentication-kubeconfig=${kubeconfig}`,
          `--authorization-kubeconfig=${kubeconfig}`,
          '--bind-address=127.0.0.1',
          `--secure-port=${cmPort}`,
          `--cert-dir=${join(home, 'controller-manager')}`,
          '--leader-elect=false',
          `--service-account-private-key-file=${join(pki, 'sa.key')}`,
          `--root-ca-file=${join(pki, 'ca.crt')}`,
          '--cluster-name=taskfleet-stack',
          '--v=1',
        ]),
      (service, cmPort) =>
        waitUntil(
          'kube-controller-manager',
          service,
          async () => (await get(`https://127.0.0.1:${cmPort}/healthz`, { rejectUnauthorized: false })) === 'ok',
        ),
    );
    services.push(controllerManager);
    return {
      endpoint: {
        server,
        kubeconfig,
        kubectl: join(kubeBin, 'kubectl'),
        version,
        etcdVersion,
        caFile: join(pki, 'ca.crt'),
        serviceAccountKeyFile: join(pki, 'sa.key'),
        auditLog,
      },
      services,
    };
  } catch (error) {
    await Promise.all(services.map((s) => s.stop()));
    throw error;
  }
}

/** A CA, the API server's serving certificate, an admin client certificate and the service-account key pair. */
async function makePki(pki: string): Promise<void> {
  const issue = await certificateAuthority(pki, 'taskfleet-stack-ca');
  await issue(
    'apiserver',
    '/CN=kube-apiserver',
    'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\n',
  );
  await issue('admin', '/O=system:masters/CN=taskfleet-admin', 'extendedKeyUsage=clientAuth\n');
  await openssl(pki, 'genpkey', '-algorithm', 'RSA', '-pkeyopt', 'rsa_keygen_bits:2048', '-out', 'sa.key');
  await openssl(pki, 'pkey', '-in', 'sa.key', '-pubout', '-out', 'sa.pub');
}

async function adminCredentials(pki: string): Promise<{ cert: Buffer; key: Buffer }> {
  return { cert: await readFile(join(pki, 'admin.crt')), key: await readFile(join(pki, 'admin.key')) };
}

function kubeconfigFor(server: string, tls: { ca: Buffer; cert: Buffer; key: Buffer }): string {
  const b64 = (b: Buffer) => b.toString('base64');
  return `apiVersion: v1
kind: Config
clusters:
- name: taskfleet-stack
  cluster:
    server: ${server}
    certificate-authority-data: ${b64(tls.ca)}
users:
- name: taskfleet-admin
  user:
    client-certificate-data: ${b64(tls.cert)}
    client-key-data: ${b64(tls.key)}
contexts:
- name: taskfleet-stack
  context:
    cluster: taskfleet-stack
    user: taskfleet-admin
current-context: taskfleet-stack
`;
}

interface TlsOptions {
  ca?: Buffer;
  cert?: Buffer;
  key?: Buffer;
  rejectUnauthorized?: boolean;
}

/** GET a URL and return its body; plain http for etcd, https with the given TLS options otherwise. */
async function get(url: string, tls: TlsOptions = {}): Promise<string> {
  if (url.startsWith('http:')) {
    const response = await fetch(url, { signal: AbortSignal.timeout(2000) });
    return response.text();
  }
  return new Promise((resolve, reject) => {
    const req = request(url, { ...tls, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        body += chunk;
      });
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new StackError(`GET ${url} timed out`)));
    req.on('error', reject);
    req.end();
  });
}
