// The listening socket of a peer port (Ratis, InterSCM), with a connection limit. A server
// accepts every connection it is offered (grpc-js gives each an HTTP/2 session): a peer of the
// network opening idle connections to one of these ports took a node to its file descriptor limit
// (20,000 here) and 400 MB more RSS in 30 s, measured, when both ports were grpc-js; past the
// descriptor limit the Raft log cannot open its next segment. The client port has its own limit
// (unary-grpc-server.ts); this one is simpler because the callers are few: the group's members
// (a Raft stream each on the Ratis port, checkpoint downloads on the InterSCM port) and an
// operator's tools.
//
// This class owns the listening socket; its sink serves each admitted connection
// (PeerConnectionSink: the Raft stream server of raft-stream-server.ts, or a grpc-js server
// through its connection injector, TLS handshake, HTTP/2, the services and certificate reloads all
// grpc-js's). A connection is closed as it is accepted, before any handshake:
// - `connection_limit`: maxConnections are open already, and it does not come from a member's
//   address (`members`: member-addresses.ts, the addresses the members' hosts resolve to; such a
//   refusal has them resolved again, in case it came from a member whose address changed);
// - `address_share`: its address holds a quarter of them (at least one) already, so that one
//   address cannot keep the others out. A member's address is held to it too.
// Addresses are compared in canonical form (member-addresses.ts: an IPv4-mapped IPv6 address as
// its IPv4 address). The connections open stay bounded: at most the limit plus a share per
// member address, because a connection admitted past the limit is closed when its address stops
// being a member's while the connections open still exceed the limit (dropFormerMembers). A
// lookup that briefly answers with fewer addresses can so close a member's connection; it
// connects again.
// What remains: clients on many addresses can still hold every slot but the members', and so
// keep an operator's tools out. On the InterSCM port, in plaintext a connection that does not
// speak HTTP/2 keeps its slot for up to 40 s (the keepalive ping and its timeout,
// PEER_CONNECTION_TIMING), one with no call open for up to a minute (idle), and one that keeps a
// call open for as long as it likes; on the Ratis port one keeps it for up to 10 s without a
// HELLO, and an accepted stream for as long as it pings (raft-stream-server.ts); under TLS one that
// has not finished its handshake keeps it for up to 10 s on the Ratis port (a deadline), and on the
// InterSCM port for 10 s without a byte (SERVER_TLS_HANDSHAKE_TIMEOUT_MS, Node's idle timer); then
// each can connect again. A client on a member's own
// address (its host, or a NAT in front of it) shares that member's share, and can fill it and
// keep that member out. A member that connects from an address its host name does not resolve to
// (another interface, a NAT) is not recognized, nor one whose new address has not been resolved
// yet (member-addresses.ts resolves again on a configuration change, every 30 s, and after a
// refusal at the limit, at most every 5 s; the resolver's own cache may answer with the old
// address meanwhile).
// At stop, every socket this listener accepted is destroyed once the sink is done: under TLS a
// connection still in its handshake has no session the sink knows of, and would stay open.
import * as grpc from '@grpc/grpc-js';
import { createServer, type Server, type Socket } from 'node:net';
import { grpcServerOptions } from '../grpc-options.js';
import { canonicalAddress } from './member-addresses.js';

export type PeerPortRefusal = 'connection_limit' | 'address_share';

/**
 * How long a peer port's connections may hold a slot doing nothing (peerServerOptions):
 * - `idleMs`: a connection with no call open for this long is closed (grpc-js' GOAWAY, then the
 *   end of our side; the listener destroys the socket a second later, as a client that never ends
 *   its own side would keep it open). A member's Raft stream is one long call, and a checkpoint
 *   download is another; a channel whose connection was closed connects again at its next call.
 * - `keepaliveMs`, `keepaliveTimeoutMs`: every connection is pinged this often, and destroyed if
 *   the ping is not answered in time: one whose client vanished without closing (power lost, a pod
 *   moved) keeps its Raft stream open, and so would never be idle; one that never spoke HTTP/2
 *   answers no ping either.
 */
export interface PeerConnectionTiming {
  readonly idleMs: number;
  readonly keepaliveMs: number;
  readonly keepaliveTimeoutMs: number;
}

export const PEER_CONNECTION_TIMING: PeerConnectionTiming = { idleMs: 60_000, keepaliveMs: 30_000, keepaliveTimeoutMs: 10_000 };

/** After our side of a connection has ended, how long its client has to end its own. */
export const PEER_CLOSE_GRACE_MS = 1_000;

/** The options of a peer port's grpc-js server: ours, `extra`, and the connection timing. */
export function peerServerOptions(extra: grpc.ServerOptions = {}, timing: PeerConnectionTiming = PEER_CONNECTION_TIMING): grpc.ServerOptions {
  return grpcServerOptions({
    ...extra,
    'grpc.max_connection_idle_ms': timing.idleMs,
    'grpc.keepalive_time_ms': timing.keepaliveMs,
    'grpc.keepalive_timeout_ms': timing.keepaliveTimeoutMs,
  });
}

/** While refusals of one kind go on, one is reported as `first` at most this often. */
export const REFUSAL_REPORT_MS = 60_000;

export interface PeerPortListenerOptions {
  /** Connections open at once (0: no limit). */
  readonly maxConnections: number;
  /**
   * A connection closed as it was accepted, and why; its remote address. `first`: the first such
   * refusal since the limit was reached (connection_limit: until half the connections have closed;
   * address_share: until that address holds half its share), or for REFUSAL_REPORT_MS: a log line
   * each time, and one a minute while refusals go on.
   */
  readonly onRefused?: (reason: PeerPortRefusal, remoteAddress: string, first: boolean) => void;
  /** Milliseconds clock (for the report interval). */
  readonly now?: () => number;
  /** Connections open now, after each change. */
  readonly onOpenConnections?: (open: number) => void;
  /**
   * The group members' addresses (member-addresses.ts): a connection from one is admitted past
   * maxConnections, still within its address's share.
   */
  readonly members?: PeerPortMembers;
}

/** The group members' addresses, as MemberAddresses keeps them. */
export interface PeerPortMembers {
  /** Whether a (canonical) remote address is a member's. */
  has(address: string): boolean;
  /** A connection was refused at the limit: it may be a member's, from an address not resolved yet. */
  refreshOnDemand(): void;
  /** Calls `listener` after each change of the addresses; returns a function that stops it. */
  onChange(listener: () => void): () => void;
}

/**
 * Where a peer port's admitted connections are served: a grpc-js server (the InterSCM port), or the
 * Raft stream server (the Ratis port, raft-stream-server.ts).
 */
export interface PeerConnectionSink {
  /** Serves an accepted connection (its TLS handshake, if any, included). */
  inject(socket: Socket): void;
  /** Stops serving; calls back once the calls in progress have finished. */
  tryShutdown(callback: (error?: Error) => void): void;
  forceShutdown(): void;
}

/** A grpc-js server as a sink: connections injected with `credentials` (TLS or plaintext). */
export function grpcConnectionSink(server: grpc.Server, credentials: grpc.ServerCredentials): PeerConnectionSink {
  const injector = server.createConnectionInjector(credentials);
  return {
    inject: (socket) => injector.injectConnection(socket),
    tryShutdown: (callback) => server.tryShutdown(callback),
    forceShutdown: () => server.forceShutdown(),
  };
}

/** A peer port: a listening socket of ours in front of a sink. Shut down through this, not the sink. */
export class PeerPortListener {
  private readonly listener: Server;
  private readonly sockets = new Set<Socket>();
  private readonly perAddress = new Map<string, number>();
  private readonly maxConnections: number;
  private readonly addressShare: number;
  /** When a refusal was last reported, by episode: 'limit', or an address at its share. */
  private readonly reported = new Map<string, number>();
  /**
   * Connections admitted past maxConnections because their address was a member's, by address;
   * forgotten once the open connections fit the limit again.
   */
  private readonly pastLimit = new Map<Socket, string>();
  private readonly stopWatchingMembers: (() => void) | undefined;

  constructor(
    private readonly sink: PeerConnectionSink,
    private readonly options: PeerPortListenerOptions,
  ) {
    const max = options.maxConnections;
    if (!Number.isSafeInteger(max) || max < 0) throw new Error(`the connection limit must be 0 (none) or a whole number of connections, not ${max}`);
    this.maxConnections = max;
    this.addressShare = max > 0 ? Math.max(1, Math.floor(max / 4)) : 0;
    this.listener = createServer({ pauseOnConnect: false }, (socket) => this.accept(socket));
    this.listener.on('error', () => undefined);
    this.stopWatchingMembers = options.members?.onChange(() => this.dropFormerMembers());
  }

  /** Listens on host:port; resolves to the port bound (an ephemeral one for port 0). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => reject(err);
      this.listener.once('error', failed);
      this.listener.listen(port, host, () => {
        this.listener.off('error', failed);
        resolve((this.listener.address() as { port: number }).port);
      });
    });
  }

  /** Connections open now. */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Stops accepting; calls in progress finish (grpc-js closes its sessions gracefully). */
  tryShutdown(callback: (error?: Error) => void): void {
    this.stopWatchingMembers?.();
    this.listener.close();
    this.sink.tryShutdown((err) => {
      this.destroySockets();
      callback(err);
    });
  }

  forceShutdown(): void {
    this.stopWatchingMembers?.();
    this.listener.close();
    this.sink.forceShutdown();
    this.destroySockets();
  }

  /**
   * The members' addresses changed (called by their onChange): closes the connections admitted
   * past the limit, while the connections open still exceed it, from an address that is no longer
   * a member's, so that at most the limit plus a share per current member address stay open.
   */
  private dropFormerMembers(): void {
    for (const [socket, address] of this.pastLimit) {
      if (this.options.members?.has(address) !== true) socket.destroy();
    }
  }

  private accept(socket: Socket): void {
    socket.on('error', () => undefined);
    const address = canonicalAddress(socket.remoteAddress ?? 'unknown');
    const held = this.perAddress.get(address) ?? 0;
    const full = this.maxConnections > 0 && this.sockets.size >= this.maxConnections;
    const member = full && this.options.members?.has(address) === true;
    const refusal: PeerPortRefusal | undefined =
      this.maxConnections === 0 ? undefined : full && !member ? 'connection_limit' : held >= this.addressShare ? 'address_share' : undefined;
    if (refusal !== undefined) {
      socket.destroy();
      if (refusal === 'connection_limit') this.options.members?.refreshOnDemand();
      const episode = refusal === 'connection_limit' ? 'limit' : `address ${address}`;
      const now = (this.options.now ?? Date.now)();
      const last = this.reported.get(episode);
      const first = last === undefined || now - last >= REFUSAL_REPORT_MS;
      if (first) this.reported.set(episode, now);
      this.options.onRefused?.(refusal, address, first);
      return;
    }
    this.sockets.add(socket);
    if (member) this.pastLimit.set(socket, address);
    this.perAddress.set(address, held + 1);
    this.options.onOpenConnections?.(this.sockets.size);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.pastLimit.delete(socket);
      if (this.sockets.size <= this.maxConnections) this.pastLimit.clear();
      const left = (this.perAddress.get(address) ?? 1) - 1;
      if (left > 0) this.perAddress.set(address, left);
      else this.perAddress.delete(address);
      if (this.sockets.size <= this.maxConnections / 2) this.reported.delete('limit');
      if (left <= this.addressShare / 2) this.reported.delete(`address ${address}`);
      this.options.onOpenConnections?.(this.sockets.size);
    });
    // The sink closes a connection gracefully (idle, shutdown, a refusal): our side ends, and the
    // socket stays until the client ends its own. One that never does would keep its slot.
    socket.once('finish', () => setTimeout(() => socket.destroy(), PEER_CLOSE_GRACE_MS).unref());
    this.sink.inject(socket);
  }

  private destroySockets(): void {
    for (const socket of this.sockets) socket.destroy();
  }
}
