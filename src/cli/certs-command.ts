// `scm certs`: the throwaway CA and certificates of `scm cluster --tls`, for nodes that run
// elsewhere: the docker-compose TLS variant (docker-compose.tls.yml), or a first try on a few
// hosts. Each node's certificate names it as URI:scm://<service>/<node> and as a host name (the
// node id, which is its address in docker-compose and a Kubernetes headless service), plus
// localhost and 127.0.0.1; admin.crt is the administrator (list `admin` in ozone.administrators),
// client.crt a certificate that is not one. An existing CA is kept. For anything that lasts, use
// your organisation's CA: README, "Security", says what a certificate must name.
import { parseList } from '../server/config-values.js';
import { ID_PATTERN_SOURCE } from '../server/config-keys.js';
import { EXIT_OK, UsageError, type CommandSpec } from './command.js';
import { ensureLocalCertificates } from './local-certificates.js';
import { resolve } from 'node:path';

const ID_RE = new RegExp(`^${ID_PATTERN_SOURCE}$`);

export const certsCommand: CommandSpec = {
  path: ['certs'],
  summary: 'make a throwaway CA and certificates (nodes, admin, client) in DIR/tls with the openssl command',
  options: [
    { name: 'dir', kind: 'string', valueName: 'DIR', default: '.', description: 'where tls/ is written' },
    { name: 'service-id', kind: 'string', valueName: 'ID', default: 'scmservice', description: 'the SCM service (ozone.scm.service.ids) the nodes belong to' },
    { name: 'nodes', kind: 'string', valueName: 'ID[,ID…]', default: 'scm1,scm2,scm3', description: 'node ids; each is also the host name its certificate names' },
    { name: 'key-mode', kind: 'string', valueName: 'OCTAL', default: '0600', description: 'permissions of the key files (0644 lets a container user other than yours read them)' },
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
    const tls = await ensureLocalCertificates({
      dir: resolve(ctx.requiredString('dir')),
      serviceId,
      nodeIds,
      hosts: (nodeId) => [nodeId, 'localhost', '127.0.0.1'],
      keyMode: parseInt(modeText, 8),
    });
    ctx.io.stdout(
      `${tls.created ? 'made' : 'found'} in ${tls.dir}: ca.crt (the CA), ${nodeIds.map((id) => `${id}.crt`).join(', ')} (URI:scm://${serviceId}/<node>), admin.crt (list "admin" in ozone.administrators), client.crt (not an administrator), each with its .key\n`,
    );
    return EXIT_OK;
  },
};
