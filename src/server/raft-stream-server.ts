// The Ratis port's end of the Raft streams (raft-stream-wire.ts has the bytes; peer-transport.ts
// is the other end). PeerPortListener accepts and admits each connection, then hands it here
// (PeerConnectionSink): with TLS, through a tls.Server that is never bound, for the handshake
// (a client certificate of the cluster CA required; certificate reloads), which must be done by a
// deadline of its own (Node's handshakeTimeout restarts whenever a byte arrives).
//
// Every connection is checked before anything it says is believed:
// - it must open with the magic and a HELLO of at most MAX_CONTROL_FRAME_BYTES, within
//   `helloTimeoutMs`; nothing larger is buffered before the HELLO is accepted;
// - the HELLO is judged in this order: who is calling (with TLS, whether its certificate may send
//   as the sender it names: admitStream), then the cluster id, then a sender id at all; an
//   unauthenticated caller learns nothing, not even our cluster id;
// - after it, frames of at most `maxMessageBytes`, each length checked before its body is held;
//   messages go to `onMessages`, which may refuse the stream (a message that does not decode, a
//   member lying about its sender);
// - the frames over 64 KiB still arriving on all the streams together hold at most
//   FRAME_BUDGET_FRAMES times `maxMessageBytes` (FrameBudget; each such frame is assembled in a
//   buffer of its own, charged as it is allocated: raft-stream-wire.ts's FrameReader, which says
//   why smaller ones are not charged): a stream whose frame would take them past it is refused
//   (`frame_budget`) and its bytes returned, as they are when a frame completes or its stream ends. The cap alone bounded each stream, not the port: 64 plaintext streams, each
//   holding a frame of 32 MiB less a few bytes, took a follower from 136 MB to 2.2 GB of RSS, and
//   the port's connection limit (128) allowed 4 GiB;
// - a frame must arrive whole within `frameMs` of its first byte, a deadline bytes do not restart
//   (`frame_timeout`): otherwise a byte a minute keeps both the idle timer and a frame's budget;
// - a stream that sends nothing, not even the PING its client sends every 10 s, for `idleMs` is
//   closed; a PING is answered only when no PONG is waiting to be written (a client that never
//   reads would otherwise have the node buffer PONGs for it without bound);
// - an exception its messages run into ends that stream (INTERNAL), not the node.
// A refused stream gets a REFUSAL frame naming what was wrong, then the end of our side, and its
// socket is destroyed a second later. Each refusal is counted and reported (`onRefused`).
import type { Socket } from 'node:net';
import { createServer as createTlsServer, type SecureContextOptions, type Server as TlsServer, type TLSSocket } from 'node:tls';
import type { AuthenticatedCall } from './identity.js';
import type { PeerConnectionSink } from './peer-port-listener.js';
import { PEER_CLOSE_GRACE_MS } from './peer-port-listener.js';
import {
  decodeHello,
  decodeMessages,
  emptyFrame,
  encodeRefusal,
  FrameBudget,
  FrameBudgetExceeded,
  FrameReader,
  FrameType,
  MAX_CONTROL_FRAME_BYTES,
  RaftStreamProtocolError,
  RefusalCode,
  type Refusal,
} from './raft-stream-wire.js';
import type { RaftStreamRefusalReason } from '../metrics/node-metrics.js';

/** What a stream's connection tells about its caller: its address, and with TLS its certificate. */
export interface StreamConnection extends AuthenticatedCall {
  getPeer(): string;
}

export interface RaftStreamTiming {
  /** From the connection (its TLS handshake done) to its HELLO. */
  readonly helloTimeoutMs: number;
  /** Without a byte from the client (its PINGs included), the stream is closed. */
  readonly idleMs: number;
  /** From a frame's first byte to its last, at most (a deadline: bytes do not restart it). */
  readonly frameMs: number;
}

/**
 * A frame's deadline is a minute, as long as the idle limit, and generous: every message behind a
 * frame on its stream (heartbeats included) waits for it, so a frame slower than the election
 * timeout (5 s by default) already has its follower calling elections; a minute is twelve times
 * that, and lets the largest frame a member sends at the default cap (about 8 MiB) arrive over a
 * link of 1.2 Mbit/s, far below any that keeps a quorum.
 */
export const RAFT_STREAM_TIMING: RaftStreamTiming = { helloTimeoutMs: 10_000, idleMs: 60_000, frameMs: 60_000 };

/**
 * The bytes frames over 64 KiB still arriving may hold across all the streams, in frames of the cap
 * (`maxMessageBytes`). A member's largest frame is at most 0.7 of the cap and 5 bytes (raft-message-sizes.ts: a
 * batch holds at most half of it in messages, each with 4 bytes of length, and no Raft message is
 * under 10 bytes; a message larger than the batch goes alone, and none is over half), and at the
 * default cap about 8 MiB (one entry of a quarter alone; a batch of 4 MiB in appends is about
 * 4 MiB). Only a leader sends large ones, and a group has 3 to 5 members (sometimes one joining):
 * what arrives at once is the leader's frame, perhaps a deposed leader's last one, and frames
 * stranded on connections their peers have already replaced (until those end, by the idle limit or
 * the frame deadline). Three times the cap holds four of the largest frames a member can send at any
 * cap, and at the default cap about eleven of them or twenty-four 4 MiB batches. It bounds the bytes
 * such frames hold at once (96 MiB at the default cap, where every connection the port admits (128)
 * could hold a frame of the cap, 4 GiB), not the process's memory: a buffer outgrown while a frame
 * arrives is freed by the next collection, not at once. A stream refused for it is connected again
 * by its sender (peer-transport.ts), and Raft sends again what it lost.
 */
export const FRAME_BUDGET_FRAMES = 3;

export interface RaftStreamServerTls {
  /** The node's current certificate, key and CA. */
  contextOptions(): SecureContextOptions;
  /** Calls `listener` after every reload of the TLS files; returns a function that stops it. */
  onChange(listener: () => void): () => void;
  /** From the connection to the end of its TLS handshake, at most (a deadline). */
  readonly handshakeTimeoutMs: number;
}

export interface RaftStreamServerOptions {
  readonly clusterId: string;
  /**
   * Every batch of messages of an accepted stream (`from`: the sender its HELLO names). An error
   * text ends the stream with INVALID_ARGUMENT, a refusal with its own code.
   */
  readonly onMessages: (from: string, messages: readonly Uint8Array[]) => string | Refusal | void;
  /** Called with the HELLO's sender before anything else is looked at; a refusal ends the stream. */
  readonly admitStream?: (from: string, connection: StreamConnection) => Refusal | undefined;
  /** A stream ended by this server, why, and the text its REFUSAL carried. */
  readonly onRefused?: (reason: RaftStreamRefusalReason, peer: string, details: string) => void;
  /** Largest frame accepted after the HELLO (a batch of appends; raft-message-sizes.ts). */
  readonly maxMessageBytes: number;
  /** Mutual TLS; plaintext when absent. */
  readonly tls?: RaftStreamServerTls;
  readonly timing?: RaftStreamTiming;
}

export class RaftStreamServer implements PeerConnectionSink {
  private readonly streams = new Set<Socket>();
  private readonly tlsServer: TlsServer | undefined;
  /** Connections in their TLS handshake, by remote address and port, with their deadline. */
  private readonly handshaking = new Map<string, { readonly socket: Socket; readonly deadline: NodeJS.Timeout }>();
  private readonly stopFollowingReloads: (() => void) | undefined;
  private readonly maxMessageBytes: number;
  private readonly timing: RaftStreamTiming;
  private readonly frameBudget: FrameBudget;
  private stopped = false;

  constructor(private readonly options: RaftStreamServerOptions) {
    this.maxMessageBytes = options.maxMessageBytes;
    this.timing = options.timing ?? RAFT_STREAM_TIMING;
    this.frameBudget = new FrameBudget(FRAME_BUDGET_FRAMES * options.maxMessageBytes, `${FRAME_BUDGET_FRAMES} times the largest frame a stream may send`);
    const tls = options.tls;
    if (tls !== undefined) {
      const server = createTlsServer({ ...tls.contextOptions(), requestCert: true, rejectUnauthorized: true }, (socket) => {
        this.handshakeDone(socket);
        this.serve(socket, socket);
      });
      // A failed handshake (plaintext, another CA, no certificate): Node destroys the socket.
      server.on('tlsClientError', (err: Error, socket: TLSSocket) => {
        this.handshakeDone(socket);
        this.options.onRefused?.('tls_handshake', connectionKey(socket), `TLS handshake failed: ${err.message}`);
      });
      this.stopFollowingReloads = tls.onChange(() => server.setSecureContext(tls.contextOptions()));
      this.tlsServer = server;
    }
  }

  /** Streams open (past their TLS handshake). */
  get openStreams(): number {
    return this.streams.size;
  }

  /** Bytes held now by frames still arriving, across the streams. */
  get frameBytesHeld(): number {
    return this.frameBudget.held;
  }

  /** The most bytes frames still arriving may hold across the streams. */
  get frameBudgetBytes(): number {
    return this.frameBudget.limit;
  }

  inject(socket: Socket): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    const tls = this.options.tls;
    if (this.tlsServer === undefined || tls === undefined) {
      this.serve(socket, undefined);
      return;
    }
    // A deadline, not Node's handshakeTimeout, which is an idle timer: a client sending a byte of
    // its handshake now and then would keep the connection, and its slot, for as long as it likes.
    const key = connectionKey(socket);
    const deadline = setTimeout(() => {
      if (this.handshaking.get(key)?.socket !== socket) return;
      this.handshaking.delete(key);
      socket.destroy();
      this.options.onRefused?.('handshake_timeout', key, `TLS handshake not finished within ${tls.handshakeTimeoutMs} ms of the connection`);
    }, tls.handshakeTimeoutMs).unref();
    this.handshaking.set(key, { socket, deadline });
    socket.once('close', () => {
      const entry = this.handshaking.get(key);
      if (entry?.socket !== socket) return;
      clearTimeout(entry.deadline);
      this.handshaking.delete(key);
    });
    this.tlsServer.emit('connection', socket);
  }

  private handshakeDone(tlsSocket: Socket): void {
    const key = connectionKey(tlsSocket);
    const entry = this.handshaking.get(key);
    if (entry === undefined) return;
    clearTimeout(entry.deadline);
    this.handshaking.delete(key);
  }

  /** Raft streams are never finished by their clients: every one is closed at once. */
  tryShutdown(callback: (error?: Error) => void): void {
    this.forceShutdown();
    callback();
  }

  forceShutdown(): void {
    this.stopped = true;
    this.stopFollowingReloads?.();
    for (const socket of this.streams) socket.destroy();
    this.streams.clear();
    for (const { socket, deadline } of this.handshaking.values()) {
      clearTimeout(deadline);
      socket.destroy();
    }
    this.handshaking.clear();
  }

  private serve(socket: Socket, tlsSocket: TLSSocket | undefined): void {
    if (this.stopped) {
      socket.destroy();
      return;
    }
    this.streams.add(socket);
    socket.setNoDelay(true);
    const peer = connectionKey(socket);
    const reader = new FrameReader(MAX_CONTROL_FRAME_BYTES, true, this.frameBudget);
    let from: string | undefined;
    let ended = false;
    const connection: StreamConnection = {
      getPeer: () => peer,
      getAuthContext: () => {
        if (tlsSocket === undefined || !tlsSocket.authorized) return null;
        return { sslPeerCertificate: tlsSocket.getPeerCertificate() };
      },
    };
    const end = (reason: RaftStreamRefusalReason | undefined, refusal: Refusal): void => {
      if (ended) return;
      ended = true;
      clearTimeout(helloTimer);
      clearTimeout(idleTimer);
      clearTimeout(frameTimer);
      // Its frame's bytes go back to the budget now, not when the socket is destroyed.
      reader.discard();
      if (reason !== undefined) this.options.onRefused?.(reason, from ?? peer, refusal.details);
      socket.end(encodeRefusal(refusal));
      setTimeout(() => socket.destroy(), PEER_CLOSE_GRACE_MS).unref();
    };
    const helloTimer = setTimeout(
      () => end('hello_timeout', { code: RefusalCode.INVALID_ARGUMENT, details: `no HELLO within ${this.timing.helloTimeoutMs} ms of the connection` }),
      this.timing.helloTimeoutMs,
    ).unref();
    const idleTimer = setTimeout(() => end('idle', { code: RefusalCode.UNAVAILABLE, details: `nothing received for ${this.timing.idleMs} ms` }), this.timing.idleMs).unref();
    /** Runs while the reader holds part of a frame, from that frame's first byte. */
    let frameTimer: NodeJS.Timeout | undefined;
    const frameLate = (): void =>
      end('frame_timeout', { code: RefusalCode.UNAVAILABLE, details: `a frame not received whole within ${this.timing.frameMs} ms of its first byte (${reader.bufferedBytes} bytes of it had arrived)` });

    const accept = (body: Buffer): void => {
      const hello = decodeHello(body);
      // Who is calling comes first: an unauthenticated caller learns nothing, not even our cluster id.
      const refused = this.options.admitStream?.(hello.from, connection);
      if (refused !== undefined) {
        end(undefined, refused);
        return;
      }
      if (hello.clusterId !== this.options.clusterId) {
        end('foreign_cluster', {
          code: RefusalCode.FAILED_PRECONDITION,
          details: `cluster id mismatch: this node belongs to ${this.options.clusterId}, the stream claims ${hello.clusterId || '(none)'}`,
        });
        return;
      }
      if (hello.from === '') {
        end('unnamed', { code: RefusalCode.INVALID_ARGUMENT, details: 'the HELLO names no sender' });
        return;
      }
      from = hello.from;
      clearTimeout(helloTimer);
      reader.maxFrameBytes = this.maxMessageBytes;
    };

    socket.on('data', (chunk: Buffer) => {
      if (ended) return;
      idleTimer.refresh();
      reader.append(chunk);
      let completed = false;
      try {
        for (let frame = reader.next(); frame !== undefined && !ended; frame = reader.next()) {
          completed = true;
          if (from === undefined) {
            if (frame.type !== FrameType.Hello) throw new RaftStreamProtocolError(`the first frame is of type ${frame.type}, not a HELLO`, RefusalCode.INVALID_ARGUMENT);
            accept(frame.body);
            continue;
          }
          if (frame.type === FrameType.Ping) {
            // One PONG in flight at most: a client that sends PINGs and never reads would
            // otherwise have this node buffer PONGs for it without bound.
            if (socket.writableLength === 0) socket.write(emptyFrame(FrameType.Pong));
          } else if (frame.type === FrameType.Messages) {
            const refused = this.options.onMessages(from, decodeMessages(frame.body));
            if (refused !== undefined) end(undefined, typeof refused === 'string' ? { code: RefusalCode.INVALID_ARGUMENT, details: refused } : refused);
          } else {
            throw new RaftStreamProtocolError(`a frame of type ${frame.type} from a client (only MESSAGES and PING may follow the HELLO)`, RefusalCode.INVALID_ARGUMENT);
          }
        }
        if (ended) return;
        // The deadline of the frame in progress runs from its first byte: one that began in this
        // chunk after another completed gets its own.
        if (reader.bufferedBytes === 0) {
          clearTimeout(frameTimer);
          frameTimer = undefined;
        } else if (frameTimer === undefined) {
          frameTimer = setTimeout(frameLate, this.timing.frameMs).unref();
        } else if (completed) {
          // Under a steady load most reads end one frame and begin the next: re-arm, not re-create.
          frameTimer.refresh();
        }
      } catch (err) {
        if (err instanceof FrameBudgetExceeded) {
          end('frame_budget', { code: err.code, details: err.message });
        } else if (err instanceof RaftStreamProtocolError) {
          end(err.code === RefusalCode.RESOURCE_EXHAUSTED ? 'frame_too_large' : 'protocol', { code: err.code, details: err.message });
        } else {
          // A bug reached by what this stream sent: the stream ends, the node goes on (one
          // packet must not take every node down).
          end('internal', { code: RefusalCode.INTERNAL, details: `internal error: ${(err as Error)?.message ?? String(err)}` });
        }
      }
    });
    socket.on('error', () => undefined);
    socket.on('close', () => {
      ended = true;
      clearTimeout(helloTimer);
      clearTimeout(idleTimer);
      clearTimeout(frameTimer);
      reader.discard();
      this.streams.delete(socket);
    });
  }
}

/** A connection's remote address and port: what names it in logs, and finds it again after TLS wraps it. */
function connectionKey(socket: Socket): string {
  return `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? 0}`;
}
