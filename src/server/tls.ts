// A node's (or a client's) TLS key material: the cluster CA's certificates, its own certificate and
// private key, read from the PEM files the configuration names, checked before use, and reloaded
// when the files change, without a restart.
//
// Checked at load, so that a mistake is an error naming the file at start rather than a handshake
// that fails later on some peer: each file parses; the CA bundle holds CA certificates; the key
// belongs to the certificate; the certificate chains to the CA (through any intermediates after it
// in its file) and is valid now; a node's certificate names this very node
// (URI:scm://<serviceId>/<nodeId>), its address, and may serve and call (extendedKeyUsage); a
// client's has a subject CN, the name it is authorized by.
//
// Rotation: the files are polled (stat) once a second. fs.watch would miss the way certificates are
// replaced in practice (a rename over the file, Kubernetes swapping a symlinked directory), and a
// stat per file per second costs nothing. A new set is used only once it passes every check above:
// a rotation writes the key and the certificate one after the other, and the set in between does
// not match; the old set stays in use meanwhile, and only a set that stays broken across two polls
// is reported. The material reaches grpc-js through its CertificateProvider interface: servers then
// call setSecureContext (new handshakes use the new certificate, established connections go on),
// and channels build each new connection from the latest set.
import { createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { checkServerIdentity, type ConnectionOptions, type PeerCertificate, type SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import { KEY, type TlsFiles } from './config.js';
import { describeIdentity, identityOf, type CertificateIdentity } from './identity.js';

/** What the certificate must be: this SCM node (its identity and address), or a named client. */
export type TlsRole =
  | { readonly kind: 'node'; readonly serviceId: string; readonly nodeId: string; readonly host: string }
  | { readonly kind: 'client' };

export interface LoadedTls {
  /** PEM of the CA bundle, the certificate chain and the key, as read. */
  readonly ca: Buffer;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly identity: CertificateIdentity;
  readonly notAfter: Date;
}

export class TlsMaterialError extends Error {
  override readonly name = 'TlsMaterialError';
}

const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';
const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function keyNames(role: TlsRole): { cert: string; key: string } {
  return role.kind === 'node'
    ? { cert: KEY.certificateFile, key: KEY.privateKeyFile }
    : { cert: KEY.clientCertificateFile, key: KEY.clientPrivateKeyFile };
}

function readPem(path: string, what: string): Buffer {
  try {
    return readFileSync(path);
  } catch (err) {
    throw new TlsMaterialError(`cannot read ${what} ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function certificatesIn(pem: Buffer, path: string, what: string): X509Certificate[] {
  const blocks = pem.toString('utf8').match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) throw new TlsMaterialError(`${what} ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  return blocks.map((block, i) => {
    try {
      return new X509Certificate(block);
    } catch (err) {
      throw new TlsMaterialError(`certificate ${i + 1} in ${what} ${path} does not parse: ${(err as Error).message}`, { cause: err });
    }
  });
}

function subjectOf(cert: X509Certificate): string {
  return cert.subject.replace(/\n/g, ', ');
}

/** The leaf chains to one of `roots`, through `intermediates` if needed; every signature checked. */
function chainsTo(leaf: X509Certificate, intermediates: readonly X509Certificate[], roots: readonly X509Certificate[]): boolean {
  let current = leaf;
  for (let depth = 0; depth <= intermediates.length; depth++) {
    const issuedBy = (issuer: X509Certificate): boolean => current.checkIssued(issuer) && current.verify(issuer.publicKey);
    if (roots.some(issuedBy)) return true;
    const next = intermediates.find((c) => c !== current && issuedBy(c));
    if (next === undefined) return false;
    current = next;
  }
  return false;
}

function checkValidity(cert: X509Certificate, path: string, what: string, now: number): Date {
  const from = new Date(cert.validFrom);
  const to = new Date(cert.validTo);
  if (now < from.getTime()) throw new TlsMaterialError(`${what} ${path} (${subjectOf(cert)}) is not valid before ${from.toISOString()}`);
  if (now > to.getTime()) throw new TlsMaterialError(`${what} ${path} (${subjectOf(cert)}) expired on ${to.toISOString()}`);
  return to;
}

/** Reads and checks one set of TLS files; throws TlsMaterialError naming the file and what is wrong. */
export function loadTls(files: TlsFiles, role: TlsRole, now = Date.now()): LoadedTls {
  const names = keyNames(role);
  const caWhat = `the CA certificates (${KEY.caCertificateFile})`;
  const certWhat = `the certificate (${names.cert})`;
  const ca = readPem(files.caFile, caWhat);
  const cert = readPem(files.certFile, certWhat);
  const key = readPem(files.keyFile, `the private key (${names.key})`);

  const roots = certificatesIn(ca, files.caFile, caWhat);
  for (const root of roots) {
    if (!root.ca) throw new TlsMaterialError(`${caWhat} ${files.caFile} holds ${subjectOf(root)}, which is not a CA certificate`);
    checkValidity(root, files.caFile, caWhat, now);
  }
  const [leaf, ...intermediates] = certificatesIn(cert, files.certFile, certWhat);
  if (leaf === undefined) throw new TlsMaterialError(`${certWhat} ${files.certFile} holds no certificate`);
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey({ key, format: 'pem' });
  } catch (err) {
    throw new TlsMaterialError(`cannot read the private key (${names.key}) ${files.keyFile}: ${(err as Error).message} (it must be an unencrypted PEM key)`, { cause: err });
  }
  if (!leaf.checkPrivateKey(privateKey)) {
    throw new TlsMaterialError(`the private key ${files.keyFile} (${names.key}) does not belong to the certificate ${files.certFile} (${names.cert})`);
  }
  const notAfter = checkValidity(leaf, files.certFile, certWhat, now);
  if (!chainsTo(leaf, intermediates, roots)) {
    throw new TlsMaterialError(`${certWhat} ${files.certFile} (${subjectOf(leaf)}, issued by ${leaf.issuer.replace(/\n/g, ', ')}) is not signed by the CA in ${files.caFile} (${KEY.caCertificateFile})`);
  }
  const identity = identityOf(leaf);
  const usages = leaf.keyUsage;
  if (role.kind === 'node') {
    const wanted = `URI:scm://${role.serviceId}/${role.nodeId}`;
    if (identity.node === undefined) {
      throw new TlsMaterialError(`${certWhat} ${files.certFile} is not an SCM node's certificate: ${identity.nodeProblem ?? 'it has no scm:// URI'}; node ${role.nodeId} needs the subjectAltName ${wanted}`);
    }
    if (identity.node.serviceId !== role.serviceId || identity.node.nodeId !== role.nodeId) {
      throw new TlsMaterialError(`${certWhat} ${files.certFile} is the certificate of ${describeIdentity(identity)}, but this is node ${role.nodeId} of ${role.serviceId} (subjectAltName ${wanted})`);
    }
    const named = isIP(role.host) !== 0 ? leaf.checkIP(role.host) : leaf.checkHost(role.host);
    if (named === undefined) {
      throw new TlsMaterialError(`${certWhat} ${files.certFile} does not name this node's address ${role.host} (ozone.scm.address.${role.serviceId}.${role.nodeId}) in its subjectAltName, so peers would refuse it`);
    }
    if (usages !== undefined && !(usages.includes(SERVER_AUTH) && usages.includes(CLIENT_AUTH))) {
      throw new TlsMaterialError(`${certWhat} ${files.certFile} must allow serverAuth and clientAuth (extendedKeyUsage): a node both serves and calls its peers`);
    }
  } else {
    if (identity.name === undefined) {
      throw new TlsMaterialError(`${certWhat} ${files.certFile} has no subject CN, the name a client is authorized by (ozone.administrators)`);
    }
    if (usages !== undefined && !usages.includes(CLIENT_AUTH)) {
      throw new TlsMaterialError(`${certWhat} ${files.certFile} must allow clientAuth (extendedKeyUsage)`);
    }
  }
  return { ca, cert, key, identity, notAfter };
}

/** The credentials and channel options of a connection to one address. */
export interface ChannelSecurity {
  readonly credentials: grpc.ChannelCredentials;
  readonly options: grpc.ChannelOptions;
}

/** Plaintext, for a node or client without TLS. */
export function insecureChannel(): ChannelSecurity {
  return { credentials: grpc.credentials.createInsecure(), options: {} };
}

/** Whom a client expects to reach: an SCM node of this service, a given one when known. */
export interface ServerExpectation {
  readonly serviceId: string;
  readonly nodeId?: string;
}

type CaListener = (update: { caCertificate: Buffer } | null) => void;
type IdentityListener = (update: { certificate: Buffer; privateKey: Buffer } | null) => void;

/**
 * How long a connection to a peer port may take to finish its TLS handshake: on the Ratis port a
 * deadline (raft-stream-server.ts); on the InterSCM port (serverCredentials()) Node's
 * handshakeTimeout, which is an idle timer (it restarts whenever a byte arrives). Node's own
 * default is 120 s, for which a client that connects and says nothing holds one of the port's
 * connection slots (peer-port-listener.ts). Netty's SslHandler, which Ratis' gRPC server runs on,
 * gives 10 s.
 */
export const SERVER_TLS_HANDSHAKE_TIMEOUT_MS = 10_000;

export interface TlsMaterialOptions {
  /** How often the files are checked for changes (default 1 s). */
  readonly pollIntervalMs?: number;
  /** The TLS handshake timeout of the servers on serverCredentials() (default SERVER_TLS_HANDSHAKE_TIMEOUT_MS). */
  readonly handshakeTimeoutMs?: number;
  /** A new set of files is in use. */
  readonly onReloaded?: (previous: LoadedTls, current: LoadedTls) => void;
  /** The files changed but the new set fails a check (reported once per change, after two polls). */
  readonly onReloadFailed?: (error: Error) => void;
}

/**
 * One identity's key material, kept current from its files. Implements grpc-js's
 * CertificateProvider (one object serves as both the CA and the identity provider).
 */
export class TlsMaterial {
  private material: LoadedTls;
  private loadedSignature: string;
  private failedSignature: string | undefined;
  private reportedSignature: string | undefined;
  private timer: NodeJS.Timeout | undefined;
  private readonly caListeners = new Set<CaListener>();
  private readonly identityListeners = new Set<IdentityListener>();
  private readonly reloadListeners = new Set<(current: LoadedTls) => void>();
  private serverCredentialsCache: grpc.ServerCredentials | undefined;

  private constructor(
    readonly files: TlsFiles,
    readonly role: TlsRole,
    private readonly options: TlsMaterialOptions,
  ) {
    this.loadedSignature = this.signature();
    this.material = loadTls(files, role);
  }

  /** Loads and checks the files (throws TlsMaterialError); call watch() to follow changes. */
  static load(files: TlsFiles, role: TlsRole, options: TlsMaterialOptions = {}): TlsMaterial {
    return new TlsMaterial(files, role, options);
  }

  get current(): LoadedTls {
    return this.material;
  }

  /** Starts polling the files; the timer does not keep the process alive. */
  watch(): this {
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.poll(), this.options.pollIntervalMs ?? 1_000);
      this.timer.unref();
    }
    return this;
  }

  close(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Calls `listener` with every new set of files in use; returns a function that stops it. */
  onReload(listener: (current: LoadedTls) => void): () => void {
    this.reloadListeners.add(listener);
    return () => this.reloadListeners.delete(listener);
  }

  /** Where the files stand: inode, size and mtime of each (stat follows symlinks). */
  private signature(): string {
    return [this.files.caFile, this.files.certFile, this.files.keyFile]
      .map((path) => {
        try {
          const st = statSync(path);
          return `${st.ino}:${st.size}:${st.mtimeMs}`;
        } catch {
          return 'missing';
        }
      })
      .join('|');
  }

  /** Checks the files once; a changed, valid set replaces the one in use. */
  poll(): void {
    const signature = this.signature();
    if (signature === this.loadedSignature) return;
    let next: LoadedTls;
    try {
      next = loadTls(this.files, this.role);
    } catch (err) {
      // The first failure may be a rotation half done (key written, certificate not yet): wait for
      // the next poll before saying anything, and say it once per state of the files.
      if (this.failedSignature === signature && this.reportedSignature !== signature) {
        this.reportedSignature = signature;
        this.options.onReloadFailed?.(err as Error);
      }
      this.failedSignature = signature;
      return;
    }
    const previous = this.material;
    this.material = next;
    this.loadedSignature = signature;
    this.failedSignature = undefined;
    this.reportedSignature = undefined;
    // Synchronously, in one turn: no handshake can see the CA of one set with the key of another.
    for (const listener of this.identityListeners) listener({ certificate: next.cert, privateKey: next.key });
    for (const listener of this.caListeners) listener({ caCertificate: next.ca });
    // A server that refuses the new set (Node's setSecureContext throws) keeps its old context;
    // the others still get the new one, and the refusal is reported rather than thrown out of
    // the poll timer (where it would stop the process).
    for (const listener of this.reloadListeners) {
      try {
        listener(next);
      } catch (err) {
        this.options.onReloadFailed?.(new Error(`a server kept its previous TLS material, refusing the reloaded set: ${(err as Error).message}`, { cause: err }));
      }
    }
    this.options.onReloaded?.(previous, next);
  }

  // ---- grpc-js CertificateProvider: a new listener hears the current material at once ----

  addCaCertificateListener(listener: CaListener): void {
    this.caListeners.add(listener);
    listener({ caCertificate: this.material.ca });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.add(listener);
    listener({ certificate: this.material.cert, privateKey: this.material.key });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.identityListeners.delete(listener);
  }

  /**
   * Server credentials that require a client certificate of the cluster CA: a plaintext caller or
   * one with a certificate of another CA never completes the handshake. One object for every
   * server of the node; each server registers its own watcher on it and calls setSecureContext
   * when the material is reloaded.
   */
  serverCredentials(): grpc.ServerCredentials {
    this.serverCredentialsCache ??= new ReloadingServerCredentials(this, this.options.handshakeTimeoutMs ?? SERVER_TLS_HANDSHAKE_TIMEOUT_MS);
    return this.serverCredentialsCache;
  }

  /**
   * Credentials for a connection to `address`: this identity's certificate, the cluster CA as the
   * only trust anchor, and a server that must be an SCM node of `expect.serviceId` (the node
   * `expect.nodeId` when given) whose certificate names the host dialed.
   *
   * grpc-js sends the host as TLS server name (SNI), and Node warns once per process (DEP0123)
   * when that is an IP address. For an IP the server name is therefore overridden with a DNS-like
   * label, which our servers ignore, and the address check below uses the host captured here
   * rather than the name grpc-js passes in.
   */
  channel(address: string, expect: ServerExpectation): ChannelSecurity {
    const host = hostOf(address);
    const credentials = grpc.experimental.createCertificateProviderChannelCredentials(this, this, { checkServerIdentity: serverIdentityCheck(address, expect) });
    const options: grpc.ChannelOptions = isIP(host) !== 0 ? { 'grpc.ssl_target_name_override': expect.nodeId ?? expect.serviceId } : {};
    return { credentials, options };
  }

  /**
   * Node's tls.connect options for a connection to `address` (a Raft stream): the current
   * certificate and key, the cluster CA as the only trust anchor, and the same check of the server
   * as channel() makes. The server name (SNI) is sent only for a host name, never an IP address.
   */
  connectOptions(address: string, expect: ServerExpectation): ConnectionOptions {
    const host = hostOf(address);
    const { ca, cert, key } = this.material;
    return { ca, cert, key, rejectUnauthorized: true, checkServerIdentity: serverIdentityCheck(address, expect), ...(isIP(host) === 0 ? { servername: host } : {}) };
  }

  /** The current set as Node's tls options, for the HTTPS server (re-read on every reload). */
  secureContextOptions(): SecureContextOptions {
    return { ca: this.material.ca, cert: this.material.cert, key: this.material.key };
  }
}

/**
 * grpc-js server credentials holding the material's current set from the start and pushing every
 * reload to the servers' watchers. Not grpc-js' createCertificateProviderServerCredentials: with it,
 * the first server bound on the credentials registers its watcher only after the provider has
 * delivered the material, never hears it, and drops every connection (grpc-js 1.14.7), while the
 * servers bound later work.
 */
class ReloadingServerCredentials extends grpc.ServerCredentials {
  constructor(material: TlsMaterial, handshakeTimeoutMs: number) {
    // grpc-js hands these to http2.createSecureServer (a tls.Server's options), for the
    // connections injected through peer-port-listener.ts too.
    super({ requestCert: true, rejectUnauthorized: true, handshakeTimeout: handshakeTimeoutMs }, material.secureContextOptions());
    material.onReload(() => this.updateSecureContextOptions(material.secureContextOptions()));
  }

  _equals(other: grpc.ServerCredentials): boolean {
    return other === this;
  }
}

/**
 * The check of a server's certificate, beyond the CA's signature: it names the host dialed, and it
 * is an SCM node of `expect.serviceId` (the node `expect.nodeId` when given).
 */
function serverIdentityCheck(address: string, expect: ServerExpectation): (servername: string, cert: PeerCertificate) => Error | undefined {
  const host = hostOf(address);
  return (_servername, cert) => {
    const addressError = checkServerIdentity(host, cert);
    if (addressError !== undefined) return addressError;
    const identity = identityOf(new X509Certificate(cert.raw));
    const node = identity.node;
    if (node === undefined) return new Error(`the server at ${address} is not an SCM node: ${describeIdentity(identity)} has no URI:scm://${expect.serviceId}/… subjectAltName`);
    if (node.serviceId !== expect.serviceId || (expect.nodeId !== undefined && node.nodeId !== expect.nodeId)) {
      return new Error(`the server at ${address} is ${describeIdentity(identity)}, not ${expect.nodeId !== undefined ? `node ${expect.nodeId}` : 'a node'} of ${expect.serviceId}`);
    }
    return undefined;
  };
}

/** The host of `host:port` or `[v6]:port`. */
export function hostOf(address: string): string {
  const colon = address.lastIndexOf(':');
  return (colon < 0 ? address : address.slice(0, colon)).replace(/^\[(.*)\]$/, '$1');
}
