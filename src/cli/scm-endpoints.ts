// Where the admin commands find the SCMs: `--scm host:port,…` when given; else the service in the
// configuration (`--config`, `$OZONE_CONF_DIR`, `OZONE-SITE.XML_` variables; `--service-id` picks
// one of several), as `ozone admin` does; else 127.0.0.1:9860, one SCM on this host. How to reach
// them comes from the configuration whenever there is one (with --scm too): plaintext, or TLS with
// the client identity it names (ozone.scm.client.x509.*).
import { DEFAULT_SCM_ADDRESS, parseAddressList } from '../client/scm-client.js';
import { loadServiceAddresses } from '../server/service-addresses.js';
import { clientChannel, type ChannelFactory } from '../server/client-tls.js';
import { UsageError, type CommandContext } from './command.js';
import { environmentConfiguresScm, siteXmlPath } from './site-config.js';

export interface ScmEndpoints {
  readonly clientAddresses: readonly string[];
  /** Where the addresses came from, for messages. */
  readonly source: string;
  /** The InterSCM (checkpoint) address of a node, when the configuration names it. */
  grpcAddressOf(nodeId: string): string | undefined;
  /** How to connect (TLS and the client identity); undefined for plaintext. */
  readonly channel: ChannelFactory | undefined;
}

export function resolveScmEndpoints(ctx: CommandContext): ScmEndpoints {
  const explicit = ctx.string('scm');
  const serviceId = ctx.string('service-id');
  if (explicit !== undefined && serviceId !== undefined) throw new UsageError('give either --scm or --service-id, not both', ctx.command);
  const file = siteXmlPath(ctx);
  const configured = file !== undefined || environmentConfiguresScm(ctx.io.env);
  const service = configured ? loadServiceAddresses({ ...(file !== undefined ? { siteXmlPath: file } : {}), env: ctx.io.env, ...(serviceId !== undefined ? { serviceId } : {}) }) : undefined;
  const channel = service !== undefined ? clientChannel(service.security, service.serviceId) : undefined;
  if (explicit !== undefined) {
    let clientAddresses: string[];
    try {
      clientAddresses = parseAddressList(explicit);
    } catch (err) {
      throw new UsageError(`--scm: ${(err as Error).message}`, ctx.command);
    }
    return { clientAddresses, source: '--scm', grpcAddressOf: () => undefined, channel };
  }
  if (service === undefined) {
    if (serviceId !== undefined) {
      throw new UsageError('--service-id needs a configuration naming the service (--config FILE or $OZONE_CONF_DIR/ozone-site.xml)', ctx.command);
    }
    return { clientAddresses: [DEFAULT_SCM_ADDRESS], source: 'the default address', grpcAddressOf: () => undefined, channel };
  }
  const grpc = new Map(service.nodes.map((node) => [node.nodeId, node.grpcAddress]));
  return {
    clientAddresses: service.nodes.map((node) => node.clientAddress),
    source: `service ${service.serviceId} in ${file ?? 'the OZONE-SITE.XML_ environment variables'}`,
    grpcAddressOf: (nodeId) => grpc.get(nodeId),
    channel,
  };
}
