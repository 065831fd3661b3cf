// The few calls a node makes to its peers' client ports: their cluster id (at start-up), their
// own role (GetScmRoles), their hash at a consistency marker, and, for a node that ran
// `scm bootstrap`, asking the group to add it.
// Single short attempts over the client API's wire format (src/api), so the server does not depend
// on the TypeScript client: retries belong to whoever calls (the join is re-tried every second).
import * as grpc from '@grpc/grpc-js';
import { LEADER_ADDRESS_METADATA, NOT_LEADER_METADATA, ScmClientServiceClient } from '../api/client-protocol.js';
import { encodeMember, parseClusterInfo, parseConsistencyHash, parseRole, wireList, type Wire } from '../api/client-codec.js';
import type { ClusterInfo, ConsistencyHash, ScmMember, ScmNodeRole } from '../api/scm-api.js';
import { grpcChannelOptions } from '../grpc-options.js';

type UnaryMethod = (request: Wire, metadata: grpc.Metadata, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, response?: Wire) => void) => void;

function metadataValue(metadata: grpc.Metadata | undefined, key: string): string | undefined {
  const value = metadata?.get(key)[0];
  if (value === undefined) return undefined;
  return typeof value === 'string' ? value : value.toString('utf8');
}

export class PeerCalls {
  private readonly stubs = new Map<string, grpc.Client>();
  private nextCallId = 1;
  private closed = false;

  constructor(
    /** Names this node's own calls in the peers' retry caches. */
    private readonly clientId: string,
    private readonly timeoutMs: number,
    /**
     * With TLS, the node's own certificate and the cluster CA: `nodeId` given, the server must be
     * that node; otherwise any SCM of the service. Plaintext when not given.
     */
    private readonly channel?: (address: string, nodeId?: string) => { readonly credentials: grpc.ChannelCredentials; readonly options: grpc.ChannelOptions },
  ) {}

  private call(address: string, method: string, request: Wire, timeoutMs = this.timeoutMs, waitForReady = false, nodeId?: string): Promise<Wire> {
    if (this.closed) return Promise.reject(new Error('peer calls are closed'));
    const key = nodeId === undefined ? address : `${nodeId}@${address}`;
    let stub = this.stubs.get(key);
    if (stub === undefined) {
      const channel = this.channel?.(address, nodeId) ?? { credentials: grpc.credentials.createInsecure(), options: {} };
      stub = new ScmClientServiceClient(address, channel.credentials, grpcChannelOptions({ ...channel.options, 'grpc.initial_reconnect_backoff_ms': 100, 'grpc.max_reconnect_backoff_ms': 1000 }));
      this.stubs.set(key, stub);
    }
    const fn = (stub as unknown as Record<string, UnaryMethod>)[method];
    if (fn === undefined) return Promise.reject(new Error(`internal: no RPC ${method}`));
    return new Promise((resolve, reject) => {
      fn.call(stub, request, new grpc.Metadata({ waitForReady }), { deadline: Date.now() + timeoutMs }, (error, response) => {
        if (error !== null) reject(error);
        else resolve(response ?? {});
      });
    });
  }

  async clusterInfo(address: string): Promise<ClusterInfo> {
    return parseClusterInfo(await this.call(address, 'GetClusterInfo', {}));
  }

  /** The peer's report of itself, or undefined if it does not know itself by `nodeId`. */
  async ownRole(address: string, nodeId: string): Promise<ScmNodeRole | undefined> {
    const roles = wireList(await this.call(address, 'GetScmRoles', { selfOnly: true }), 'nodes').map(parseRole);
    return roles.find((r) => r.nodeId === nodeId);
  }

  /**
   * Member `nodeId`'s scm.db hash right after the consistency marker at `index` (it may wait to
   * apply it). With TLS the answer must come from that very node: another node of the service at a
   * wrong address would otherwise vouch for it.
   */
  async consistencyHash(nodeId: string, address: string, index: number, timeoutMs: number): Promise<ConsistencyHash> {
    // Waits for a connection within the deadline: a channel that failed to connect earlier (the
    // peer was starting) would otherwise fail the call at once, and the peer count as unreachable.
    return parseConsistencyHash(await this.call(address, 'GetConsistencyHash', { index: String(index) }, timeoutMs, true, nodeId));
  }

  /** Asks each address in turn to add `member`, going to the leader a follower names. */
  async addMember(addresses: readonly string[], member: ScmMember): Promise<void> {
    const request: Wire = { clientId: this.clientId, callId: String(this.nextCallId++), ...encodeMember(member) };
    let lastError: Error = new Error('no SCM address to ask');
    const tried = new Set<string>();
    const queue = [...addresses];
    for (let address = queue.shift(); address !== undefined; address = queue.shift()) {
      if (tried.has(address)) continue;
      tried.add(address);
      try {
        await this.call(address, 'AddScm', request);
        return;
      } catch (err) {
        lastError = err as Error;
        const e = err as grpc.ServiceError;
        const hint = metadataValue(e.metadata, NOT_LEADER_METADATA) !== undefined ? metadataValue(e.metadata, LEADER_ADDRESS_METADATA) : undefined;
        if (hint !== undefined && hint !== '') queue.unshift(hint);
      }
    }
    throw lastError;
  }

  close(): void {
    this.closed = true;
    for (const stub of this.stubs.values()) stub.close();
    this.stubs.clear();
  }
}
