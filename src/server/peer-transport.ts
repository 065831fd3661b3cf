// Moves encoded Raft messages between SCM peers over gRPC on the Ratis port.
//
// One outbound client stream per peer, batched per event-loop turn, bounded in memory, re-opened
// with exponential backoff after any failure. Raft already tolerates loss, duplication and
// reordering, so when a peer is unreachable we drop the oldest queued messages instead of growing
// without bound: the leader's next heartbeat or append re-derives whatever the follower needs.
import * as grpc from '@grpc/grpc-js';
import { loadGrpcPackage } from '../api/proto-files.js';
import { grpcChannelOptions } from '../grpc-options.js';

export const CLUSTER_ID_METADATA = 'scm-cluster-id';
export const FROM_ID_METADATA = 'scm-from-id';

export interface RaftMessageBatch {
  messages: Uint8Array[];
}

type ResolvedOptions = Required<Omit<PeerTransportOptions, 'onWarning' | 'admitStream' | 'channel'>> & Pick<PeerTransportOptions, 'onWarning' | 'admitStream' | 'channel'>;

type StreamServiceClient = grpc.Client & {
  Stream(
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    callback: (err: grpc.ServiceError | null) => void,
  ): grpc.ClientWritableStream<RaftMessageBatch>;
};

const servicePackage = loadGrpcPackage('RaftPeerProtocol.proto');
const raftPackage = servicePackage['scm'] as grpc.GrpcObject;
const ServiceCtor = (raftPackage['raft'] as grpc.GrpcObject)['RaftPeerService'] as grpc.ServiceClientConstructor;

/** Keepalive to notice dead peers; fast reconnects. */
const PEER_CHANNEL_OPTIONS: grpc.ChannelOptions = {
  'grpc.keepalive_time_ms': 10_000,
  'grpc.keepalive_timeout_ms': 5_000,
  'grpc.keepalive_permit_without_calls': 1,
  'grpc.initial_reconnect_backoff_ms': 100,
  'grpc.max_reconnect_backoff_ms': 2_000,
};

export const DEFAULT_MAX_RAFT_MESSAGE_BYTES = 32 * 1024 * 1024;

/**
 * Channel options of every peer connection: messages up to the Raft port's cap (a garbage frame
 * larger than it is refused by gRPC before it is buffered), and keepalive to notice dead peers.
 */
export function peerChannelOptions(maxMessageBytes: number): grpc.ChannelOptions {
  return { ...PEER_CHANNEL_OPTIONS, 'grpc.max_send_message_length': maxMessageBytes, 'grpc.max_receive_message_length': maxMessageBytes };
}


/** Why a stream is ended: its gRPC status and a message naming the problem. */
export interface StreamRefusal {
  readonly code: grpc.status;
  readonly details: string;
}

/** How to reach one peer: credentials and channel options (plaintext when not given). */
export interface PeerChannel {
  readonly credentials: grpc.ChannelCredentials;
  readonly options: grpc.ChannelOptions;
}

export interface PeerTransportOptions {
  readonly selfId: string;
  readonly clusterId: string;
  /**
   * Called for every batch received from a peer of our cluster (`from`: the id its stream's
   * metadata names). Returning an error text ends that stream with INVALID_ARGUMENT, a refusal
   * with its own status.
   */
  readonly onMessages: (from: string, messages: readonly Uint8Array[]) => string | StreamRefusal | void;
  /**
   * Called when a stream opens, before anything else is looked at (with TLS: whether its
   * certificate may send as `from`); a refusal ends it at once.
   */
  readonly admitStream?: (from: string, call: grpc.ServerReadableStream<RaftMessageBatch, unknown>) => StreamRefusal | undefined;
  /** The credentials of the link to a peer (its id and Raft address); plaintext by default. */
  readonly channel?: (peerId: string, address: string) => PeerChannel;
  /** Largest message accepted or sent on the Raft port (a batch of appends); default 32 MiB. */
  readonly maxMessageBytes?: number;
  /** Connection problems worth an operator's attention (refused streams, foreign clusters). */
  readonly onWarning?: (message: string) => void;
  /** Per peer; beyond it the oldest queued messages are dropped. Default 64 MiB. */
  readonly maxQueuedBytes?: number;
  /** Largest batch written as one gRPC message. Default 4 MiB. */
  readonly maxBatchBytes?: number;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
}

export interface LinkStats {
  readonly connected: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  readonly droppedMessages: number;
  readonly sentMessages: number;
}

class OutboundLink {
  private readonly client: StreamServiceClient;
  private call: grpc.ClientWritableStream<RaftMessageBatch> | undefined;
  private queue: Uint8Array[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private waitingForDrain = false;
  private flushScheduled = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private backoffMs: number;
  private closed = false;
  droppedMessages = 0;
  sentMessages = 0;

  constructor(
    readonly peerId: string,
    readonly address: string,
    private readonly options: ResolvedOptions,
  ) {
    const channel = options.channel?.(peerId, address) ?? { credentials: grpc.credentials.createInsecure(), options: {} };
    this.client = new ServiceCtor(address, channel.credentials, grpcChannelOptions({ ...channel.options, ...peerChannelOptions(options.maxMessageBytes) })) as unknown as StreamServiceClient;
    this.backoffMs = options.initialBackoffMs;
  }

  enqueue(message: Uint8Array): void {
    if (this.closed) return;
    this.queue.push(message);
    this.queuedBytes += message.byteLength;
    while (this.queuedBytes > this.options.maxQueuedBytes && this.queue.length - this.queueHead > 1) {
      const dropped = this.queue[this.queueHead++]!;
      this.queuedBytes -= dropped.byteLength;
      this.droppedMessages++;
    }
    this.scheduleFlush();
  }

  stats(): LinkStats {
    return {
      connected: this.call !== undefined,
      queuedMessages: this.queue.length - this.queueHead,
      queuedBytes: this.queuedBytes,
      droppedMessages: this.droppedMessages,
      sentMessages: this.sentMessages,
    };
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // setImmediate (not a microtask) so that everything the Raft loop produces in this turn
    // travels in one batch. The driver calls flush() itself once a Ready's messages are queued;
    // this covers the rest.
    setImmediate(() => {
      this.flushScheduled = false;
      this.flush();
    });
  }

  private ensureCall(): grpc.ClientWritableStream<RaftMessageBatch> | undefined {
    if (this.call !== undefined || this.reconnectTimer !== undefined || this.closed) return this.call;
    const metadata = new grpc.Metadata();
    metadata.set(CLUSTER_ID_METADATA, this.options.clusterId);
    metadata.set(FROM_ID_METADATA, this.options.selfId);
    const call = this.client.Stream(metadata, {}, (err) => this.onCallEnded(call, err));
    call.on('error', () => {
      // Reported through the unary callback as well; listening here keeps the stream from
      // raising an unhandled 'error' event.
    });
    this.call = call;
    return call;
  }

  private onCallEnded(call: grpc.ClientWritableStream<RaftMessageBatch>, err: grpc.ServiceError | null): void {
    if (this.call !== call) return;
    this.call = undefined;
    this.waitingForDrain = false;
    if (this.closed) return;
    if (err !== null && (err.code === grpc.status.FAILED_PRECONDITION || err.code === grpc.status.PERMISSION_DENIED)) {
      this.options.onWarning?.(`peer ${this.peerId} at ${this.address} refused our stream: ${err.details}`);
    }
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.flush();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Writes the queue to the stream now (as far as the stream takes it without waiting for a drain). */
  flush(): void {
    if (this.closed || this.waitingForDrain || this.queue.length === this.queueHead) return;
    const call = this.ensureCall();
    if (call === undefined) return;
    while (this.queue.length > this.queueHead) {
      const batch: Uint8Array[] = [];
      let bytes = 0;
      while (this.queue.length > this.queueHead) {
        const next = this.queue[this.queueHead]!;
        if (batch.length > 0 && bytes + next.byteLength > this.options.maxBatchBytes) break;
        batch.push(next);
        bytes += next.byteLength;
        this.queueHead++;
      }
      this.queuedBytes -= bytes;
      this.sentMessages += batch.length;
      const writable = call.write({ messages: batch });
      if (!writable) {
        this.waitingForDrain = true;
        call.once('drain', () => {
          this.waitingForDrain = false;
          // A healthy stream that drains has proven the peer is reachable again.
          this.backoffMs = this.options.initialBackoffMs;
          this.flush();
        });
        break;
      }
    }
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
    if (this.queue.length === this.queueHead) this.backoffMs = this.options.initialBackoffMs;
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.call?.end();
    this.call = undefined;
    this.client.close();
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
  }
}

export class PeerTransport {
  private readonly links = new Map<string, OutboundLink>();
  private readonly options: ResolvedOptions;
  private closed = false;

  constructor(options: PeerTransportOptions) {
    const maxMessageBytes = options.maxMessageBytes ?? DEFAULT_MAX_RAFT_MESSAGE_BYTES;
    this.options = {
      maxQueuedBytes: 64 * 1024 * 1024,
      // A batch must fit in one message of the peer's cap, with room for framing.
      maxBatchBytes: Math.min(4 * 1024 * 1024, Math.floor(maxMessageBytes / 2)),
      initialBackoffMs: 50,
      maxBackoffMs: 2_000,
      ...options,
      maxMessageBytes,
    };
  }

  /** Options for the gRPC server of the Raft port: the same message cap. */
  serverOptions(): grpc.ServerOptions {
    return { 'grpc.max_receive_message_length': this.options.maxMessageBytes, 'grpc.max_send_message_length': this.options.maxMessageBytes };
  }

  /** Registers the inbound side of the transport on a gRPC server bound to the Ratis port. */
  registerOn(server: grpc.Server): void {
    server.addService(ServiceCtor.service, {
      Stream: (call: grpc.ServerReadableStream<RaftMessageBatch, { receivedBatches: number }>, callback: grpc.sendUnaryData<{ receivedBatches: number }>) => {
        const clusterId = String(call.metadata.get(CLUSTER_ID_METADATA)[0] ?? '');
        const from = String(call.metadata.get(FROM_ID_METADATA)[0] ?? '');
        // Who is calling comes first: an unauthenticated caller learns nothing, not even our cluster id.
        const refusal = this.options.admitStream?.(from, call);
        if (refusal !== undefined) {
          callback({ code: refusal.code, details: refusal.details });
          return;
        }
        if (clusterId !== this.options.clusterId) {
          this.options.onWarning?.(`refused a Raft stream from ${from || 'an unnamed peer'}: cluster id ${clusterId || '(none)'} is not ours (${this.options.clusterId})`);
          callback({
            code: grpc.status.FAILED_PRECONDITION,
            details: `cluster id mismatch: this node belongs to ${this.options.clusterId}, the stream claims ${clusterId || '(none)'}`,
          });
          return;
        }
        if (from === '') {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: `missing ${FROM_ID_METADATA} metadata` });
          return;
        }
        let receivedBatches = 0;
        let finished = false;
        const finish = (err: grpc.ServiceError | null): void => {
          if (finished) return;
          finished = true;
          if (err === null) callback(null, { receivedBatches });
          else callback(err);
        };
        call.on('data', (batch: RaftMessageBatch) => {
          if (finished) return;
          receivedBatches++;
          if (this.closed) return;
          const refused = this.options.onMessages(from, batch.messages);
          if (refused !== undefined) {
            const { code, details } = typeof refused === 'string' ? { code: grpc.status.INVALID_ARGUMENT, details: refused } : refused;
            finish(Object.assign(new Error(details), { code, details, metadata: new grpc.Metadata() }));
          }
        });
        call.on('end', () => finish(null));
        call.on('error', () => finish(null));
        call.on('cancelled', () => finish(null));
      },
    });
  }

  /** Makes the outbound links match `peers` (id → host:port), leaving unchanged links alone. */
  setPeers(peers: ReadonlyMap<string, string>): void {
    for (const [id, link] of this.links) {
      if (peers.get(id) !== link.address) {
        link.close();
        this.links.delete(id);
      }
    }
    for (const [id, address] of peers) {
      if (id === this.options.selfId || this.links.has(id)) continue;
      this.links.set(id, new OutboundLink(id, address, this.options));
    }
  }

  /** Queues a message for a peer; false when the peer is unknown (the message is dropped). */
  send(to: string, message: Uint8Array): boolean {
    const link = this.links.get(to);
    if (link === undefined || this.closed) return false;
    link.enqueue(message);
    return true;
  }

  /** Writes every link's queue now rather than on the next turn of the event loop. */
  flush(): void {
    for (const link of this.links.values()) link.flush();
  }

  stats(): ReadonlyMap<string, LinkStats> {
    return new Map([...this.links].map(([id, link]) => [id, link.stats()]));
  }

  close(): void {
    this.closed = true;
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }
}
