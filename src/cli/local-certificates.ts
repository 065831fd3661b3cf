// Throwaway certificates for a local or test cluster (`scm cluster --tls`, `scm certs`): a CA, one
// certificate per SCM node, an administrator and a plain client, all under one `tls/` directory.
//
// They are made with the `openssl` command: Node's crypto parses X.509 certificates
// (X509Certificate) but cannot create or sign one, and a dependency that can would be more code to
// trust than the one command every machine with TLS already has. Keys are EC P-256 (fast
// handshakes), written 0600.
//
// What the certificates say is the contract src/server/identity.ts reads (README, "Security"):
// - a node's certificate has the subjectAltName URI:scm://<serviceId>/<nodeId>, which is its
//   identity on the Ratis and InterSCM ports, plus its addresses (DNS and IP), which a peer dialing
//   it checks; it may act as server and client (extendedKeyUsage serverAuth, clientAuth);
// - a person's certificate carries only a subject CN, the name ozone.administrators lists, and may
//   act only as a client (clientAuth): it can never pose as a node or a server.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, mkdir, mkdtemp, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

export const TLS_DIR = 'tls';
export const ADMIN_NAME = 'admin';
export const CLIENT_NAME = 'client';

/** A certificate and its private key, as PEM files. */
export interface CertificateFiles {
  readonly cert: string;
  readonly key: string;
}

export interface CertificateSubject {
  /** The subject CN: the name ozone.administrators lists. */
  readonly name: string;
  /** For an SCM node: its identity, written as subjectAltName URI:scm://<serviceId>/<nodeId>. */
  readonly node?: { readonly serviceId: string; readonly nodeId: string };
  /** Host names and IP addresses a node is dialed at (subjectAltName DNS / IP). */
  readonly hosts?: readonly string[];
}

export interface LocalTls {
  readonly dir: string;
  readonly ca: CertificateFiles;
  readonly nodes: ReadonlyMap<string, CertificateFiles>;
  /** The identity `scm admin` uses: listed in ozone.administrators. */
  readonly admin: CertificateFiles;
  /** A certificate of the cluster CA that is not an administrator, for trying authorization. */
  readonly client: CertificateFiles;
  /** Whether anything was created (false when every file was there already). */
  readonly created: boolean;
}

async function openssl(args: readonly string[]): Promise<void> {
  try {
    await run('openssl', args, { maxBuffer: 1024 * 1024 });
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    if (e.code === 'ENOENT') throw new Error('cannot make certificates: the `openssl` command is not installed (Node cannot sign X.509 certificates itself)', { cause: err });
    throw new Error(`openssl ${args[0] ?? ''} failed: ${(e.stderr ?? e.message).trim()}`, { cause: err });
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** `/CN=<name>` with the characters openssl's -subj treats specially escaped. */
function subjectArg(name: string): string {
  if (name.trim() === '') throw new Error('a certificate needs a non-empty subject name');
  return `/CN=${name.replace(/[\\/+,=]/g, (c) => `\\${c}`)}`;
}

/** A new self-signed CA, valid ten years. */
export async function createCa(out: CertificateFiles, name = 'scm-ha local CA'): Promise<void> {
  await openssl([
    'req', '-x509', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', out.key, '-out', out.cert, '-days', '3650', '-sha256', '-subj', subjectArg(name),
    '-addext', 'basicConstraints=critical,CA:TRUE',
    '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
    '-addext', 'subjectKeyIdentifier=hash',
  ]);
  await chmod(out.key, 0o600);
}

/**
 * A new key and a certificate for `subject` signed by `ca`. Written beside `out` first and renamed
 * into place, key before certificate, so a node watching the files never reads half a file.
 */
export async function issueCertificate(ca: CertificateFiles, subject: CertificateSubject, out: CertificateFiles, options: { days?: number; keyMode?: number } = {}): Promise<void> {
  const work = await mkdtemp(`${out.cert}.work-`);
  try {
    const key = join(work, 'key.pem');
    const csr = join(work, 'req.csr');
    const cert = join(work, 'cert.pem');
    const ext = join(work, 'ext.cnf');
    await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', csr, '-subj', subjectArg(subject.name)]);
    const names: string[] = [];
    if (subject.node !== undefined) names.push(`URI:scm://${subject.node.serviceId}/${subject.node.nodeId}`);
    for (const host of subject.hosts ?? []) names.push(isIP(host) !== 0 ? `IP:${host}` : `DNS:${host}`);
    const lines = [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature',
      // Only a node may serve: a person's certificate cannot stand in for an SCM.
      `extendedKeyUsage=${subject.node !== undefined ? 'serverAuth,clientAuth' : 'clientAuth'}`,
      'authorityKeyIdentifier=keyid',
    ];
    if (names.length > 0) lines.push(`subjectAltName=${names.join(',')}`);
    await writeFile(ext, `${lines.join('\n')}\n`);
    await openssl([
      'x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(16).toString('hex').replace(/^[89a-f]/, '1')}`,
      '-days', String(options.days ?? 825), '-sha256', '-extfile', ext, '-out', cert,
    ]);
    await chmod(key, options.keyMode ?? 0o600);
    await rename(key, out.key);
    await rename(cert, out.cert);
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

export interface LocalTlsOptions {
  /** The directory that gets `tls/` (the local cluster's data directory). */
  readonly dir: string;
  readonly serviceId: string;
  readonly nodeIds: readonly string[];
  /** Where each node is dialed: its subjectAltName DNS / IP entries. */
  readonly hosts: (nodeId: string) => readonly string[];
  /** Permissions of the key files other than the CA's (default 0600). */
  readonly keyMode?: number;
}

/**
 * The certificates of a local cluster under `<dir>/tls/`, made where missing. An existing CA is
 * kept (with every certificate it signed) so that a restarted cluster keeps trusting its members;
 * without one, everything is made anew.
 */
export async function ensureLocalCertificates(options: LocalTlsOptions): Promise<LocalTls> {
  const dir = join(options.dir, TLS_DIR);
  // Only the owner gets in, unless the keys are meant for other users (a container's) too.
  const keyMode = options.keyMode ?? 0o600;
  await mkdir(dir, { recursive: true });
  await chmod(dir, 0o700 | ((keyMode & 0o044) !== 0 ? 0o055 : 0));
  const files = (name: string): CertificateFiles => ({ cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) });
  const ca = files('ca');
  let created = false;
  const caExists = (await exists(ca.cert)) && (await exists(ca.key));
  if (!caExists) {
    await createCa(ca);
    created = true;
  }
  const ensure = async (name: string, subject: CertificateSubject): Promise<CertificateFiles> => {
    const out = files(name);
    if (!caExists || !(await exists(out.cert)) || !(await exists(out.key))) {
      await issueCertificate(ca, subject, out, options.keyMode !== undefined ? { keyMode: options.keyMode } : {});
      created = true;
    }
    return out;
  };
  const nodes = new Map<string, CertificateFiles>();
  for (const nodeId of options.nodeIds) {
    nodes.set(nodeId, await ensure(nodeId, { name: nodeId, node: { serviceId: options.serviceId, nodeId }, hosts: options.hosts(nodeId) }));
  }
  const admin = await ensure(ADMIN_NAME, { name: ADMIN_NAME });
  const client = await ensure(CLIENT_NAME, { name: CLIENT_NAME });
  return { dir, ca, nodes, admin, client, created };
}
