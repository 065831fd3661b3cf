// A node's security set-up, in one place for scm-node.ts: its TLS material (checked at start,
// reloaded when the files change), the credentials of its servers and of every connection it makes
// (to a given peer, or to any SCM of the service), the audit log, and the warnings an operator must
// see at start: plaintext, or TLS without administrators.
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import { AuditLog } from './audit-log.js';
import { Administrators } from './authz.js';
import { KEY, type ScmConfig, type ScmPeerConfig } from './config.js';
import type { ConnectionOptions } from 'node:tls';
import type { RaftStreamServerTls } from './raft-stream-server.js';
import { insecureChannel, SERVER_TLS_HANDSHAKE_TIMEOUT_MS, TlsMaterial, type ChannelSecurity } from './tls.js';

export class NodeSecurity {
  readonly administrators: Administrators;
  readonly audit: AuditLog;

  private constructor(
    private readonly config: ScmConfig,
    /** Undefined in plaintext. */
    readonly material: TlsMaterial | undefined,
    log: Logger,
  ) {
    this.administrators = new Administrators(config.security.administrators);
    this.audit = new AuditLog(config.security.auditLogFile, requireNodeId(config), (err) =>
      log.error({ err, event: 'audit_log_failed', file: config.security.auditLogFile }, `cannot write the audit log ${config.security.auditLogFile}: ${err.message}; admin mutations are no longer audited`),
    );
  }

  /**
   * Loads the node's certificate and key (a TlsMaterialError names the file and what is wrong) and
   * starts watching them; in plaintext, warns once that anyone who reaches the ports runs the cluster.
   */
  static start(config: ScmConfig, self: ScmPeerConfig, log: Logger): NodeSecurity {
    const files = config.security.tls;
    if (files === null) {
      log.warn(
        { event: 'plaintext', ports: [self.clientPort, self.ratisPort, self.grpcPort] },
        `TLS is off: anyone who can reach the client, Ratis and InterSCM ports (${self.clientPort}, ${self.ratisPort}, ${self.grpcPort}) can read scm.db, change the group and forge Raft messages; for anything but local use set ${KEY.securityEnabled} and ${KEY.grpcTlsEnabled} with the certificate keys (README, "Security")`,
      );
      return new NodeSecurity(config, undefined, log);
    }
    const material = TlsMaterial.load(files, { kind: 'node', serviceId: config.serviceId, nodeId: self.nodeId, host: self.host }, {
      onReloaded: (previous, current) =>
        log.info(
          { event: 'tls_reloaded', certificate: files.certFile, previous: previous.identity.fingerprint, current: current.identity.fingerprint, notAfter: current.notAfter.toISOString() },
          `TLS certificate reloaded from ${files.certFile} (valid until ${current.notAfter.toISOString()}); new connections use it, open ones go on`,
        ),
      onReloadFailed: (err) =>
        log.warn({ event: 'tls_reload_failed', err }, `the TLS files changed but cannot be used, so the previous certificate stays in use: ${err.message}`),
    }).watch();
    const security = new NodeSecurity(config, material, log);
    log.info(
      { event: 'tls', certificate: files.certFile, ca: files.caFile, notAfter: material.current.notAfter.toISOString(), administrators: config.security.administrators },
      `mutual TLS on the client, Ratis and InterSCM ports as node ${self.nodeId} (certificate valid until ${material.current.notAfter.toISOString()})`,
    );
    if (security.administrators.empty) {
      log.warn({ event: 'no_administrators' }, `${KEY.administrators} is not set: every admin mutation (AddScm by an operator, RemoveScm, TransferLeadership, pipeline, container and datanode changes) will be refused`);
    }
    return security;
  }

  get tls(): boolean {
    return this.material !== undefined;
  }

  serverCredentials(): grpc.ServerCredentials {
    return this.material?.serverCredentials() ?? grpc.ServerCredentials.createInsecure();
  }

  /** A connection to peer `nodeId` at `address`: the server must be that node. */
  peerChannel(nodeId: string, address: string): ChannelSecurity {
    return this.material?.channel(address, { serviceId: this.config.serviceId, nodeId }) ?? insecureChannel();
  }

  /** TLS options of the Raft stream to peer `nodeId` at `address` (the server must be that node); undefined in plaintext. */
  raftStreamTls(nodeId: string, address: string): ConnectionOptions | undefined {
    return this.material?.connectOptions(address, { serviceId: this.config.serviceId, nodeId });
  }

  /** The Ratis port's TLS (undefined in plaintext): the node's material, followed across reloads. */
  raftStreamServerTls(): RaftStreamServerTls | undefined {
    const material = this.material;
    if (material === undefined) return undefined;
    return { contextOptions: () => material.secureContextOptions(), onChange: (listener) => material.onReload(listener), handshakeTimeoutMs: SERVER_TLS_HANDSHAKE_TIMEOUT_MS };
  }

  /** A connection to whichever SCM of the service answers at `address` (leader hints, downloads). */
  serviceChannel(address: string): ChannelSecurity {
    return this.material?.channel(address, { serviceId: this.config.serviceId }) ?? insecureChannel();
  }

  async close(): Promise<void> {
    this.material?.close();
    await this.audit.close();
  }
}

function requireNodeId(config: ScmConfig): string {
  if (config.nodeId === null) throw new Error('internal: a node without a node id');
  return config.nodeId;
}
