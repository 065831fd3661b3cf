// The layout of `scm cluster`'s local quorum: node k's ports (Ozone's defaults for node 1, plus 100
// per further node) and the one ozone-site.xml every node and admin command reads. The processes
// themselves are started and watched by local-quorum.ts.
import { join } from 'node:path';

export interface LocalNodePorts {
  readonly nodeId: string;
  readonly client: number;
  readonly ratis: number;
  readonly grpc: number;
  readonly http: number;
  /** HTTPS (ozone.scm.https-address), served instead of HTTP with --tls. */
  readonly https: number;
}

export const LOCAL_SERVICE_ID = 'scmservice';

/** Node k (1-based) uses the base ports plus 100·(k-1): Ozone's defaults for node 1. */
export function localNodePorts(k: number, basePort: number): LocalNodePorts {
  const client = basePort + 100 * (k - 1);
  return { nodeId: `scm${k}`, client, ratis: client + 34, grpc: client + 35, http: client + 16, https: client + 17 };
}

/** Where a local node is dialed: the names its certificate must carry. */
export const LOCAL_HOSTS: readonly string[] = ['127.0.0.1', 'localhost'];

/** The certificate files of a local cluster (local-certificates.ts makes them). */
export interface LocalTlsFiles {
  readonly ca: string;
  readonly nodes: ReadonlyMap<string, { readonly cert: string; readonly key: string }>;
  readonly admin: { readonly cert: string; readonly key: string };
}

/**
 * The keys that switch a local cluster to mutual TLS: Ozone's two switches, the CA, each node's
 * certificate (per node), the identity `scm admin` presents and its name as the one administrator,
 * and HTTPS for the metrics and health endpoints.
 */
export function localTlsProperties(tls: LocalTlsFiles): Record<string, string> {
  const props: Record<string, string> = {
    'ozone.security.enabled': 'true',
    'hdds.grpc.tls.enabled': 'true',
    'hdds.x509.rootca.certificate.file': tls.ca,
    'ozone.scm.client.x509.certificate.file': tls.admin.cert,
    'ozone.scm.client.x509.private.key.file': tls.admin.key,
    'ozone.administrators': 'admin',
    'ozone.http.policy': 'HTTPS_ONLY',
  };
  for (const [nodeId, files] of tls.nodes) {
    props[`ozone.scm.x509.certificate.file.${LOCAL_SERVICE_ID}.${nodeId}`] = files.cert;
    props[`ozone.scm.x509.private.key.file.${LOCAL_SERVICE_ID}.${nodeId}`] = files.key;
  }
  return props;
}

function xmlEscape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** One ozone-site.xml for the whole local cluster, with Ozone's per-node suffixed keys. */
export function localClusterSiteXml(nodes: number, basePort: number, dir: string, extra: Record<string, string> = {}): string {
  const service = LOCAL_SERVICE_ID;
  const props: Array<[string, string]> = [
    ['ozone.scm.service.ids', service],
    [`ozone.scm.nodes.${service}`, Array.from({ length: nodes }, (_, i) => `scm${i + 1}`).join(',')],
    ['ozone.scm.primordial.node.id', 'scm1'],
    // Local processes on one machine: elect within about a second instead of Ozone's 5 s.
    ['ozone.scm.ha.ratis.leader.election.timeout', '1s'],
    // A local cluster stays on loopback: the client, Ratis and InterSCM servers bind this host, the
    // HTTP server the host of its http-address below (daemon.ts states the rule).
    ['ozone.scm.client.bind.host', '127.0.0.1'],
  ];
  for (let k = 1; k <= nodes; k++) {
    const p = localNodePorts(k, basePort);
    const suffix = `${service}.${p.nodeId}`;
    props.push(
      [`ozone.scm.address.${suffix}`, '127.0.0.1'],
      [`ozone.scm.client.port.${suffix}`, String(p.client)],
      [`ozone.scm.ratis.port.${suffix}`, String(p.ratis)],
      [`ozone.scm.grpc.port.${suffix}`, String(p.grpc)],
      [`ozone.scm.http-address.${suffix}`, `127.0.0.1:${p.http}`],
      [`ozone.scm.https-address.${suffix}`, `127.0.0.1:${p.https}`],
      [`ozone.scm.db.dirs.${suffix}`, join(dir, p.nodeId, 'metadata')],
      [`ozone.scm.ratis.storage.dir.${suffix}`, join(dir, p.nodeId, 'ratis')],
    );
  }
  for (const [k, v] of Object.entries(extra)) props.push([k, v]);
  const body = props.map(([name, value]) => `  <property>\n    <name>${xmlEscape(name)}</name>\n    <value>${xmlEscape(value)}</value>\n  </property>`).join('\n');
  return `<?xml version="1.0"?>\n<!-- Written by \`scm cluster\` -->\n<configuration>\n${body}\n</configuration>\n`;
}

