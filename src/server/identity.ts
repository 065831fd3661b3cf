// Who a certificate says its holder is (README, "Security"):
// - its name is the subject CN, which ozone.administrators lists;
// - it is an SCM node when its subjectAltName holds exactly one URI scm://<serviceId>/<nodeId>; that
//   node id is its identity on the Ratis and InterSCM ports, and the service id keeps nodes of two
//   services that share one CA apart;
// - its DNS and IP subjectAltNames are the addresses it may be dialed at.
// The certificate has been verified against the cluster CA before anything here reads it (by the
// TLS handshake, or by tls.ts when it loads our own), so this module only reads names.
import { X509Certificate } from 'node:crypto';
import { ID_PATTERN_SOURCE } from './config-keys.js';

export const NODE_URI_SCHEME = 'scm';

export interface NodeName {
  readonly serviceId: string;
  readonly nodeId: string;
}

export interface CertificateIdentity {
  /** The subject CN; undefined when the subject has none (or several). */
  readonly name: string | undefined;
  /** The SCM node the certificate names, if it names exactly one well-formed one. */
  readonly node: NodeName | undefined;
  /** Why a certificate with scm:// names is not a node certificate, for error messages. */
  readonly nodeProblem: string | undefined;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
  /** SHA-256 fingerprint (colon-separated hex), to tell two certificates with one name apart in logs. */
  readonly fingerprint: string;
}

const NODE_URI_RE = new RegExp(`^${NODE_URI_SCHEME}://(${ID_PATTERN_SOURCE})/(${ID_PATTERN_SOURCE})$`);

/**
 * The entries of a subjectAltName string as Node prints it: `DNS:a, IP Address:1.2.3.4, URI:x`.
 * An entry whose value holds a comma, quote or other special character is printed as a JSON string
 * (`URI:"a,b"`), so a name can never smuggle in a second entry.
 */
export function parseSubjectAltNames(text: string | undefined): Array<{ type: string; value: string }> {
  const entries: Array<{ type: string; value: string }> = [];
  if (text === undefined) return entries;
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon < 0) throw new Error(`malformed subjectAltName ${JSON.stringify(text)}`);
    const type = text.slice(i, colon).trim();
    let value: string;
    let next: number;
    if (text[colon + 1] === '"') {
      let end = colon + 2;
      while (end < text.length && text[end] !== '"') end += text[end] === '\\' ? 2 : 1;
      value = JSON.parse(text.slice(colon + 1, end + 1)) as string;
      next = text.indexOf(',', end + 1);
    } else {
      next = text.indexOf(',', colon + 1);
      value = text.slice(colon + 1, next < 0 ? text.length : next);
    }
    entries.push({ type, value });
    if (next < 0) break;
    i = next + 1;
  }
  return entries;
}

/** The CN of a subject as X509Certificate prints it (one attribute per line). */
function commonName(subject: string): string | undefined {
  const names = subject
    .split('\n')
    .filter((line) => line.startsWith('CN='))
    .map((line) => line.slice(3));
  return names.length === 1 && names[0] !== '' ? names[0] : undefined;
}

export function identityOf(cert: X509Certificate): CertificateIdentity {
  const sans = parseSubjectAltNames(cert.subjectAltName);
  const uris = sans.filter((e) => e.type === 'URI' && e.value.startsWith(`${NODE_URI_SCHEME}://`)).map((e) => e.value);
  let node: NodeName | undefined;
  let nodeProblem: string | undefined;
  if (uris.length > 1) {
    nodeProblem = `it names several SCM nodes (${uris.join(', ')})`;
  } else if (uris.length === 1) {
    const match = NODE_URI_RE.exec(uris[0] ?? '');
    if (match === null) nodeProblem = `its URI ${uris[0]} is not of the form ${NODE_URI_SCHEME}://<serviceId>/<nodeId>`;
    else node = { serviceId: match[1] ?? '', nodeId: match[2] ?? '' };
  }
  return {
    name: commonName(cert.subject),
    node,
    nodeProblem,
    dnsNames: sans.filter((e) => e.type === 'DNS').map((e) => e.value),
    ipAddresses: sans.filter((e) => e.type === 'IP Address').map((e) => e.value),
    fingerprint: cert.fingerprint256,
  };
}

/** How logs and refusals name an identity: `node scm2 of scmservice` or `"alice"`. */
export function describeIdentity(identity: CertificateIdentity | undefined): string {
  if (identity === undefined) return 'an unauthenticated caller (plaintext)';
  const name = identity.name !== undefined ? `"${identity.name}"` : `a certificate without a subject CN (sha256 ${identity.fingerprint.slice(0, 23)}…)`;
  return identity.node !== undefined ? `node ${identity.node.nodeId} of ${identity.node.serviceId} (${name})` : name;
}

/** Anything that carries a connection's TLS state: grpc-js server calls (their AuthContext). */
export interface AuthenticatedCall {
  getAuthContext(): { readonly sslPeerCertificate?: { readonly raw?: Buffer } } | null;
}

/**
 * The verified certificate of the caller, or undefined on a plaintext connection. grpc-js reports a
 * peer certificate only for an authorized TLS socket, i.e. one the cluster CA vouched for.
 */
export function callIdentity(call: AuthenticatedCall): CertificateIdentity | undefined {
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
  return raw !== undefined ? identityOf(new X509Certificate(raw)) : undefined;
}
