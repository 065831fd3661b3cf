// Where a client finds the SCMs of a service, as Ozone's clients do: from ozone-site.xml (and the
// OZONE-SITE.XML_ environment variables), by `ozone.scm.service.ids`, `ozone.scm.nodes.<service>`
// and each node's `ozone.scm.address` and ports. The same loader and key rules as the node's own
// configuration, so a client and a node can never read one file differently.
import { tmpdir } from 'node:os';
import { KEY, loadConfig, type SecurityConfig } from './config.js';

export interface ServiceNodeAddresses {
  readonly nodeId: string;
  /** host:port of the client service (ozone.scm.client.port). */
  readonly clientAddress: string;
  /** host:port of the InterSCM service (ozone.scm.grpc.port), which serves checkpoints. */
  readonly grpcAddress: string;
}

export interface ServiceAddresses {
  readonly serviceId: string;
  readonly nodes: readonly ServiceNodeAddresses[];
  /** Whether the service runs TLS, and the identity a client presents (client-tls.ts). */
  readonly security: SecurityConfig;
}

export interface ServiceAddressOptions {
  readonly siteXmlPath?: string;
  readonly env: NodeJS.ProcessEnv;
  /** The service to use when the file names several (Ozone's `--service-id`). */
  readonly serviceId?: string;
}

export function loadServiceAddresses(options: ServiceAddressOptions): ServiceAddresses {
  const overrides: Record<string, string> = {
    // loadConfig validates a node's whole configuration, and a node needs a metadata directory; a
    // client reads no directory, and a client's configuration need not name one. This value only
    // satisfies that check: nothing here reads or creates it.
    [KEY.metadataDirs]: tmpdir(),
  };
  if (options.serviceId !== undefined) overrides[KEY.defaultServiceId] = options.serviceId;
  const config = loadConfig({ ...(options.siteXmlPath !== undefined ? { siteXmlPath: options.siteXmlPath } : {}), env: options.env, overrides });
  // With a single service, loadConfig ignores ozone.scm.default.service.id: check the choice here.
  if (options.serviceId !== undefined && config.serviceId !== options.serviceId) {
    throw new Error(`service ${options.serviceId} is not configured: ${KEY.serviceIds} names ${config.serviceId}`);
  }
  return {
    serviceId: config.serviceId,
    nodes: config.peers.map((peer) => ({ nodeId: peer.nodeId, clientAddress: peer.clientAddress, grpcAddress: peer.grpcAddress })),
    security: config.security,
  };
}
