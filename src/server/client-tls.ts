// The channel a client makes to the SCMs, from the configuration: plaintext unless the service runs
// TLS (ozone.security.enabled, hdds.grpc.tls.enabled); then the cluster CA as the only trust
// anchor, a server that must be an SCM node of the service, and the identity this client presents:
// the client certificate (ozone.scm.client.x509.*) for admin commands, the node's own certificate
// for what a node does before it runs (`scm bootstrap` asking for the cluster id).
import { KEY, requireSelf, type ScmConfig, type SecurityConfig } from './config.js';
import { TlsMaterial, type ChannelSecurity } from './tls.js';

export type ChannelFactory = (address: string) => ChannelSecurity;

/** The admin identity's channel; undefined in plaintext. Throws naming the keys when TLS is on without one. */
export function clientChannel(security: SecurityConfig, serviceId: string): ChannelFactory | undefined {
  if (!security.enabled) return undefined;
  if (security.clientTls === null) {
    throw new Error(
      `the SCMs run TLS (${KEY.securityEnabled}, ${KEY.grpcTlsEnabled}), so a client must present a certificate of the cluster CA: set ${KEY.clientCertificateFile} and ${KEY.clientPrivateKeyFile} (with ${KEY.caCertificateFile})`,
    );
  }
  // A command runs for seconds: its files are read once, not watched.
  const material = TlsMaterial.load(security.clientTls, { kind: 'client' });
  return (address) => material.channel(address, { serviceId });
}

/** The node's own identity, for calls it makes before it runs; undefined in plaintext. */
export function nodeChannel(config: ScmConfig): ChannelFactory | undefined {
  const files = config.security.tls;
  if (files === null) return undefined;
  const self = requireSelf(config);
  const material = TlsMaterial.load(files, { kind: 'node', serviceId: config.serviceId, nodeId: self.nodeId, host: self.host });
  return (address) => material.channel(address, { serviceId: config.serviceId });
}
