// `scm certs`: the throwaway CA and certificates of `scm cluster --tls`, for nodes that run
// elsewhere: the docker-compose TLS variant (docker-compose.tls.yml), the Kubernetes secure variant
// (deploy/kubernetes/secure/), or a first try on a few hosts. Each node's certificate names it as
// URI:scm://<service>/<node> and as the host names it is dialed at: by default the node id (its
// address in docker-compose), localhost and 127.0.0.1; with --kubernetes-namespace NS, the pod's
// stable DNS name under the headless Service, <node>.<service>.NS.svc (the address the manifests
// configure), and the same with the cluster domain, and nothing else. admin.crt is the
// administrator (list `admin` in ozone.administrators), client.crt a certificate that is not one. An
// existing CA is kept, and so are existing certificates; one that does not name the hosts asked for
// (made for another namespace, say) is an error naming the file to remove, never passed off as new.
// For anything that lasts, use your organisation's CA: README, "Security", says what a certificate
// must name.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { resolve } from 'node:path';
import { parseList } from '../server/config-values.js';
import { ID_PATTERN_SOURCE } from '../server/config-keys.js';
import { EXIT_OK, UsageError, type CommandSpec } from './command.js';
import { ensureLocalCertificates, type LocalTls } from './local-certificates.js';

const ID_RE = new RegExp(`^${ID_PATTERN_SOURCE}$`);
/** A DNS label (RFC 1123), as Kubernetes names namespaces and Services. */
const DNS_LABEL_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_NAME_RE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/;

/** The Secret the secure Kubernetes manifests mount (deploy/kubernetes/secure/statefulset.yaml). */
export const KUBERNETES_SECRET = 'scm-tls';

export interface KubernetesNames {
  readonly namespace: string;
  /** The headless Service that gives the pods their DNS names. */
  readonly service: string;
  readonly clusterDomain: string;
}

/** The host names a pod's certificate names: the address the manifests configure first. */
export function kubernetesHosts(nodeId: string, names: KubernetesNames): string[] {
  const svc = `${nodeId}.${names.service}.${names.namespace}.svc`;
  return [svc, `${svc}.${names.clusterDomain}`];
}

/**
 * The Secret's keys and the files they come from: the CA's certificate (never its key), each
 * node's certificate and key, and the administrator's, which the pods' `scm admin` calls present.
 */
export function kubernetesSecretFiles(tls: LocalTls): [key: string, file: string][] {
  const files: [string, string][] = [['ca.crt', tls.ca.cert]];
  for (const [nodeId, node] of tls.nodes) files.push([`${nodeId}.crt`, node.cert], [`${nodeId}.key`, node.key]);
  files.push(['admin.crt', tls.admin.cert], ['admin.key', tls.admin.key]);
  return files;
}

const shellQuote = (text: string): string => (/^[-\w./=:@]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`);

/** One command that creates the Secret, or replaces its contents (rotation): client-side dry run piped to apply. */
export function kubernetesSecretCommand(tls: LocalTls, namespace: string): string {
  const fromFiles = kubernetesSecretFiles(tls).map(([key, file]) => `  --from-file=${shellQuote(`${key}=${file}`)} \\`);
  return [`kubectl -n ${namespace} create secret generic ${KUBERNETES_SECRET} \\`, ...fromFiles, `  --dry-run=client -o yaml | kubectl -n ${namespace} apply -f -`].join('\n');
}

/** The DNS and IP subjectAltNames of a certificate, as written (DNS:name, IP:address). */
export function subjectAltHosts(certificate: X509Certificate): string[] {
  return (certificate.subjectAltName ?? '')
    .split(', ')
    .flatMap((entry) => {
      const dns = /^DNS:(.*)$/.exec(entry);
      if (dns !== null) return [`DNS:${dns[1] ?? ''}`];
      const ip = /^IP Address:(.*)$/.exec(entry);
      return ip !== null ? [`IP:${ip[1] ?? ''}`] : [];
    });
}

export const certsCommand: CommandSpec = {
  path: ['certs'],
  summary: 'make a throwaway CA and certificates (nodes, admin, client) in DIR/tls with the openssl command',
  options: [
    { name: 'dir', kind: 'string', valueName: 'DIR', default: '.', description: 'where tls/ is written' },
    { name: 'service-id', kind: 'string', valueName: 'ID', default: 'scmservice', description: 'the SCM service (ozone.scm.service.ids) the nodes belong to' },
    { name: 'nodes', kind: 'string', valueName: 'ID[,ID…]', default: 'scm1,scm2,scm3', description: 'node ids; each is also the host name its certificate names (without --kubernetes-namespace)' },
    { name: 'key-mode', kind: 'string', valueName: 'OCTAL', default: '0600', description: 'permissions of the key files (0644 lets a container user other than yours read them)' },
    {
      name: 'kubernetes-namespace',
      kind: 'string',
      valueName: 'NS',
      description: 'name each node by its pod DNS name <node>.<service>.NS.svc (deploy/kubernetes/secure/) and print the kubectl command that stores the files in the Secret scm-tls',
    },
    { name: 'kubernetes-service', kind: 'string', valueName: 'NAME', default: 'scm', description: 'the headless Service of the pods (with --kubernetes-namespace)' },
    { name: 'cluster-domain', kind: 'string', valueName: 'DOMAIN', default: 'cluster.local', description: "the Kubernetes cluster's DNS domain, also named (with --kubernetes-namespace)" },
  ],
  async run(ctx) {
    const serviceId = ctx.requiredString('service-id');
    const nodeIds = parseList(ctx.requiredString('nodes'));
    for (const id of [serviceId, ...nodeIds]) {
      if (!ID_RE.test(id)) throw new UsageError(`${JSON.stringify(id)} is not a valid id (letters, digits, "_" and "-")`, ctx.command);
    }
    if (nodeIds.length === 0) throw new UsageError('--nodes names no node', ctx.command);
    const modeText = ctx.requiredString('key-mode');
    if (!/^0?[0-7]{3}$/.test(modeText)) throw new UsageError(`--key-mode must be octal permissions such as 0600, got ${JSON.stringify(modeText)}`, ctx.command);
    const namespace = ctx.string('kubernetes-namespace');
    let kubernetes: KubernetesNames | undefined;
    if (namespace !== undefined) {
      kubernetes = { namespace, service: ctx.requiredString('kubernetes-service'), clusterDomain: ctx.requiredString('cluster-domain') };
      for (const [flag, value] of [['--kubernetes-namespace', kubernetes.namespace], ['--kubernetes-service', kubernetes.service]] as const) {
        if (!DNS_LABEL_RE.test(value)) throw new UsageError(`${flag} must be a DNS label (lower-case letters, digits and "-"), got ${JSON.stringify(value)}`, ctx.command);
      }
      if (!DNS_NAME_RE.test(kubernetes.clusterDomain)) throw new UsageError(`--cluster-domain must be a DNS name, got ${JSON.stringify(kubernetes.clusterDomain)}`, ctx.command);
      // A node id is a host name label here: StatefulSet pod names are, and upper case or "_" is not.
      for (const id of nodeIds) {
        if (!DNS_LABEL_RE.test(id)) throw new UsageError(`node id ${JSON.stringify(id)} cannot be a pod name (a DNS label)`, ctx.command);
      }
    }
    const hosts = (nodeId: string): string[] => (kubernetes !== undefined ? kubernetesHosts(nodeId, kubernetes) : [nodeId, 'localhost', '127.0.0.1']);
    const tls = await ensureLocalCertificates({ dir: resolve(ctx.requiredString('dir')), serviceId, nodeIds, hosts, keyMode: parseInt(modeText, 8) });
    // A certificate kept from an earlier run must name what this run asks for (another namespace, say).
    for (const [nodeId, files] of tls.nodes) {
      const names = subjectAltHosts(new X509Certificate(await readFile(files.cert)));
      const missing = hosts(nodeId).filter((h) => !names.includes(isIP(h) !== 0 ? `IP:${h}` : `DNS:${h}`));
      if (missing.length > 0) {
        throw new Error(`${files.cert} was kept from an earlier run and names ${names.join(', ') || 'no host'}, not ${missing.join(', ')}: remove it and its key (or all of ${tls.dir}) and run again`);
      }
    }
    ctx.io.stdout(
      `${tls.created ? 'made' : 'found'} in ${tls.dir}: ca.crt (the CA), ${nodeIds.map((id) => `${id}.crt`).join(', ')} (URI:scm://${serviceId}/<node>, ${kubernetes !== undefined ? `DNS:<node>.${kubernetes.service}.${kubernetes.namespace}.svc` : 'DNS:<node>, localhost, 127.0.0.1'}), admin.crt (list "admin" in ozone.administrators), client.crt (not an administrator), each with its .key\n`,
    );
    if (kubernetes !== undefined) {
      ctx.io.stdout(`\nStore them in the Secret ${KUBERNETES_SECRET} (the CA's key stays here), now and after each renewal:\n\n${kubernetesSecretCommand(tls, kubernetes.namespace)}\n`);
    }
    return EXIT_OK;
  },
};
