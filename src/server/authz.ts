// Who may do what, once TLS has established that a caller holds a certificate of the cluster CA
// (README, "Security"):
// - Ratis port: an SCM node of this service that this node takes Raft messages from (a member, or
//   a configured SCM), and the stream's `scm-from-id` must be that very node;
// - InterSCM port (checkpoint downloads): a member of the group, or an administrator (a backup,
//   `scm admin snapshot save`); the whole scm.db is no one else's business;
// - client port: reads and allocations for any certificate of the cluster CA; the admin mutations
//   (ADMIN_MUTATIONS) for the names ozone.administrators lists (`*` for everyone), and AddScm also
//   for a node adding itself (what `scm start` does after `scm bootstrap`) when it is one of the
//   SCMs this node's configuration names and adds itself at an address its certificate names; a
//   node the configuration does not know needs an administrator.
// A refusal is PERMISSION_DENIED naming the identity and the call, counted in
// scm_auth_refusals_total{port,reason}, and logged once per port, caller and reason (a flood must
// not become a flood of log lines). Admin mutations, allowed or refused, go to the audit log.
//
// In plaintext there is no identity: every call is allowed, and the node warns about it at start.
import * as grpc from '@grpc/grpc-js';
import type { AuthPort, AuthRefusalReason } from '../metrics/node-metrics.js';
import type { AuditLog } from './audit-log.js';
import { callIdentity, describeIdentity, type AuthenticatedCall, type CertificateIdentity } from './identity.js';
import { hostOf } from './tls.js';
import { KEY } from './config.js';

/** The client calls that change the cluster's membership or state beyond allocating (Ozone's checkAdminAccess). */
export const ADMIN_MUTATIONS: ReadonlySet<string> = new Set([
  'AddScm',
  'RemoveScm',
  'TransferLeadership',
  'UpdateContainerState',
  'CreatePipeline',
  'ClosePipeline',
  'RegisterDatanode',
  // Proposes a marker entry to the log: an operator's verb, not a read.
  'CheckConsistency',
]);

/**
 * Client calls only the members' own nodes (and administrators) make: GetConsistencyHash may wait
 * for a marker to be applied, so any certificate could otherwise tie up the client call slots.
 */
export const MEMBER_CALLS: ReadonlySet<string> = new Set(['GetConsistencyHash']);

/** How the audit log names a checkpoint download. */
export const DOWNLOAD_METHOD = 'DownloadCheckpoint';

/** ozone.administrators: certificate subject names, or `*` for every certificate of the cluster CA. */
export class Administrators {
  private readonly names: ReadonlySet<string>;
  readonly everyone: boolean;

  constructor(list: readonly string[]) {
    this.everyone = list.includes('*');
    this.names = new Set(list.filter((name) => name !== '*'));
  }

  includes(name: string | undefined): boolean {
    return this.everyone || (name !== undefined && this.names.has(name));
  }

  get empty(): boolean {
    return !this.everyone && this.names.size === 0;
  }

  toString(): string {
    return this.everyone ? '* (every certificate of the cluster CA)' : [...this.names].join(', ');
  }
}

export interface Refusal {
  readonly reason: AuthRefusalReason;
  readonly message: string;
}

/**
 * The rule of the peer ports: the certificate names a node of `serviceId` that `admitted` accepts,
 * and, when the caller claims an id (a Raft stream's `scm-from-id`), that same node.
 */
export function checkPeerNode(identity: CertificateIdentity | undefined, serviceId: string, admitted: (nodeId: string) => boolean, what: string, claimed?: string): Refusal | undefined {
  if (identity === undefined) return { reason: 'no_certificate', message: `${what} refused: the connection carries no client certificate` };
  const node = identity.node;
  if (node === undefined) {
    return { reason: 'not_a_node', message: `${what} refused for ${describeIdentity(identity)}: not an SCM node's certificate (${identity.nodeProblem ?? `no URI:scm://${serviceId}/<nodeId> subjectAltName`})` };
  }
  if (node.serviceId !== serviceId) return { reason: 'other_service', message: `${what} refused for ${describeIdentity(identity)}: this node serves ${serviceId}` };
  if (claimed !== undefined && claimed !== node.nodeId) {
    return { reason: 'sender_mismatch', message: `${what} refused for ${describeIdentity(identity)}: the stream claims to come from ${claimed || '(nobody)'}` };
  }
  if (!admitted(node.nodeId)) return { reason: 'non_member', message: `${what} refused for ${describeIdentity(identity)}: ${node.nodeId} is not a member of this node's configuration` };
  return undefined;
}

/** Counts refusals and logs each kind once per port and caller. */
export class RefusalReporter {
  private readonly warned = new Set<string>();
  private full = false;

  constructor(
    private readonly refused: (port: AuthPort, reason: AuthRefusalReason) => void,
    private readonly warn: (fields: Record<string, unknown>, message: string) => void,
    /** Distinct (port, caller, reason) kinds remembered; beyond it, refusals are only counted. */
    private readonly maxKinds = 1024,
  ) {}

  report(port: AuthPort, caller: string, peer: string, refusal: Refusal): void {
    this.refused(port, refusal.reason);
    const key = `${port}\u0000${caller}\u0000${refusal.reason}`;
    if (this.warned.has(key) || this.full) return;
    if (this.warned.size >= this.maxKinds) {
      this.full = true;
      this.warn({ event: 'auth_refused', port }, `refused callers of ${this.maxKinds} different kinds; further refusals are only counted (scm_auth_refusals_total)`);
      return;
    }
    this.warned.add(key);
    this.warn({ event: 'auth_refused', port, caller, peer, reason: refusal.reason }, `${refusal.message} (from ${peer}); further refusals like it are only counted`);
  }
}

/** What the client service does with a call: refuse it, or report its outcome when it ends. */
export type ClientCallDecision = { readonly refused: Partial<grpc.StatusObject> } | { readonly finished: (code: grpc.status) => void } | undefined;

/**
 * A client call as the guard sees it: its TLS state, its caller's address, the request as sent (for
 * an AllocateContainer whose bytes were read straight into the validated request, that request,
 * frozen: callId a number). A guard reads the request; it may not change it.
 */
export interface GuardedCall extends AuthenticatedCall {
  getPeer(): string;
  readonly request: unknown;
}

export interface AuthorizerOptions {
  /** Whether the ports run mutual TLS; without it there is no identity and everything is allowed. */
  readonly tls: boolean;
  readonly serviceId: string;
  readonly administrators: Administrators;
  /** Whom this node takes Raft messages from: members and configured SCMs. */
  readonly raftPeer: (nodeId: string) => boolean;
  /** Members of the latest or the committed configuration. */
  readonly member: (nodeId: string) => boolean;
  /** The SCMs of this node's configuration file (ozone.scm.nodes.<service>). */
  readonly configured: (nodeId: string) => boolean;
  readonly reporter: RefusalReporter;
  readonly audit: AuditLog;
}

const denied = (message: string): Partial<grpc.StatusObject> => ({ code: grpc.status.PERMISSION_DENIED, details: message, metadata: new grpc.Metadata() });

/** The request's fields for the audit log, without the retry identifiers. */
function auditParams(request: unknown): Record<string, unknown> {
  if (typeof request !== 'object' || request === null) return {};
  const { clientId: _clientId, callId: _callId, ...rest } = request as Record<string, unknown>;
  return rest;
}

export class Authorizer {
  constructor(private readonly options: AuthorizerOptions) {}

  get tls(): boolean {
    return this.options.tls;
  }

  /** A Raft stream opening: a refusal, or undefined when its sender may stream to this node. */
  raftStream(call: AuthenticatedCall & { getPeer(): string }, claimedFrom: string): Refusal | undefined {
    if (!this.options.tls) return undefined;
    const identity = callIdentity(call);
    const refusal = checkPeerNode(identity, this.options.serviceId, this.options.raftPeer, 'Raft stream', claimedFrom);
    if (refusal !== undefined) this.options.reporter.report('ratis', this.callerKey(identity), call.getPeer(), refusal);
    return refusal;
  }

  /** A message naming another sender than the certificate of its (authenticated) stream. */
  raftSender(peer: string, detail: string): Refusal {
    const refusal: Refusal = { reason: 'sender_mismatch', message: `Raft stream of node ${peer} refused: ${detail}` };
    this.options.reporter.report('ratis', `node:${peer}`, peer, refusal);
    return refusal;
  }

  /** A checkpoint download: members (catch-up) and administrators (backups) only. */
  download(call: AuthenticatedCall & { getPeer(): string }): Refusal | undefined {
    if (!this.options.tls) return undefined;
    const identity = callIdentity(call);
    const asMember = checkPeerNode(identity, this.options.serviceId, this.options.member, 'checkpoint download');
    if (asMember === undefined) return undefined;
    const admin = identity !== undefined && this.options.administrators.includes(identity.name);
    const refusal: Refusal | undefined = admin
      ? undefined
      : asMember.reason === 'not_a_node'
        ? { reason: 'not_admin', message: `checkpoint download refused for ${describeIdentity(identity)}: only members of the group and the names in ${KEY.administrators} may download scm.db` }
        : asMember;
    this.options.audit.record({
      method: DOWNLOAD_METHOD,
      ...this.auditIdentity(identity),
      peer: call.getPeer(),
      allowed: refusal === undefined,
      reason: refusal === undefined ? 'administrator' : refusal.message,
      outcome: refusal === undefined ? 'STARTED' : 'PERMISSION_DENIED',
      params: {},
    });
    if (refusal !== undefined) this.options.reporter.report('grpc', this.callerKey(identity), call.getPeer(), refusal);
    return refusal;
  }

  /** A client call: reads pass untouched; member calls and admin mutations are checked, the latter audited. */
  clientCall(method: string, call: GuardedCall): ClientCallDecision {
    if (MEMBER_CALLS.has(method)) return this.memberCall(method, call);
    if (!ADMIN_MUTATIONS.has(method)) return undefined;
    const params = auditParams(call.request);
    const peer = call.getPeer();
    if (!this.options.tls) {
      return { finished: (code) => this.options.audit.record({ method, identity: null, node: null, fingerprint: null, peer, allowed: true, reason: 'plaintext: no authentication', outcome: grpc.status[code] ?? String(code), params }) };
    }
    const identity = callIdentity(call);
    const allowedAs = this.adminReason(method, identity, params);
    if (allowedAs === undefined) {
      const refusal: Refusal = identity === undefined
        ? { reason: 'no_certificate', message: `${method} refused: the connection carries no client certificate` }
        : {
            reason: 'not_admin',
            message: `${method} refused for ${describeIdentity(identity)}: not an administrator (${KEY.administrators})${method === 'AddScm' ? ', and a node may add only itself, if configured here, at an address its certificate names' : ''}`,
          };
      this.options.audit.record({ method, ...this.auditIdentity(identity), peer, allowed: false, reason: refusal.message, outcome: 'PERMISSION_DENIED', params });
      this.options.reporter.report('client', this.callerKey(identity), peer, refusal);
      return { refused: denied(refusal.message) };
    }
    return { finished: (code) => this.options.audit.record({ method, ...this.auditIdentity(identity), peer, allowed: true, reason: allowedAs, outcome: grpc.status[code] ?? String(code), params }) };
  }

  /** A member node (or an administrator) may make `method`; in plaintext anyone may. */
  private memberCall(method: string, call: GuardedCall): ClientCallDecision {
    if (!this.options.tls) return undefined;
    const identity = callIdentity(call);
    if (identity !== undefined && this.options.administrators.includes(identity.name)) return undefined;
    const refusal = checkPeerNode(identity, this.options.serviceId, this.options.member, method);
    if (refusal === undefined) return undefined;
    this.options.reporter.report('client', this.callerKey(identity), call.getPeer(), refusal);
    return { refused: denied(refusal.message) };
  }

  /** Why `identity` may run `method`, or undefined when it may not. */
  private adminReason(method: string, identity: CertificateIdentity | undefined, params: Record<string, unknown>): string | undefined {
    if (identity === undefined) return undefined;
    if (this.options.administrators.includes(identity.name)) return 'administrator';
    const node = identity.node;
    if (method === 'AddScm' && node !== undefined && node.serviceId === this.options.serviceId && params['nodeId'] === node.nodeId && this.options.configured(node.nodeId) && typeof params['address'] === 'string') {
      const host = hostOf(params['address']).toLowerCase();
      if (identity.ipAddresses.includes(host) || identity.dnsNames.some((name) => name.toLowerCase() === host)) return 'node adding itself';
    }
    return undefined;
  }

  private callerKey(identity: CertificateIdentity | undefined): string {
    if (identity === undefined) return 'plaintext';
    return identity.node !== undefined ? `node:${identity.node.serviceId}/${identity.node.nodeId}` : `name:${identity.name ?? identity.fingerprint}`;
  }

  private auditIdentity(identity: CertificateIdentity | undefined): { identity: string | null; node: string | null; fingerprint: string | null } {
    return { identity: identity?.name ?? null, node: identity?.node?.nodeId ?? null, fingerprint: identity?.fingerprint ?? null };
  }
}
