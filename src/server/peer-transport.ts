// Moves encoded Raft messages to SCM peers: one Raft stream per peer on its Ratis port
// (raft-stream-wire.ts has the bytes; raft-stream-server.ts is the other end), over TCP, or TLS
// when the node runs mutual TLS.
//
// Batched per event-loop turn, bounded in memory, opened again with exponential backoff after any
// failure. Raft already tolerates loss, duplication and reordering, so when a peer is unreachable
// the oldest queued messages are dropped instead of growing without bound: the leader's next
// heartbeat or append re-derives whatever the follower needs.
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import { hostOf } from './tls.js';
import { emptyFrame, encodeMessages, encodeOpening, decodeRefusal, FrameReader, FrameType, MAX_CONTROL_FRAME_BYTES, RefusalCode, type Refusal } from './raft-stream-wire.js';

/**
 * How a link watches its connection:
 * - `connectTimeoutMs`: a connection (and its TLS handshake) not done by then is given up (a
 *   peer whose host is gone answers no SYN, and the kernel would retry for minutes);
 * - `keepaliveMs`, `keepaliveTimeoutMs`: a PING this often, and the connection destroyed if no
 *   PONG has come back in time: a peer whose machine vanished never closes the connection, and
 *   the messages would pile up in the socket.
 * The server closes a stream that has sent nothing for longer (raft-stream-server.ts).
 */
export interface LinkTiming {
  readonly connectTimeoutMs: number;
  readonly keepaliveMs: number;
  readonly keepaliveTimeoutMs: number;
}

export const LINK_TIMING: LinkTiming = { connectTimeoutMs: 5_000, keepaliveMs: 10_000, keepaliveTimeoutMs: 5_000 };

/**
 * A stream that stayed accepted this long proved the peer reachable: the backoff starts again from
 * its first step. A peer that accepts a stream and then ends it (refusing a batch, say) keeps
 * backing off instead of being connected to again at once, over and over.
 */
const STABLE_STREAM_MS = 1_000;

/** The same problem with the same peer is reported at most this often. */
const WARNING_INTERVAL_MS = 60_000;

export interface PeerTransportOptions {
  readonly selfId: string;
  readonly clusterId: string;
  /** TLS options of the link to a peer (its id and Raft address); plaintext when undefined. */
  readonly connectOptions?: (peerId: string, address: string) => ConnectionOptions | undefined;
  /** Problems worth an operator's attention (a peer refused our stream, and why). */
  readonly onWarning?: (message: string) => void;
  /** Per peer; beyond it the oldest queued messages are dropped. Default 64 MiB. */
  readonly maxQueuedBytes?: number;
  /** Largest batch of messages written as one frame (raft-message-sizes.ts: what the peers' frame cap allows). */
  readonly maxBatchBytes: number;
  readonly initialBackoffMs?: number;
  readonly maxBackoffMs?: number;
  readonly timing?: LinkTiming;
}

export interface LinkStats {
  readonly connected: boolean;
  readonly queuedMessages: number;
  readonly queuedBytes: number;
  readonly droppedMessages: number;
  readonly sentMessages: number;
}

type ResolvedOptions = Required<Omit<PeerTransportOptions, 'onWarning' | 'connectOptions'>> & Pick<PeerTransportOptions, 'onWarning' | 'connectOptions'>;

/** The port of `host:port` or `[v6]:port`. */
function portOf(address: string): number {
  const port = Number(address.slice(address.lastIndexOf(':') + 1));
  if (!Number.isInteger(port) || port < 1 || port > 65_535) throw new Error(`${address} has no port to connect to`);
  return port;
}

class OutboundLink {
  private socket: Socket | undefined;
  /** The opening is written and messages may follow. */
  private open = false;
  /** When the peer accepted the current stream (its first PONG), if it has. */
  private acceptedAt: number | undefined;
  /** When each problem was last reported (warn()). */
  private readonly warned = new Map<string, number>();
  private reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, false);
  private queue: Uint8Array[] = [];
  private queueHead = 0;
  private queuedBytes = 0;
  private waitingForDrain = false;
  private flushScheduled = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connectTimer: NodeJS.Timeout | undefined;
  private keepaliveTimer: NodeJS.Timeout | undefined;
  private pongTimer: NodeJS.Timeout | undefined;
  private pingPending = false;
  private backoffMs: number;
  private closed = false;
  droppedMessages = 0;
  sentMessages = 0;

  constructor(
    readonly peerId: string,
    readonly address: string,
    private readonly options: ResolvedOptions,
  ) {
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
    this.compact();
    this.scheduleFlush();
  }

  stats(): LinkStats {
    return {
      connected: this.acceptedAt !== undefined,
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

  /** Opens the connection unless one is open, being opened, or waiting out its backoff. */
  private connect(): void {
    if (this.socket !== undefined || this.reconnectTimer !== undefined || this.closed) return;
    const tls = this.options.connectOptions?.(this.peerId, this.address);
    let socket: Socket;
    try {
      const host = hostOf(this.address);
      const port = portOf(this.address);
      socket = tls === undefined ? netConnect({ host, port }) : tlsConnect({ ...tls, host, port });
    } catch (err) {
      this.warn(`cannot open a Raft stream to peer ${this.peerId} at ${this.address}: ${(err as Error).message}`);
      this.retryLater();
      return;
    }
    this.socket = socket;
    this.reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, false);
    socket.setNoDelay(true);
    this.connectTimer = setTimeout(() => socket.destroy(), this.options.timing.connectTimeoutMs).unref();
    socket.once(tls === undefined ? 'connect' : 'secureConnect', () => {
      if (this.socket !== socket) return;
      clearTimeout(this.connectTimer);
      socket.write(encodeOpening(this.options.clusterId, this.options.selfId));
      this.open = true;
      // A PONG says the peer accepted the stream; it also starts the keepalive.
      this.ping(socket);
      this.keepaliveTimer = setInterval(() => this.ping(socket), this.options.timing.keepaliveMs).unref();
      this.flush();
    });
    socket.on('data', (chunk: Buffer) => this.onData(socket, chunk));
    socket.on('drain', () => {
      if (this.socket !== socket || !this.waitingForDrain) return;
      this.waitingForDrain = false;
      this.flush();
    });
    socket.on('error', (err) => {
      // 'close' follows; the stream is opened again after the backoff. A TLS failure (the server is
      // not the node expected, a CA that does not match) says here what is wrong.
      this.warn(`the Raft stream to peer ${this.peerId} at ${this.address} failed: ${err.message}`);
    });
    socket.on('close', () => this.onClose(socket));
  }

  private ping(socket: Socket): void {
    if (this.pingPending) return; // the last PING is still unanswered (or not yet written); its timer decides
    this.pingPending = true;
    // The deadline starts once the PING has left: it is written behind whatever batch the socket
    // still holds, which a slow link may take a while to carry.
    socket.write(emptyFrame(FrameType.Ping), () => {
      if (this.socket !== socket || !this.pingPending) return;
      this.pongTimer = setTimeout(() => socket.destroy(), this.options.timing.keepaliveTimeoutMs).unref();
    });
  }

  private onData(socket: Socket, chunk: Buffer): void {
    if (this.socket !== socket) return;
    let frames;
    try {
      frames = this.reader.push(chunk);
    } catch (err) {
      this.warn(`peer ${this.peerId} at ${this.address} answered our Raft stream with bytes that are not the protocol: ${(err as Error).message}`);
      socket.destroy();
      return;
    }
    for (const frame of frames) {
      if (frame.type === FrameType.Pong) {
        clearTimeout(this.pongTimer);
        this.pongTimer = undefined;
        this.pingPending = false;
        this.acceptedAt ??= Date.now();
      } else if (frame.type === FrameType.Refusal) {
        this.onRefusal(decodeRefusalOrDescribe(frame.body));
        socket.destroy();
        return;
      } else {
        this.warn(`peer ${this.peerId} at ${this.address} sent a frame of type ${frame.type} on our Raft stream, which only PONG and REFUSAL may take`);
        socket.destroy();
        return;
      }
    }
  }

  private onRefusal(refusal: Refusal): void {
    // Known by its code: a refusal's details may change from one to the next (the bytes a full
    // frame budget holds, say), and the link connects again within a second.
    const code = refusalCodeName(refusal.code);
    this.warn(`peer ${this.peerId} at ${this.address} refused our Raft stream (${code}): ${refusal.details}`, `refused ${code}`);
  }

  /**
   * Reports a problem, the same one (`key`, the message unless given) at most once per
   * WARNING_INTERVAL_MS (a link retries every few seconds).
   */
  private warn(message: string, key: string = message): void {
    const now = Date.now();
    const last = this.warned.get(key);
    if (last !== undefined && now - last < WARNING_INTERVAL_MS) return;
    if (this.warned.size >= 64) this.warned.clear();
    this.warned.set(key, now);
    this.options.onWarning?.(message);
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return;
    clearTimeout(this.connectTimer);
    clearInterval(this.keepaliveTimer);
    clearTimeout(this.pongTimer);
    this.pongTimer = undefined;
    this.pingPending = false;
    this.socket = undefined;
    this.open = false;
    this.waitingForDrain = false;
    const stable = this.acceptedAt !== undefined && Date.now() - this.acceptedAt >= STABLE_STREAM_MS;
    this.acceptedAt = undefined;
    if (this.closed) return;
    if (stable) this.backoffMs = this.options.initialBackoffMs;
    this.retryLater();
  }

  /**
   * A connection failed or closed: what is queued is dropped. It is stale by the time the peer is
   * back (the leader re-derives what a follower needs from its answers), and delivering it then
   * would hand a follower that was down appends the leader has since purged from its log, in place
   * of the snapshot install it needs, and make the leader hold up to maxQueuedBytes per peer that
   * is down.
   */
  private dropQueued(): void {
    this.droppedMessages += this.queue.length - this.queueHead;
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
  }

  private retryLater(): void {
    this.dropQueued();
    const delay = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs);
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.flush();
    }, delay);
    this.reconnectTimer.unref();
  }

  /** Writes the queue to the stream now (as far as the socket takes it without waiting for a drain). */
  flush(): void {
    if (this.closed || this.waitingForDrain || this.queue.length === this.queueHead) return;
    if (!this.open) {
      this.connect();
      return;
    }
    const socket = this.socket!;
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
      if (!socket.write(encodeMessages(batch))) {
        this.waitingForDrain = true;
        break;
      }
    }
    this.compact();
  }

  /** Lets go of the messages sent or dropped, once they are most of the array. */
  private compact(): void {
    if (this.queueHead > 1024 && this.queueHead * 2 > this.queue.length) {
      this.queue = this.queue.slice(this.queueHead);
      this.queueHead = 0;
    }
  }

  close(): void {
    this.closed = true;
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    const socket = this.socket;
    this.socket = undefined;
    this.open = false;
    this.acceptedAt = undefined;
    clearTimeout(this.connectTimer);
    clearInterval(this.keepaliveTimer);
    clearTimeout(this.pongTimer);
    socket?.destroy();
    this.queue = [];
    this.queueHead = 0;
    this.queuedBytes = 0;
  }
}

function decodeRefusalOrDescribe(body: Buffer): Refusal {
  try {
    return decodeRefusal(body);
  } catch (err) {
    return { code: RefusalCode.INVALID_ARGUMENT, details: `(an unreadable refusal: ${(err as Error).message})` };
  }
}

const REFUSAL_CODE_NAMES: ReadonlyMap<number, string> = new Map(Object.entries(RefusalCode).map(([name, code]) => [code, name]));

function refusalCodeName(code: number): string {
  return REFUSAL_CODE_NAMES.get(code) ?? `status ${code}`;
}

export class PeerTransport {
  private readonly links = new Map<string, OutboundLink>();
  private readonly options: ResolvedOptions;
  private closed = false;

  constructor(options: PeerTransportOptions) {
    this.options = {
      maxQueuedBytes: 64 * 1024 * 1024,
      initialBackoffMs: 50,
      maxBackoffMs: 2_000,
      timing: LINK_TIMING,
      ...options,
    };
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
      if (id === this.options.selfId || this.links.has(id) || this.closed) continue;
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
