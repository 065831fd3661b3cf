// A gRPC server for unary methods only, written on node:http2: the client port's server
// (ozone.scm.client.port). It takes grpc-js service definitions and handler shapes (addService,
// `(call, callback)`), so the client service, its tolerant definition and the metrics
// instrumentation are the same code as on a grpc.Server; clients keep using grpc-js.
//
// Why not grpc-js' own server here: a unary call through it goes through Http2ServerCallStream's
// successor, the server-interceptor chain (a ServerInterceptingCall, a listener, a per-call
// Metadata parsed from the headers, a StreamDecoder, a read queue of promises, a Readable/Writable
// call object), which at 256 closed-loop callers was most of the leader's JavaScript besides our
// own, plus 16 % in GC. `npm run bench:grpc-floor` (a 200-byte echo, 64 in flight, this machine):
// a grpc-js 1.14 server spent 78-83 µs of CPU per call, the same exchange written on node:http2
// directly 52-56 µs. In one later run of all four on a busier machine: grpc-js 105-110, grpc-js
// without channelz 92-106, this server 61-65, the bare exchange 60-74; under load the leader's
// CPU per allocation went from 0.20-0.21 ms to 0.14-0.18 at 256 callers
// (bench/results/2026-12-03-unary-server-notes.md).
// The peer (Ratis) and InterSCM ports keep grpc-js servers: they carry streams, and few calls.
//
// What it does, per https://github.com/grpc/grpc/blob/master/doc/PROTOCOL-HTTP2.md, and where it
// matches grpc-js 1.14's server (server.js, server-interceptors.js):
// - POST only (anything else: HTTP 405); content-type application/grpc… (else HTTP 415, as grpc-js);
//   an unknown path is UNIMPLEMENTED (grpc-js' words).
// - compression as grpc-js: a message whose compressed flag is set is inflated per grpc-encoding
//   (gzip, deflate), never past the receive limit (RESOURCE_EXHAUSTED in grpc-js' words, the
//   inflating stopped there); a compressed message under another encoding, or none, is refused
//   (UNIMPLEMENTED naming the encoding, INTERNAL without one), as is a flag other than 0 or 1. An
//   uncompressed message is read whatever grpc-encoding says. Answers are not compressed (the
//   spec lets a server answer identity).
// - exactly one request message, as grpc-js: none (or an incomplete one) is UNIMPLEMENTED, a second
//   is UNIMPLEMENTED; bytes after the message (a partial second prefix) are refused the same way
//   (grpc-js ignored them). The handler runs once the request is half-closed, as in grpc-js.
// - the length prefix is checked against the receive limit (grpc.max_receive_message_length,
//   4 MiB by default) before anything more is buffered: RESOURCE_EXHAUSTED in grpc-js' words, and
//   the rest of the request is not read (RST_STREAM NO_ERROR after the status).
// - a server-wide request budget (requestBufferBytes, ozone.scm.client.request.buffer.size on the
//   node, 64 MiB by default, at least the worst single call: twice the receive limit and an
//   inflater's overhead): the request memory held by calls whose handler has not run yet, across
//   all connections, charged as what is allocated: a body still arriving (in one buffer of its own,
//   the message's whole length at once up to 64 KiB, grown by doubling above, so up to twice what
//   was sent; never views of socket reads), a complete message waiting for the half-close (kept as
//   the chunk it came in only when that chunk's backing store is about its size, else copied), a
//   compressed one, what it has inflated to, and its inflater's own memory (INFLATER_OVERHEAD_BYTES,
//   measured). One connection may hold at most its share: a quarter of the budget, or the worst
//   single call if that is more (without a receive limit, the whole budget). A call whose next
//   bytes would take the total, or its connection's share, past it is RESOURCE_EXHAUSTED naming the
//   budget ("retry later", except for a call the budget could never hold alone), the rest not read,
//   its bytes released at once, and reported (onRefused, reasons `request_buffer` and
//   `connection_share`: the node counts and logs it). A call's bytes are released when its handler
//   starts (the handler count bounds it from there) and on every other end: an answer, a refusal,
//   the read timeout, DEADLINE_EXCEEDED, a client RST_STREAM, a closed connection, a forced
//   shutdown. grpc-js has no such bound: one connection could hold a receive limit per stream,
//   256 × 4 MiB at the node's settings, and connections are not limited.
// - a read timeout (requestReadTimeoutMs, ozone.scm.client.request.read.timeout on the node, 10 s
//   by default, 0 for none): a call whose request (message and half-close) has not arrived that
//   long after its stream opened is UNAVAILABLE naming the key (the request never reached a
//   handler, so a retry is safe), its bytes released, and reported (`read_timeout`). A running
//   handler is not bounded by it; grpc-js has no such limit. A grpc-encoding value other than
//   identity, gzip or deflate is kept only as its first 64 characters, for the error text.
// - a connection limit (maxConnections, ozone.scm.client.max.connections on the node, 0 for none).
//   Each connection costs a socket, a file descriptor (which the Raft log needs too) and an HTTP/2
//   session whatever its calls hold, which no byte budget sees; grpc-js has no such limit (Hadoop
//   RPC's is ipc.server.max.connections). Its first job is to bound those, so that whatever the
//   client port suffers, the node's Raft log and peer ports do not.
//   - One client address may hold a quarter of the limit (at least one): one more from it is
//     closed as accepted (`address_share`). Without it a single client could take every slot.
//   - The connection that takes the last slot makes the server close an idle one (no stream
//     open): of the address holding the most connections, the one idle longest; GOAWAY, its
//     socket destroyed a second later (a peer that does not read would hold it through a graceful
//     close), reported as `connection_evicted`, as Hadoop RPC closes idle connections past
//     ipc.client.idlethreshold. A grpc-js channel connects again at its next call.
//   - A connection accepted while all the slots are taken is closed at once, before its TLS
//     handshake (`connection_limit`): every open one had a stream when the last was taken. The
//     refusal closes one that has gone idle since, so that the client's next attempt finds a slot.
//   - A connection that has seen a GOAWAY, or a protocol error, has its socket destroyed a grace
//     after (closeGraceMs, 1 s, the same that an evicted one has): after the client's GOAWAY,
//     once its open calls are answered; after node:http2's own GOAWAY (a protocol error, or a
//     flood: nghttp2's rapid-reset limit, a frame over the size limit) or a session error, at once
//     (`protocol_error`, reported at most every 10 s). node:http2 ends only its side, and keeps the
//     socket until the client closes it; for its own GOAWAY it does not even tell JavaScript, so
//     the sessions are checked as often as the grace for one nghttp2 has finished with
//     (nghttp2Finished). Before, a client that ignored the GOAWAY kept its slot for good: enough of
//     them, from rapid-reset or header floods, kept every new client out.
//   What clients on many addresses can still do: hold the slots with connections that each keep
//   a stream open (a request that never completes is ended by the read timeout, but a new one may
//   be opened before that), or with connections still in their TLS handshake (no session to
//   evict; each closed within the read timeout), and so keep other clients out of this port.
// - a handshake timeout (the read timeout again): a connection that has not finished its TLS
//   handshake within it of being accepted, or has not sent the HTTP/2 preface and its SETTINGS
//   within it of that (of being accepted, in plaintext), is closed and reported
//   (`handshake_timeout`): otherwise a client that connects and says nothing holds a slot until an
//   eviction finds it. Node's own TLS handshake timeout is 120 s, and it has none for the preface.
// - grpc-timeout (1-8 digits, then H M S m u n) is enforced: DEADLINE_EXCEEDED at expiry, the call
//   emits 'cancelled' and its handler's later answer is dropped. A malformed one is INTERNAL, in
//   grpc-js' words (grpc-js also took a valid value anywhere inside the header; this takes the
//   spec's form only).
// - a client RST_STREAM or a closed connection: 'cancelled', nothing written after.
// - answers: `:status 200`, `content-type: application/grpc+proto`, the message, then trailers
//   grpc-status, grpc-message (percent-encoded as the spec says) and the trailer metadata (`-bin`
//   values base64, by grpc.Metadata); an error is a trailers-only response. The callback's error
//   is read as grpc-js reads it (serverErrorToStatus: `code`, `details`, `metadata`, or UNKNOWN
//   with `message`). A handler that throws is UNKNOWN "Unknown error", as in grpc-js (the node's
//   handlers are wrapped by grpc-instrumentation.ts, which answers INTERNAL naming the error).
// - HTTP/2 settings as grpc-js sets them for its server: maxConcurrentStreams from
//   grpc.max_concurrent_streams (100 without one, where grpc-js leaves Node's 2^32 - 1), no session
//   memory bound, no header block bound when sending, no idle timeout; grpc-js' defaults leave
//   keepalive pings, connection age and idle limits off.
// - shutdown: tryShutdown refuses new streams and closes each connection once its calls are done;
//   forceShutdown also destroys every accepted socket, with a session or not (one that never sent
//   the preface, or never finished its handshake, would otherwise hold server.close() open).
// - TLS: client certificate required and verified against the CA (mutual TLS, ALPN h2, no HTTP/1),
//   the context replaced in place on every reload of the node's material.
// The call handed to a handler carries what the node reads (client-service.ts, authz.ts,
// identity.ts, grpc-instrumentation.ts): `request`, `cancelled`, `getPeer()`, `getAuthContext()`
// and the 'cancelled' event. No request Metadata is built: nothing on this port reads it.
import http2 from 'node:http2';
import type { Socket } from 'node:net';
import { createInflate, createUnzip, type Inflate, type Unzip } from 'node:zlib';
import { TLSSocket, type PeerCertificate, type SecureContextOptions } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { ClientRefusalReason } from '../metrics/node-metrics.js';
import { DEFAULT_RETRY_AFTER_MS, RETRY_AFTER_METADATA } from '../retry-after.js';
import { DEFAULT_MAX_RECEIVE_BYTES, INFLATER_OVERHEAD_BYTES, minRequestBufferBytes } from './request-limits.js';

export { DEFAULT_MAX_RECEIVE_BYTES, INFLATER_OVERHEAD_BYTES } from './request-limits.js';

const {
  HTTP2_HEADER_METHOD,
  HTTP2_HEADER_PATH,
  HTTP2_HEADER_CONTENT_TYPE,
  HTTP2_HEADER_STATUS,
  HTTP_STATUS_OK,
  HTTP_STATUS_METHOD_NOT_ALLOWED,
  HTTP_STATUS_UNSUPPORTED_MEDIA_TYPE,
  NGHTTP2_CANCEL,
  NGHTTP2_INTERNAL_ERROR,
  NGHTTP2_NO_ERROR,
} = http2.constants;

/**
 * Request bytes held by calls whose handler has not run yet, across every connection, when the
 * options name no other budget (ozone.scm.client.request.buffer.size): 16 messages of the largest
 * size at once, where 256 calls of the usual few hundred bytes take well under 1 MiB; before there
 * was a budget, each connection could hold 256 × 4 MiB.
 */
export const DEFAULT_REQUEST_BUFFER_BYTES = 64 * 1024 * 1024;
/**
 * How long a call's request (its message and the half-close) may take to arrive, from the stream's
 * opening, when the options name no other limit (ozone.scm.client.request.read.timeout): a request
 * of the largest size takes milliseconds on any link a node serves; what takes longer is a client
 * that stopped, or one holding the budget on purpose.
 */
export const DEFAULT_REQUEST_READ_TIMEOUT_MS = 10_000;
/**
 * Messages up to this length that arrive in pieces get a buffer of their whole length at once;
 * longer ones grow by doubling, so that a prefix announcing 4 MiB is not 4 MiB held at once.
 */
const WHOLE_BUFFER_BYTES = 64 * 1024;
/**
 * A message that came whole in one chunk is kept as that chunk (a view) when the chunk's backing
 * store is at most twice its length plus this; otherwise (a view of a socket read of up to 64 KiB,
 * which many streams' frames share) it is copied, so that what the call holds is what it is charged.
 */
const VIEW_SLACK_BYTES = 4096;
/** How much of a grpc-encoding value the server does not know is kept, for the error text. */
const ENCODING_TEXT_CHARS = 64;
/**
 * SETTINGS_MAX_CONCURRENT_STREAMS when the options name none. Node's own (2^32 - 1, as grpc-js
 * leaves it) lets one connection open streams without end, each with its JavaScript objects, which
 * no byte budget sees; 100 is the least RFC 9113 §6.5.2 recommends. The node passes its handler
 * count instead (grpc.max_concurrent_streams, from ozone.scm.handler.count.key).
 */
const DEFAULT_MAX_CONCURRENT_STREAMS = 100;
/**
 * How long a connection has to go after a GOAWAY before its socket is destroyed, when the options
 * name no other (closeGraceMs): after the server's own (an eviction), after the client's once its
 * calls are done, after node:http2's (a protocol error) at once. A client that reads gets the GOAWAY
 * and closes within it; one that does not would otherwise hold its slot for good.
 */
export const DEFAULT_CLOSE_GRACE_MS = 1_000;
/** At most one `protocol_error` log line this often: a flood ends a connection per attempt. */
const PROTOCOL_ERROR_LOG_MS = 10_000;
/** Longer timeouts than a timer can hold (about 24.8 days) are as good as none. */
const MAX_TIMER_MS = 2 ** 31 - 1;
const TIMEOUT_UNITS_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1_000, m: 1, u: 0.001, n: 0.000_001 };
const TIMEOUT_FORM = /^(\d{1,8})([HMSmun])$/;

const RESPONSE_HEADERS: http2.OutgoingHttpHeaders = {
  [HTTP2_HEADER_STATUS]: HTTP_STATUS_OK,
  [HTTP2_HEADER_CONTENT_TYPE]: 'application/grpc+proto',
  'grpc-accept-encoding': 'identity,deflate,gzip',
};
/**
 * The grpc-encoding values the server knows, each kept by a call as this shared string: never the
 * header's own, which a client may make as long as its header block (encodingOf).
 */
const ENCODINGS: ReadonlyMap<string, string> = new Map(['identity', 'gzip', 'deflate'].map((name) => [name, name]));
/**
 * How a compressed request message is inflated, by grpc-encoding (grpc-js: zlib's unzip and
 * inflate). Streams, not the one-call forms, so that what comes out is counted against the request
 * budget as it comes. A Map, so that a header naming an Object property ("constructor") finds nothing.
 */
const INFLATERS: ReadonlyMap<string, () => Unzip | Inflate> = new Map<string, () => Unzip | Inflate>([
  ['gzip', () => createUnzip()],
  ['deflate', () => createInflate()],
]);
const RESPOND_WITH_TRAILERS = { waitForTrailers: true } as const;
const OK_TRAILERS: http2.OutgoingHttpHeaders = { 'grpc-status': '0', 'grpc-message': 'OK' };

/** What the node's consumers read of a connection's TLS state (identity.ts), as grpc-js reports it. */
export interface UnaryAuthContext {
  readonly transportSecurityType?: string;
  readonly sslPeerCertificate?: PeerCertificate;
}

/** The call a unary handler gets: the parts of grpc-js' ServerUnaryCall the node uses. */
export interface UnaryCall<Request = unknown> {
  readonly request: Request;
  /** True once the client cancelled, the connection closed or the deadline passed. */
  readonly cancelled: boolean;
  /** `address:port` of the caller, as grpc-js writes it. */
  getPeer(): string;
  /** `{}` in plaintext; under TLS the verified client certificate. */
  getAuthContext(): UnaryAuthContext;
  /** 'cancelled' is the only event: emitted (once, on a later tick) when the call is cancelled. */
  on(event: 'cancelled', listener: () => void): this;
  once(event: 'cancelled', listener: () => void): this;
}

export type UnaryHandler<Request = unknown, Response = unknown> = (call: UnaryCall<Request>, callback: grpc.sendUnaryData<Response>) => void;

/** Handlers by method name; each method's types are its definition's (as grpc-js' UntypedServiceImplementation). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a handler of any request and response type
export type UnaryServiceImplementation = Record<string, UnaryHandler<any, any>>;

/** What registerClientService needs of a server: a grpc.Server has it too. */
export interface UnaryServiceHost {
  addService(definition: grpc.ServiceDefinition, implementation: UnaryServiceImplementation): void;
}

/** Why the server closed a connection of its own accord (ConnectionRefusal). */
type ConnectionRefusalReason = 'connection_limit' | 'address_share' | 'connection_evicted' | 'handshake_timeout' | 'protocol_error';
/** Why a call was refused before its handler ran (UnaryRefusal). */
type CallRefusalReason = Exclude<ClientRefusalReason, ConnectionRefusalReason>;

export interface UnaryRefusal {
  /**
   * Why the server refused the call before its handler ran (CLIENT_REFUSAL_REASONS):
   * `request_buffer` and `connection_share` are RESOURCE_EXHAUSTED, `read_timeout` UNAVAILABLE.
   */
  readonly reason: CallRefusalReason;
  /** The method's path. */
  readonly method: string;
  /** The caller, as getPeer() says. */
  readonly peer: string;
  /** The status message the caller got. */
  readonly details: string;
  /**
   * One log line per time a limit is reached, however many calls a flood has refused:
   * `request_buffer`, the first refusal since the bytes held were last at or under half the
   * budget; `connection_share`, the same for the call's connection and its share; `read_timeout`
   * and `write_timeout`, the first of each on the call's connection.
   */
  readonly first: boolean;
}

/** A connection the server closed of its own accord. */
export interface ConnectionRefusal {
  /**
   * `connection_limit`: it was accepted while maxConnections were open, each with a call in
   * progress; `address_share`: its address held its share of them already (a quarter);
   * `connection_evicted`: it was chosen (idle, of the address holding the most) when another took
   * the last slot;
   * `handshake_timeout`: it did not finish its TLS handshake, or send the HTTP/2 preface, within
   * the read timeout;
   * `protocol_error`: node:http2 ended its session for a protocol error or a flood (a GOAWAY of its
   * own, a session 'error' or 'frameError'), and the server destroyed its socket.
   */
  readonly reason: ConnectionRefusalReason;
  /** `address:port` of the client, as getPeer() would say. */
  readonly peer: string;
  /** What happened, naming the limit (for the log). */
  readonly details: string;
  /**
   * One log line per time a limit is reached: `connection_limit` and `connection_evicted`, the
   * first of its kind since the open connections were last at or under half the limit;
   * `address_share`, the first for its address since it last held at most half its share;
   * `handshake_timeout`, the first since a connection last finished its handshake;
   * `protocol_error`, at most one every 10 s.
   */
  readonly first: boolean;
}

/** What eviction knows of a connection's HTTP/2 session. */
interface SessionUse {
  /** Streams open now. */
  active: number;
  /** performance.now() when it last had no stream open (its start, until it has had one). */
  idleSince: number;
  /**
   * It has seen a GOAWAY (the server's, the client's or node:http2's) or a protocol error: its
   * socket is to be destroyed (retire), and it is not chosen for eviction.
   */
  retiring: boolean;
  /** The grace after which its socket is destroyed, once armed (retire, armCloseGrace). */
  closeTimer: NodeJS.Timeout | undefined;
  /** The client's address, whose connections are counted together (addressShare). */
  readonly address: string;
  /**
   * Destroys the connection's socket. A session closed or destroyed only ends its side, and a
   * peer that neither reads nor closes would keep the socket, and its slot, for good.
   */
  readonly destroySocket: () => void;
  /** Whether the connection's socket is destroyed (a socket error, or destroySocket). */
  readonly socketDestroyed: () => boolean;
}

/**
 * Where a socket carries itself, for its session to find: the session sees the socket only
 * through a proxy that refuses destroy() (and is gone once the session is).
 */
const RAW_SOCKET = Symbol('the socket');
type Destroyable = { [RAW_SOCKET]?: Socket };

function tagDestroyable(socket: Socket): void {
  (socket as Destroyable)[RAW_SOCKET] = socket;
}

export interface UnaryGrpcServerOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS per connection (grpc.max_concurrent_streams); default 100. */
  readonly maxConcurrentStreams?: number;
  /** Largest request message in bytes (grpc.max_receive_message_length); default 4 MiB, -1 for none. */
  readonly maxReceiveMessageBytes?: number;
  /**
   * Request bytes held, across all connections, by calls whose handler has not run yet (the body
   * still coming, or being inflated): a call that would take it past this is RESOURCE_EXHAUSTED,
   * as is one that would take its connection past its share, the larger of a quarter of this and
   * the worst single call. Default 64 MiB; at least the worst single call (twice the receive limit
   * and an inflater, minRequestBufferBytes), so that a call refused for it can succeed later.
   */
  readonly requestBufferBytes?: number;
  /**
   * Milliseconds a call's request (message and half-close) may take to arrive from the stream's
   * opening; later, it is UNAVAILABLE and its bytes released. The handler's own run is not bounded
   * by it. Default 10 s; 0 for none.
   */
  readonly requestReadTimeoutMs?: number;
  /** Told of every call refused before its handler ran (the node counts them in scm_client_refusals_total). */
  readonly onRefused?: (refusal: UnaryRefusal) => void;
  /**
   * Connections open at once (accepted, TLS handshake done or not); one more is closed when
   * accepted. Default 0: no limit.
   */
  readonly maxConnections?: number;
  /** Told of every connection the server closes of its own accord (the node counts them too). */
  readonly onConnectionRefused?: (refusal: ConnectionRefusal) => void;
  /**
   * Milliseconds a connection has after a GOAWAY before its socket is destroyed, its slot with it:
   * after the server's (an eviction), after the client's once its open calls are done, after
   * node:http2's (a protocol error) at once. Also how often sessions are checked for a GOAWAY
   * node:http2 sent of its own accord (it says nothing of one). Default 1 s.
   */
  readonly closeGraceMs?: number;
  /** Told the number of open connections each time it changes (the node's gauge). */
  readonly onOpenConnections?: (open: number) => void;
  /** Serve mutual TLS with this material; `onChange` reports a new set (it returns an unsubscribe). */
  readonly tls?: {
    readonly contextOptions: () => SecureContextOptions;
    readonly onChange: (listener: () => void) => () => void;
  };
}

interface Method {
  readonly path: string;
  readonly handler: UnaryHandler;
  readonly deserialize: (bytes: Buffer) => unknown;
  readonly serialize: (value: unknown) => Buffer;
}

/** The server-wide count of request bytes held by calls not yet handed to their handler. */
class RequestBudget {
  held = 0;
  /** A refusal was reported since the bytes held were last at or under half the limit. */
  private refusing = false;

  constructor(readonly limit: number) {}

  fits(bytes: number): boolean {
    return this.held + bytes <= this.limit;
  }

  take(bytes: number): void {
    this.held += bytes;
  }

  release(bytes: number): void {
    this.held -= bytes;
    if (this.refusing && this.held <= this.limit / 2) this.refusing = false;
  }

  /** Records a refusal; true for the first one since the budget was last half free. */
  refused(): boolean {
    const first = !this.refusing;
    this.refusing = true;
    return first;
  }
}

/** One connection's part of the budget: what its calls hold, at most its share. */
class ConnectionShare extends RequestBudget {
  /** A call of this connection was answered for its read timeout (reported as `first` once). */
  timedOut = false;
  /** A call of this connection had its answer reset (or its connection closed) for the read timeout (reported as `first` once). */
  writeTimedOut = false;
}

/** What every call of one server shares. */
interface CallContext {
  readonly maxReceive: number;
  readonly budget: RequestBudget;
  /** What one connection may hold of the budget. */
  readonly shareLimit: number;
  /** 0 for none. */
  readonly readTimeoutMs: number;
  readonly onRefused: ((refusal: UnaryRefusal) => void) | undefined;
  /** Destroys a call's connection now (UnaryGrpcServer.destroyConnection). */
  readonly destroyConnection: (session: http2.Http2Session) => void;
}

interface CallStatus {
  readonly code: grpc.status;
  readonly details: string;
  readonly metadata: grpc.Metadata | null;
}

export class UnaryGrpcServer implements UnaryServiceHost {
  private readonly methods = new Map<string, Method>();
  private readonly sessions = new Map<http2.ServerHttp2Session, SessionUse>();
  /**
   * Every accepted connection, HTTP/2 session or not: one that never sends the preface (or never
   * finishes its TLS handshake) has no session, and would hold server.close() open for good.
   */
  private readonly sockets = new Set<Socket>();
  private readonly shares = new WeakMap<http2.Http2Session, ConnectionShare>();
  private readonly context: CallContext;
  /** 0 for none. */
  private readonly maxConnections: number;
  /** A connection_limit refusal was reported since the open connections were last at or under half the limit. */
  private refusingConnections = false;
  /** The same for a connection_evicted. */
  private evictingConnections = false;
  /** Connections one client address may hold (a quarter of the limit); 0 for none. */
  private readonly addressShare: number;
  /** Open connections by client address, and whether a refusal of it was reported since it last held at most half its share. */
  private readonly byAddress = new Map<string, { open: number; refusing: boolean }>();
  /** The read timeout when a timer can hold it, for the TLS handshake and the preface; undefined for none. */
  private readonly handshakeDeadlineMs: number | undefined;
  /** A handshake_timeout was reported since a connection last finished its handshake. */
  private handshakesTimingOut = false;
  /** See closeGraceMs. */
  private readonly closeGraceMs: number;
  /** performance.now() of the last protocol_error reported as `first`. */
  private protocolErrorLoggedAt = -Infinity;
  /** Looks for sessions node:http2 has ended without a word (sweepSessions), while listening. */
  private sweepTimer: NodeJS.Timeout | undefined;
  private server: http2.Http2Server | http2.Http2SecureServer | undefined;
  private unsubscribeTls: (() => void) | undefined;
  private closing = false;

  constructor(private readonly options: UnaryGrpcServerOptions = {}) {
    const maxReceive = options.maxReceiveMessageBytes ?? DEFAULT_MAX_RECEIVE_BYTES;
    const budget = options.requestBufferBytes ?? DEFAULT_REQUEST_BUFFER_BYTES;
    const readTimeoutMs = options.requestReadTimeoutMs ?? DEFAULT_REQUEST_READ_TIMEOUT_MS;
    if (!Number.isSafeInteger(budget) || budget < 0) throw new Error(`the request buffer must be a whole number of bytes, not ${budget}`);
    const worstCall = maxReceive === -1 ? Infinity : minRequestBufferBytes(maxReceive);
    if (maxReceive !== -1 && budget < worstCall) {
      throw new Error(
        `the request buffer (${budget} bytes) is smaller than the worst single call (${worstCall} bytes: a compressed message of the largest size, ${maxReceive} bytes, what it inflates to, as much again, and its inflater, ${INFLATER_OVERHEAD_BYTES} bytes, held together): such a call must always fit`,
      );
    }
    if (!Number.isFinite(readTimeoutMs) || readTimeoutMs < 0) throw new Error(`the request read timeout must be 0 (none) or a number of milliseconds, not ${readTimeoutMs}`);
    const maxConnections = options.maxConnections ?? 0;
    if (!Number.isSafeInteger(maxConnections) || maxConnections < 0) throw new Error(`the connection limit must be 0 (none) or a whole number of connections, not ${maxConnections}`);
    this.maxConnections = maxConnections;
    const closeGraceMs = options.closeGraceMs ?? DEFAULT_CLOSE_GRACE_MS;
    if (!Number.isFinite(closeGraceMs) || closeGraceMs <= 0 || closeGraceMs >= MAX_TIMER_MS) throw new Error(`the close grace must be a positive number of milliseconds a timer can hold, not ${closeGraceMs}`);
    this.closeGraceMs = closeGraceMs;
    this.addressShare = maxConnections > 0 ? Math.max(1, Math.floor(maxConnections / 4)) : 0;
    this.handshakeDeadlineMs = readTimeoutMs > 0 && readTimeoutMs < MAX_TIMER_MS ? readTimeoutMs : undefined;
    // Without a receive limit (-1), one connection may use the whole budget.
    const shareLimit = Math.min(budget, Math.max(worstCall, Math.floor(budget / 4)));
    this.context = {
      maxReceive,
      budget: new RequestBudget(budget),
      shareLimit,
      readTimeoutMs,
      onRefused: options.onRefused,
      destroyConnection: (session) => this.destroyConnection(session, this.sessions.get(session as http2.ServerHttp2Session)),
    };
  }

  /** Connections open now (accepted and not yet closed, TLS handshake done or not). */
  get openConnections(): number {
    return this.sockets.size;
  }

  /** Request bytes held now by calls whose handler has not run yet (the budget's use). */
  get requestBytesHeld(): number {
    return this.context.budget.held;
  }

  /** Adds the unary methods of `definition`; a streaming method, or one without a handler, is refused. */
  addService(definition: grpc.ServiceDefinition, implementation: UnaryServiceImplementation): void {
    const added: Method[] = [];
    for (const [name, method] of Object.entries(definition)) {
      if (method.requestStream || method.responseStream) {
        throw new Error(`${method.path} is a streaming method: this server serves unary methods only`);
      }
      const handler = implementation[name] as UnaryHandler | undefined;
      if (typeof handler !== 'function') throw new Error(`no handler for ${method.path}`);
      if (this.methods.has(method.path) || added.some((m) => m.path === method.path)) throw new Error(`${method.path} is served already`);
      added.push({ path: method.path, handler, deserialize: method.requestDeserialize, serialize: method.responseSerialize as (value: unknown) => Buffer });
    }
    for (const m of added) this.methods.set(m.path, m);
  }

  /** Listens on host:port (0 picks one); resolves with the bound port. */
  listen(host: string, port: number): Promise<number> {
    if (this.server !== undefined) return Promise.reject(new Error('the server is listening already'));
    const common: http2.ServerOptions = {
      // As grpc-js: Node's session memory bound degrades badly when reached, so it is off.
      maxSessionMemory: Number.MAX_SAFE_INTEGER,
      maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER,
      settings: { maxConcurrentStreams: this.options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS },
    };
    const tls = this.options.tls;
    let server: http2.Http2Server | http2.Http2SecureServer;
    if (tls !== undefined) {
      const handshakeMs = this.handshakeDeadlineMs;
      const secure = http2.createSecureServer({
        ...common,
        ...tls.contextOptions(),
        requestCert: true,
        rejectUnauthorized: true,
        allowHTTP1: false,
        // Node's own is 120 s; without a read timeout (0, or more than a timer holds) it stays.
        ...(handshakeMs !== undefined ? { handshakeTimeout: handshakeMs } : {}),
      });
      this.unsubscribeTls = tls.onChange(() => secure.setSecureContext(tls.contextOptions()));
      // A TLS socket's errors after the handshake are ours to handle (nodejs/node#35824).
      // Before Node's own listener, which gives the connection its session (and so 'session') at once.
      secure.prependListener('secureConnection', (socket: TLSSocket) => {
        socket.on('error', ignore);
        tagDestroyable(socket);
      });
      secure.on('tlsClientError', (err: NodeJS.ErrnoException, socket: TLSSocket) => {
        if (err.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.handshakeTimedOut(peerOf(socket), `did not finish its TLS handshake within ${handshakeMs} ms of being accepted`);
      });
      server = secure;
    } else {
      server = http2.createServer(common);
    }
    server.setTimeout(0);
    if (this.maxConnections > 0) {
      // net.Server closes a connection accepted past maxConnections itself, and says so by 'drop'.
      server.maxConnections = this.maxConnections;
      server.on('drop', (dropped?: { remoteAddress?: string; remotePort?: number }) => this.connectionDropped(dropped));
    }
    // Before Node's own listener, which gives a plaintext connection its HTTP/2 session at once:
    // the connection that fills the last slot must not be the idle one it makes room by closing.
    server.prependListener('connection', (socket: Socket) => {
      const address = socket.remoteAddress ?? 'unknown';
      if (!this.admitAddress(address)) {
        // Node's listener still gives it a session, which closes with the socket.
        socket.destroy();
        return;
      }
      this.sockets.add(socket);
      tagDestroyable(socket);
      this.options.onOpenConnections?.(this.sockets.size);
      socket.once('close', () => {
        this.sockets.delete(socket);
        this.releaseAddress(address);
        this.options.onOpenConnections?.(this.sockets.size);
        if (this.sockets.size <= this.maxConnections / 2) this.refusingConnections = this.evictingConnections = false;
      });
      // The last slot is taken: free one now, if some connection only holds its slot, so that the
      // next client is not refused for it.
      if (this.maxConnections > 0 && this.sockets.size >= this.maxConnections) this.evictIdlest();
    });
    server.on('session', (session: http2.ServerHttp2Session) => this.onSession(session));
    server.on('stream', (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => this.onStream(stream, headers));
    this.server = server;
    return new Promise((resolve, reject) => {
      const failed = (err: Error): void => {
        this.unsubscribeTls?.();
        this.server = undefined;
        reject(err);
      };
      server.once('error', failed);
      server.listen(port, host, () => {
        server.off('error', failed);
        server.on('error', ignore);
        // (A shutdown that came before the listening has nothing to sweep, nor anything to clear it.)
        if (!this.closing) {
          this.sweepTimer = setInterval(() => this.sweepSessions(), this.closeGraceMs);
          this.sweepTimer.unref();
        }
        resolve((server.address() as { port: number }).port);
      });
    });
  }

  /**
   * Stops accepting connections, lets the calls in progress finish (new streams are refused with
   * GOAWAY), then closes the connections; `callback` runs once all are closed.
   */
  tryShutdown(callback: (error?: Error) => void): void {
    this.closing = true;
    clearInterval(this.sweepTimer);
    let pending = 1;
    const done = (): void => {
      if (--pending === 0) callback();
    };
    const server = this.server;
    if (server !== undefined && server.listening) {
      pending++;
      server.close(() => done());
    }
    for (const session of this.sessions.keys()) {
      pending++;
      if (session.closed || session.destroyed) queueMicrotask(done);
      else session.close(done);
    }
    this.unsubscribeTls?.();
    done();
  }

  /**
   * Closes everything at once: calls in progress are cancelled, and every connection is gone
   * (sockets without a session too), so a pending tryShutdown calls back.
   */
  forceShutdown(): void {
    this.closing = true;
    clearInterval(this.sweepTimer);
    const server = this.server;
    if (server !== undefined && server.listening) server.close();
    for (const session of this.sessions.keys()) session.destroy(undefined, NGHTTP2_CANCEL);
    this.sessions.clear();
    for (const socket of this.sockets) socket.destroy();
    this.sockets.clear();
    this.unsubscribeTls?.();
  }

  private onSession(session: http2.ServerHttp2Session): void {
    if (this.closing) {
      session.destroy();
      return;
    }
    const socket = (session.socket as unknown as Destroyable)[RAW_SOCKET];
    const destroySocket = socket !== undefined ? () => socket.destroy() : () => session.destroy();
    const socketDestroyed = socket !== undefined ? () => socket.destroyed : () => session.destroyed;
    const use: SessionUse = { active: 0, idleSince: performance.now(), retiring: false, closeTimer: undefined, address: session.socket?.remoteAddress ?? 'unknown', destroySocket, socketDestroyed };
    this.sessions.set(session, use);
    // node:http2 answers a client's GOAWAY by closing (NO_ERROR) or destroying (an error code) its
    // side, and then waits for the client to close the socket: one that never does keeps its slot.
    session.on('goaway', () => this.retire(session, use, undefined, 'after-calls'));
    // Node's own protocol errors destroy the session and end the socket, which a client that does
    // not read never lets finish; the 'error' comes only once the socket has closed, so this counts
    // it then (sweepSessions destroys the socket of one that has not).
    session.on('error', (err: NodeJS.ErrnoException) => {
      // Only node:http2's own errors are protocol errors. A socket's (ECONNRESET, EPIPE: a system
      // call's) or TLS's (ERR_SSL_*) destroyed the socket already.
      if (typeof err.code === 'string' && err.code.startsWith('ERR_HTTP2_')) this.retire(session, use, `a session error: ${err.message}`, 'now');
    });
    // node:http2 closes such a session gracefully itself: its other calls are answered first.
    session.on('frameError', (type: number, code: number) => this.retire(session, use, `a frame it could not send: type ${type}, code ${code}`, 'after-calls'));
    const prefaceMs = this.handshakeDeadlineMs;
    let prefaceTimer: NodeJS.Timeout | undefined;
    if (prefaceMs !== undefined) {
      const since = this.options.tls !== undefined ? 'its TLS handshake' : 'being accepted';
      prefaceTimer = setTimeout(() => {
        prefaceTimer = undefined;
        this.handshakeTimedOut(peerOf(session.socket), `did not send the HTTP/2 preface within ${prefaceMs} ms of ${since}`);
        session.destroy();
        destroySocket();
      }, prefaceMs);
      prefaceTimer.unref();
    }
    // The client's preface ends with its SETTINGS frame: from here the connection is a client's.
    session.once('remoteSettings', () => {
      if (prefaceTimer !== undefined) clearTimeout(prefaceTimer);
      prefaceTimer = undefined;
      this.handshakesTimingOut = false;
    });
    session.once('close', () => {
      if (prefaceTimer !== undefined) clearTimeout(prefaceTimer);
      clearTimeout(use.closeTimer);
      this.sessions.delete(session);
    });
  }

  /**
   * A session that has seen a GOAWAY or a protocol error: its socket is destroyed a grace
   * (closeGraceMs) after, so that its slot comes back whatever its client does. After a GOAWAY (the
   * server's or the client's, `protocolError` undefined) the grace starts once its open calls are
   * done, as node:http2 lets them finish; after a protocol error (what node:http2 said of it) it
   * starts now, the session is destroyed at once (its calls cancelled, its GOAWAY flushed and the
   * socket ended if the client reads), and the connection reported (`protocol_error`). A frame
   * node:http2 could not send is reported too, but its session's other calls are answered first
   * (`after-calls`), as node:http2 itself closes such a session gracefully.
   */
  private retire(session: http2.ServerHttp2Session, use: SessionUse, protocolError: string | undefined, when: 'now' | 'after-calls'): void {
    if (use.retiring) return;
    use.retiring = true;
    if (protocolError !== undefined) {
      const now = performance.now();
      const first = now - this.protocolErrorLoggedAt >= PROTOCOL_ERROR_LOG_MS;
      if (first) this.protocolErrorLoggedAt = now;
      const details = `Connection closed: node:http2 ended it for a protocol error (${protocolError}); its socket is destroyed within ${this.closeGraceMs} ms whether or not the client closes it`;
      this.options.onConnectionRefused?.({ reason: 'protocol_error', peer: use.address, details, first });
    }
    if (when === 'now') {
      if (!session.destroyed) session.destroy();
      this.armCloseGrace(session, use);
    } else if (use.active === 0) {
      this.armCloseGrace(session, use);
    }
  }

  private armCloseGrace(session: http2.ServerHttp2Session, use: SessionUse): void {
    if (use.closeTimer !== undefined) return;
    use.closeTimer = setTimeout(() => this.destroyConnection(session, use), this.closeGraceMs);
    use.closeTimer.unref();
  }

  /**
   * Destroys a connection now: the session first, so that node:http2 writes nothing more on it
   * whatever its socket's pending write does, then the socket (a session destroyed only ends its
   * side, which a client that does not read never lets finish). Without its use (a session not
   * tracked) only the session is destroyed.
   */
  private destroyConnection(session: http2.Http2Session, use: SessionUse | undefined): void {
    if (!session.destroyed) session.destroy();
    use?.destroySocket();
  }

  /**
   * Every closeGraceMs: a session node:http2 has ended without telling JavaScript is retired as a
   * protocol error. On a protocol error or a flood (a frame over the size limit, nghttp2's
   * rapid-reset limit) Node 20's node:http2 sends a GOAWAY of its own and stops reading, with no
   * event, and keeps the socket until the client closes it; and one it destroyed for a protocol
   * error emits its 'error' only once the socket has closed, which a client that does not read
   * never lets happen.
   */
  private sweepSessions(): void {
    if (this.closing) return;
    for (const [session, use] of this.sessions) {
      // A destroyed socket (its own error, a handshake timeout) is about to close and free its slot.
      if (use.retiring || use.socketDestroyed()) continue;
      if (session.destroyed) this.retire(session, use, 'the session was destroyed', 'now');
      else if (nghttp2Finished(session)) this.retire(session, use, 'it sent a GOAWAY of its own and stopped reading', 'now');
    }
  }

  /**
   * Counts a new connection against its address's share: false (reported, and the connection to be
   * closed) when the address holds its share already. Without it one client could take every slot,
   * and with reconnecting, every idle client's too.
   */
  private admitAddress(address: string): boolean {
    if (this.addressShare === 0) return true;
    let held = this.byAddress.get(address);
    if (held === undefined) this.byAddress.set(address, (held = { open: 0, refusing: false }));
    if (held.open < this.addressShare) {
      held.open++;
      return true;
    }
    const first = !held.refusing;
    held.refusing = true;
    const details = `Connection refused: ${address} holds ${held.open} connections already, its share (a quarter) of the ${this.maxConnections} this server serves at once (ozone.scm.client.max.connections); closed as accepted`;
    this.options.onConnectionRefused?.({ reason: 'address_share', peer: address, details, first });
    return false;
  }

  private releaseAddress(address: string): void {
    const held = this.byAddress.get(address);
    if (held === undefined) return;
    held.open--;
    if (held.open <= this.addressShare / 2) held.refusing = false;
    if (held.open <= 0) this.byAddress.delete(address);
  }

  /**
   * Closes an idle connection (no stream open), if any: of the address holding the most
   * connections, the one idle longest. GOAWAY, so that a client knows no call was cut, then its
   * socket destroyed a second later (a peer that does not read would hold its slot through a
   * graceful close).
   */
  private evictIdlest(): void {
    let idlest: http2.ServerHttp2Session | undefined;
    let since = Infinity;
    let heldByAddress = 0;
    for (const [session, use] of this.sessions) {
      if (use.active > 0 || use.retiring || session.closed || session.destroyed) continue;
      const held = this.byAddress.get(use.address)?.open ?? 0;
      if (held > heldByAddress || (held === heldByAddress && use.idleSince < since)) {
        idlest = session;
        since = use.idleSince;
        heldByAddress = held;
      }
    }
    if (idlest === undefined) return;
    const use = this.sessions.get(idlest) as SessionUse;
    const first = !this.evictingConnections;
    this.evictingConnections = true;
    const idleMs = Math.round(performance.now() - since);
    const details = `Connection closed: idle for ${idleMs} ms when another took the last of ${this.maxConnections} connections (ozone.scm.client.max.connections); closed to make room`;
    this.options.onConnectionRefused?.({ reason: 'connection_evicted', peer: peerOf(idlest.socket), details, first });
    idlest.close();
    this.retire(idlest, use, undefined, 'after-calls');
  }

  /**
   * A connection accepted while maxConnections were open, which net.Server has closed: each had a
   * call in progress when the last slot was taken. One that has none now is closed, so that the
   * refused client's next attempt finds a slot.
   */
  private connectionDropped(dropped: { remoteAddress?: string; remotePort?: number } | undefined): void {
    const first = !this.refusingConnections;
    this.refusingConnections = true;
    const peer = peerOf(dropped);
    const details = `Connection refused: ${this.maxConnections} connections are open, the most this server serves at once (ozone.scm.client.max.connections), each with a call in progress when the last was taken; closed as accepted`;
    this.options.onConnectionRefused?.({ reason: 'connection_limit', peer, details, first });
    this.evictIdlest();
  }

  /** A connection that did not finish its handshake or send its preface in time, closed by the caller. */
  private handshakeTimedOut(peer: string, what: string): void {
    const first = !this.handshakesTimingOut;
    this.handshakesTimingOut = true;
    const details = `Connection closed: it ${what} (ozone.scm.client.request.read.timeout)`;
    this.options.onConnectionRefused?.({ reason: 'handshake_timeout', peer, details, first });
  }

  private onStream(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    // Without a listener a stream error (a reset while writing, say) would be thrown; a closed
    // stream reports itself by 'close', which cancels the call.
    stream.on('error', ignore);
    const session = stream.session as http2.ServerHttp2Session;
    const use = this.sessions.get(session);
    if (use !== undefined) {
      use.active++;
      stream.once('close', () => {
        use.active--;
        if (use.active > 0) return;
        use.idleSince = performance.now();
        // (stream.session is gone by now)
        if (use.retiring) this.armCloseGrace(session, use);
      });
    }
    if (headers[HTTP2_HEADER_METHOD] !== 'POST') {
      stream.respond({ [HTTP2_HEADER_STATUS]: HTTP_STATUS_METHOD_NOT_ALLOWED, allow: 'POST' }, { endStream: true });
      return;
    }
    const contentType = headers[HTTP2_HEADER_CONTENT_TYPE];
    if (typeof contentType !== 'string' || !contentType.startsWith('application/grpc')) {
      stream.respond({ [HTTP2_HEADER_STATUS]: HTTP_STATUS_UNSUPPORTED_MEDIA_TYPE }, { endStream: true });
      return;
    }
    const path = String(headers[HTTP2_HEADER_PATH]);
    const method = this.methods.get(path);
    if (method === undefined) {
      respondStatus(stream, { code: grpc.status.UNIMPLEMENTED, details: `The server does not implement the method ${path}`, metadata: null });
      return;
    }
    const encoding = encodingOf(headers['grpc-encoding']);
    const timeout = headers['grpc-timeout'];
    let timeoutMs: number | undefined;
    if (timeout !== undefined) {
      const match = typeof timeout === 'string' ? TIMEOUT_FORM.exec(timeout) : null;
      if (match === null) {
        respondStatus(stream, { code: grpc.status.INTERNAL, details: `Invalid grpc-timeout value "${String(timeout)}"`, metadata: null });
        return;
      }
      timeoutMs = Number(match[1]) * (TIMEOUT_UNITS_MS[match[2] as string] as number);
    }
    new ServerUnaryCall(stream, method, this.context, this.shareOf(stream.session), timeoutMs, encoding);
  }

  private shareOf(session: http2.Http2Session | undefined): ConnectionShare {
    if (session === undefined) return new ConnectionShare(this.context.shareLimit);
    let share = this.shares.get(session);
    if (share === undefined) this.shares.set(session, (share = new ConnectionShare(this.context.shareLimit)));
    return share;
  }
}

function ignore(): void {}

/** The symbol under which node:http2 keeps a session's native handle (found on the first session). */
let nativeHandleKey: symbol | undefined;

/**
 * Whether nghttp2 is done with `session`: it wants neither to read nor to write (a GOAWAY sent or
 * received and no stream left, or a GOAWAY it sent of its own for a protocol error). Read through
 * the native handle's hasPendingData(), which node:http2 itself asks before destroying a closing
 * session: node:http2 has no event or property for it. False when the handle is not found.
 */
function nghttp2Finished(session: http2.Http2Session): boolean {
  const s = session as unknown as Record<symbol, { hasPendingData?: () => boolean } | undefined>;
  nativeHandleKey ??= Object.getOwnPropertySymbols(session).find((k) => k.description === 'kHandle' && typeof s[k]?.hasPendingData === 'function');
  const handle = nativeHandleKey !== undefined ? s[nativeHandleKey] : undefined;
  return typeof handle?.hasPendingData === 'function' && !handle.hasPendingData();
}

/**
 * Whether node:http2 has a write waiting on the session's socket: bytes its socket's handle (TCP's
 * or TLS's) has not handed to the kernel yet (writeQueueSize), as when the client reads nothing.
 * True when that cannot be read (so the caller takes the safe way).
 */
function socketWriteWaiting(session: http2.Http2Session): boolean {
  try {
    const handle = (session.socket as unknown as { _handle?: { writeQueueSize?: unknown } | null })._handle;
    const waiting = handle?.writeQueueSize;
    return typeof waiting === 'number' ? waiting > 0 : true;
  } catch {
    // node:http2's socket proxy throws once the session has let go of its socket.
    return true;
  }
}

/** The retry hint of a refusal that clears in moments (src/retry-after.ts). */
function retryAfter(): grpc.Metadata {
  const metadata = new grpc.Metadata();
  metadata.set(RETRY_AFTER_METADATA, String(DEFAULT_RETRY_AFTER_MS));
  return metadata;
}

/** `address:port` of a socket's remote end (what getPeer() says); 'unknown' once it is gone. */
function peerOf(socket: { readonly remoteAddress?: string | undefined; readonly remotePort?: number | undefined } | undefined): string {
  const address = socket?.remoteAddress;
  if (address === undefined) return 'unknown';
  return socket?.remotePort !== undefined ? `${address}:${socket.remotePort}` : address;
}

/**
 * What a call keeps of its grpc-encoding header: a known encoding as the shared constant, any other
 * value as a short copy for the error text (its first characters, JSON-quoted: a new string, not a
 * slice that would keep the header's whole value).
 */
function encodingOf(header: string | string[] | undefined): string | undefined {
  if (typeof header !== 'string') return undefined;
  const known = ENCODINGS.get(header);
  if (known !== undefined) return known;
  const text = JSON.stringify(header.slice(0, ENCODING_TEXT_CHARS));
  return header.length > ENCODING_TEXT_CHARS ? `${text}… (${header.length} characters)` : text;
}

/** A copy of `bytes` in a backing store of its own (not the shared pool, whose 8 KiB slab a slice would hold). */
function ownCopy(bytes: Buffer): Buffer {
  const copy = Buffer.allocUnsafeSlow(bytes.length);
  bytes.copy(copy);
  return copy;
}

/**
 * One call: reads the single request message, runs the handler at half-close, answers once.
 * Everything after the answer, a cancel or the deadline is ignored.
 */
class ServerUnaryCall implements UnaryCall {
  request: unknown = undefined;
  cancelled = false;
  /** The answer is written (or the call cancelled): nothing more goes out. */
  private finished = false;
  private listeners: (() => void)[] | undefined;
  /** Fewer than the 5 bytes of the length prefix so far. */
  private head: Buffer | undefined;
  /** The message's length once its prefix is read, else -1. */
  private expected = -1;
  /**
   * The message's bytes so far, when it came in more than one chunk: copied into one buffer of our
   * own (the message's whole length up to WHOLE_BUFFER_BYTES, else grown by doubling), so that what
   * the call holds is what it is charged. Kept as the chunks themselves, a frame of 1 byte would
   * hold a Buffer object, and a view of the whole socket read it came in (up to 64 KiB), for 1 byte
   * of the budget.
   */
  private body: Buffer | undefined;
  private received = 0;
  /** Bytes this call holds against the server's request budget. */
  private charged = 0;
  /** Inflating the message. */
  private inflater: Unzip | Inflate | undefined;
  /** The request message, once complete (without its prefix). */
  private message: Buffer | undefined;
  /** The message's compressed flag was set: it is inflated before it is deserialized. */
  private compressed = false;
  private deadline: NodeJS.Timeout | undefined;
  /** Until the request has arrived (the read timeout). */
  private readTimer: NodeJS.Timeout | undefined;
  /** From the answer's writing until the stream closes (the read timeout again, for the way back). */
  private writeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly stream: http2.ServerHttp2Stream,
    private readonly method: Method,
    private readonly context: CallContext,
    /** The call's connection's part of the budget. */
    private readonly share: ConnectionShare,
    timeoutMs: number | undefined,
    /** The request's grpc-encoding (encodingOf), if any. */
    private readonly encoding: string | undefined,
  ) {
    if (timeoutMs !== undefined && timeoutMs < MAX_TIMER_MS) {
      this.deadline = setTimeout(() => this.expire(), timeoutMs);
    }
    const readTimeoutMs = context.readTimeoutMs;
    if (readTimeoutMs > 0 && readTimeoutMs < MAX_TIMER_MS) {
      this.readTimer = setTimeout(() => this.readTimedOut(), readTimeoutMs);
    }
    const onData = (chunk: Buffer): void => this.onData(chunk);
    stream.on('data', onData);
    stream.once('end', () => this.onEnd());
    stream.once('close', () => {
      if (this.writeTimer !== undefined) clearTimeout(this.writeTimer);
      this.cancel();
      // A closed stream's object lives on until V8's next full collection (node:http2 frees its
      // native side only then), and whatever it still reaches survives every scavenge meanwhile
      // and is promoted to the old generation. Through this listener that was the whole call: its
      // request, its handler's cancel listeners and what they hold. (A stream closed before its
      // request ended keeps its 'end' listener, and so the call, but such a call holds nothing:
      // cancel() released its bytes and no handler ran.)
      stream.off('data', onData);
    });
  }

  getPeer(): string {
    return peerOf(this.stream.session?.socket);
  }

  getAuthContext(): UnaryAuthContext {
    const socket = this.stream.session?.socket;
    if (!(socket instanceof TLSSocket) || !socket.authorized) return {};
    const certificate = socket.getPeerCertificate();
    return { transportSecurityType: 'ssl', ...(certificate.raw !== undefined ? { sslPeerCertificate: certificate } : {}) };
  }

  on(_event: 'cancelled', listener: () => void): this {
    (this.listeners ??= []).push(listener);
    return this;
  }

  once(event: 'cancelled', listener: () => void): this {
    // 'cancelled' is emitted at most once.
    return this.on(event, listener);
  }

  private onData(chunk: Buffer): void {
    if (this.finished) return;
    if (this.message !== undefined) {
      this.fail(grpc.status.UNIMPLEMENTED, `Received a second request message for unary method ${this.method.path}`);
      return;
    }
    let bytes = chunk;
    if (this.expected < 0) {
      if (this.head !== undefined) {
        bytes = Buffer.concat([this.head, chunk]);
        this.head = undefined;
      }
      if (bytes.length < 5) {
        if (!this.reserve(bytes.length)) return;
        // A copy: a view would hold the whole socket read the chunk came in.
        this.head = bytes === chunk ? Buffer.from(chunk) : bytes;
        return;
      }
      const flag = bytes[0];
      if (flag === 1) {
        if (this.encoding === undefined || this.encoding === 'identity') {
          this.fail(grpc.status.INTERNAL, `Received a compressed message but "grpc-encoding" is ${this.encoding === undefined ? 'absent' : 'identity'}`);
          return;
        }
        if (!INFLATERS.has(this.encoding)) {
          // (encodingOf quoted it.)
          this.fail(grpc.status.UNIMPLEMENTED, `Received message compressed with unsupported encoding ${this.encoding}`);
          return;
        }
        this.compressed = true;
      } else if (flag !== 0) {
        this.fail(grpc.status.INTERNAL, `Received a message with an invalid compressed flag ${String(flag)}`);
        return;
      }
      const length = bytes.readUInt32BE(1);
      const maxReceive = this.context.maxReceive;
      if (maxReceive !== -1 && length > maxReceive) {
        this.fail(grpc.status.RESOURCE_EXHAUSTED, `Received message larger than max (${length} vs ${maxReceive})`);
        return;
      }
      if (length > this.context.budget.limit) {
        // Only without a receive limit: a message the budget could never hold.
        this.refuse(length);
        return;
      }
      this.expected = length;
      bytes = bytes.subarray(5);
    }
    const missing = this.expected - this.received;
    if (bytes.length > missing) {
      this.fail(grpc.status.UNIMPLEMENTED, `Received a second request message for unary method ${this.method.path}`);
      return;
    }
    if (bytes.length === missing && this.body === undefined) {
      // The whole message in one chunk: the usual case. Kept as it came when its backing store is
      // about its size; a view of a larger socket read is copied (VIEW_SLACK_BYTES).
      if (!this.reserve(bytes.length)) return;
      this.message = bytes.buffer.byteLength > 2 * bytes.length + VIEW_SLACK_BYTES ? ownCopy(bytes) : bytes;
      return;
    }
    const needed = this.received + bytes.length;
    let body = this.body;
    if (body === undefined || needed > body.length) {
      // Up to WHOLE_BUFFER_BYTES the message's whole length at once: one allocation, each byte
      // copied once. Above it doubling: each byte is copied about twice at most, and the call never
      // holds more than twice what it was sent (nor more than the message's length). What is
      // allocated is what is held, and charged.
      const capacity = this.expected <= WHOLE_BUFFER_BYTES ? this.expected : Math.min(this.expected, Math.max(needed, 2 * (body?.length ?? 0)));
      if (!this.reserve(capacity)) return;
      // Not from the shared pool: a slice of it would hold the pool's 8 KiB slab.
      const grown = Buffer.allocUnsafeSlow(capacity);
      if (body !== undefined) body.copy(grown, 0, 0, this.received);
      body = this.body = grown;
    }
    bytes.copy(body, this.received);
    this.received = needed;
    if (this.received === this.expected) {
      this.message = body;
      this.body = undefined;
    }
  }

  /**
   * Sets the bytes this call holds against the request budget (and its connection's share) to
   * `total`; false (and the call refused, its bytes released) when more would take either past
   * its limit.
   */
  private reserve(total: number): boolean {
    const budget = this.context.budget;
    const share = this.share;
    const more = total - this.charged;
    if (more > 0) {
      if (!budget.fits(more) || !share.fits(more)) {
        this.refuse(total);
        return false;
      }
      budget.take(more);
      share.take(more);
    } else if (more < 0) {
      budget.release(-more);
      share.release(-more);
    }
    this.charged = total;
    return true;
  }

  /**
   * RESOURCE_EXHAUSTED for a call that would hold `total` bytes: past the whole budget alone (only
   * without a receive limit: no "retry later"), past what the budget has left, or past what its
   * connection's share has left.
   */
  private refuse(total: number): void {
    const budget = this.context.budget;
    const share = this.share;
    const path = this.method.path;
    let reason: CallRefusalReason = 'request_buffer';
    let details: string;
    let first: boolean;
    // The buffer and a connection's share free up as soon as the calls ahead reach their handler:
    // say when to come back (the TypeScript client waits that long), except for a call that can
    // never fit.
    let retry: grpc.Metadata | null = retryAfter();
    if (total > budget.limit) {
      retry = null;
      first = budget.refused();
      details = `Request too large: ${path} needs at least ${total} bytes held before its handler runs, more than the whole request buffer (${budget.limit}, ozone.scm.client.request.buffer.size)`;
    } else if (!budget.fits(total - this.charged)) {
      first = budget.refused();
      details = `Request buffer full: ${path} would take the bytes held for requests not yet handed to their handler past ${budget.limit} (ozone.scm.client.request.buffer.size); retry later`;
    } else {
      reason = 'connection_share';
      first = share.refused();
      details = `Connection's request buffer share full: ${path} would take the bytes its connection holds for requests not yet handed to their handler past ${share.limit} (its share of ozone.scm.client.request.buffer.size); retry later`;
    }
    this.finish({ code: grpc.status.RESOURCE_EXHAUSTED, details, metadata: retry });
    this.context.onRefused?.({ reason, method: path, peer: this.getPeer(), details, first });
  }

  /** The request has not arrived within the read timeout: UNAVAILABLE, its bytes released. */
  private readTimedOut(): void {
    this.readTimer = undefined;
    if (this.finished) return;
    const share = this.share;
    const first = !share.timedOut;
    share.timedOut = true;
    const path = this.method.path;
    const details = `Request not received in time: ${path} did not send its whole request (message and end of stream) within ${this.context.readTimeoutMs} ms of opening the call (ozone.scm.client.request.read.timeout)`;
    this.fail(grpc.status.UNAVAILABLE, details);
    this.context.onRefused?.({ reason: 'read_timeout', method: path, peer: this.getPeer(), details, first });
  }

  /** The call no longer holds request bytes: its handler runs, or it ended. */
  private releaseRequest(): void {
    this.head = undefined;
    this.body = undefined;
    this.message = undefined;
    if (this.inflater !== undefined) {
      this.inflater.destroy();
      this.inflater = undefined;
    }
    if (this.charged > 0) {
      this.context.budget.release(this.charged);
      this.share.release(this.charged);
      this.charged = 0;
    }
  }

  private onEnd(): void {
    if (this.finished) return;
    // The request has arrived: the read timeout no longer applies.
    this.clearReadTimer();
    const message = this.message;
    if (message === undefined) {
      const bytes = this.expected < 0 ? (this.head?.length ?? 0) : 5 + this.received;
      const partial = bytes > 0 ? ` (${bytes} bytes of an incomplete one)` : '';
      this.fail(grpc.status.UNIMPLEMENTED, `Received no request message for unary method ${this.method.path}${partial}`);
      return;
    }
    if (!this.compressed) {
      this.run(message);
      return;
    }
    // Inflated off the loop, never past the receive limit (a small message may expand a lot), and
    // what comes out is held against the request budget along with the compressed bytes and the
    // inflater's own memory (INFLATER_OVERHEAD_BYTES).
    if (!this.reserve(this.charged + INFLATER_OVERHEAD_BYTES)) return;
    const inflater = (this.inflater = (INFLATERS.get(this.encoding as string) as () => Unzip | Inflate)());
    const maxReceive = this.context.maxReceive;
    const out: Buffer[] = [];
    let size = 0;
    inflater.on('data', (chunk: Buffer) => {
      if (this.finished) return;
      size += chunk.length;
      if (maxReceive !== -1 && size > maxReceive) {
        this.fail(grpc.status.RESOURCE_EXHAUSTED, `Received message that decompresses to a size larger than ${maxReceive}`);
        return;
      }
      if (this.reserve(this.charged + chunk.length)) out.push(chunk);
    });
    inflater.once('error', (error: Error) => {
      if (this.finished) return;
      this.fail(grpc.status.INTERNAL, `Received a message that does not inflate (${this.encoding as string}): ${error.message}`);
    });
    inflater.once('end', () => {
      if (this.finished) return;
      this.run(Buffer.concat(out, size));
    });
    inflater.end(message);
  }

  /** Deserializes the request and hands it to the handler. */
  private run(message: Buffer): void {
    // From here the handler's admission (ozone.scm.handler.count.key) bounds what calls hold.
    this.releaseRequest();
    try {
      this.request = this.method.deserialize(message);
    } catch {
      this.fail(grpc.status.INTERNAL, 'Error deserializing request');
      return;
    }
    try {
      this.method.handler(this, (error, value, trailer) => this.answer(error, value, trailer));
    } catch {
      this.fail(grpc.status.UNKNOWN, 'Unknown error');
    }
  }

  private answer(error: grpc.ServerErrorResponse | Partial<grpc.StatusObject> | null, value: unknown, trailer?: grpc.Metadata): void {
    if (this.finished || this.stream.closed || this.stream.destroyed) return;
    if (error !== null && error !== undefined) {
      this.finish(statusOfError(error, trailer));
      return;
    }
    // Everything that can fail is done before the call counts as answered: a failure here is
    // still answered (INTERNAL), never left hanging until the client's deadline.
    let framed: Buffer;
    let trailers: http2.OutgoingHttpHeaders;
    try {
      const message = this.method.serialize(value) as Uint8Array;
      if (!(message instanceof Uint8Array)) throw new TypeError('the serializer did not return bytes');
      framed = Buffer.allocUnsafe(5 + message.byteLength);
      framed[0] = 0;
      framed.writeUInt32BE(message.byteLength, 1);
      framed.set(message, 5);
      trailers = trailer === undefined || trailer === null ? OK_TRAILERS : { ...trailer.toHttp2Headers(), ...OK_TRAILERS };
    } catch {
      this.finish({ code: grpc.status.INTERNAL, details: 'Error serializing response', metadata: null });
      return;
    }
    this.finished = true;
    this.clearDeadline();
    const stream = this.stream;
    try {
      stream.respond(RESPONSE_HEADERS, RESPOND_WITH_TRAILERS);
      stream.once('wantTrailers', () => {
        try {
          stream.sendTrailers(trailers);
        } catch {
          stream.close(NGHTTP2_INTERNAL_ERROR);
        }
      });
      stream.end(framed);
      this.awaitDelivery();
    } catch {
      // Node refused the headers (a trailer it will not send, say): the client sees the stream reset.
      stream.close(NGHTTP2_INTERNAL_ERROR);
    }
  }

  /**
   * The answer is written; the stream must now close within the read timeout, or it is reset (its
   * connection destroyed, if its client reads nothing at all: writeTimedOut). A
   * client that takes no data (an HTTP/2 window of 0) would otherwise hold the answer, queued in
   * node:http2, and its connection's slot for as long as it liked: its calls count as in progress,
   * so the connection is never closed as idle to make room. 1,025 such connections once kept every
   * new client off a leader for as long as they stayed, and 5,000 answers of 0.5 MB took it to
   * 2.5 GB.
   */
  private awaitDelivery(): void {
    const ms = this.context.readTimeoutMs;
    if (ms <= 0 || ms >= MAX_TIMER_MS || this.stream.closed) return;
    this.writeTimer = setTimeout(() => this.writeTimedOut(), ms);
    this.writeTimer.unref();
  }

  /**
   * The answer was not taken within the read timeout. Its stream is reset, unless node:http2 is
   * still waiting to write to the connection's socket (the client reads nothing at all): then the
   * connection is destroyed instead, the session first. A reset submitted while that write waits
   * is only queued by node:http2, and Node 20 loses it when the write ends (the client reads again,
   * or goes) if the stream's object is gone by then, leaving nghttp2 a stream with an answer to
   * send that node:http2 no longer knows: it then answers nghttp2's every request for that
   * stream's data with nothing, and nghttp2 writes empty DATA frames for it, without end, in one
   * synchronous loop, each copied into node:http2's outgoing buffer. 256 such connections (clients
   * that stopped reading, then left) took a leader from 330 MB to 4.7 GB within seconds, its event
   * loop held until it was deposed. A destroyed session writes nothing more, and a client that
   * reads nothing has nothing to lose by it.
   */
  private writeTimedOut(): void {
    this.writeTimer = undefined;
    const stream = this.stream;
    if (stream.closed || stream.destroyed) return;
    const session = stream.session;
    const peer = this.getPeer();
    const stalled = session !== undefined && socketWriteWaiting(session);
    if (stalled) this.context.destroyConnection(session);
    else stream.close(NGHTTP2_CANCEL);
    const share = this.share;
    const first = !share.writeTimedOut;
    share.writeTimedOut = true;
    const path = this.method.path;
    const what = stalled
      ? 'and its connection was closed: the client was not reading it at all (data was still waiting to be written to its socket)'
      : 'and its stream was reset';
    const details = `Answer not taken in time: ${path}'s answer was not received by the client within ${this.context.readTimeoutMs} ms of being sent, ${what} (ozone.scm.client.request.read.timeout)`;
    this.context.onRefused?.({ reason: 'write_timeout', method: path, peer, details, first });
  }

  /** Answers `code` unless answered already, and reads no more of the request. */
  private fail(code: grpc.status, details: string): void {
    this.finish({ code, details, metadata: null });
  }

  private finish(status: CallStatus): void {
    if (this.finished) return;
    this.finished = true;
    this.clearDeadline();
    this.releaseRequest();
    const stream = this.stream;
    if (stream.closed || stream.destroyed) return;
    try {
      respondStatus(stream, status);
    } catch {
      // Metadata that is not a grpc.Metadata, or headers Node will not send: a status without it.
      try {
        respondStatus(stream, { code: status.code, details: status.details, metadata: null });
      } catch {
        stream.close(NGHTTP2_INTERNAL_ERROR);
        return;
      }
    }
    // The client may still be sending (a message over the limit, a second one): say that the rest
    // is not wanted (RFC 9113 §8.1) once the status is out, instead of reading it.
    if (!stream.readableEnded) stream.close(NGHTTP2_NO_ERROR);
  }

  private expire(): void {
    this.deadline = undefined;
    if (this.finished) return;
    this.finish({ code: grpc.status.DEADLINE_EXCEEDED, details: 'Deadline exceeded', metadata: null });
    this.notifyCancelled();
  }

  /** The stream closed: a call not answered by then was cancelled. */
  private cancel(): void {
    if (this.finished) return;
    this.finished = true;
    this.clearDeadline();
    this.releaseRequest();
    this.notifyCancelled();
  }

  private notifyCancelled(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    const listeners = this.listeners;
    if (listeners === undefined) return;
    this.listeners = undefined;
    process.nextTick(() => {
      for (const listener of listeners) listener();
    });
  }

  /** The call is answered or cancelled: neither its deadline nor its read timeout applies. */
  private clearDeadline(): void {
    if (this.deadline !== undefined) {
      clearTimeout(this.deadline);
      this.deadline = undefined;
    }
    this.clearReadTimer();
  }

  private clearReadTimer(): void {
    if (this.readTimer !== undefined) {
      clearTimeout(this.readTimer);
      this.readTimer = undefined;
    }
  }
}

/** A trailers-only response: the status, its message and metadata in the response's headers. */
function respondStatus(stream: http2.ServerHttp2Stream, status: CallStatus): void {
  if (stream.headersSent || stream.closed || stream.destroyed) return;
  stream.respond(
    {
      ...status.metadata?.toHttp2Headers(),
      ...RESPONSE_HEADERS,
      'grpc-status': String(status.code),
      'grpc-message': percentEncode(status.details),
    },
    { endStream: true },
  );
}

/** What grpc-js' server makes of a handler's error (server-call.js serverErrorToStatus). */
function statusOfError(error: grpc.ServerErrorResponse | Partial<grpc.StatusObject>, trailer: grpc.Metadata | undefined): CallStatus {
  const e = error as { code?: unknown; details?: unknown; message?: unknown; metadata?: grpc.Metadata | null };
  let code = grpc.status.UNKNOWN;
  let details = 'message' in e ? String(e.message) : 'Unknown Error';
  if (typeof e.code === 'number' && Number.isInteger(e.code)) {
    code = e.code as grpc.status;
    if (typeof e.details === 'string') details = e.details;
  }
  return { code, details, metadata: trailer ?? e.metadata ?? null };
}

/**
 * grpc-message as the spec writes it: printable ASCII other than '%' as is, every other byte of
 * the UTF-8 form as %XX. grpc-js' client reads it with decodeURI, other clients percent-decode.
 */
export function percentEncode(message: string): string {
  let plain = true;
  for (let i = 0; i < message.length; i++) {
    const c = message.charCodeAt(i);
    if (c < 0x20 || c > 0x7e || c === 0x25) {
      plain = false;
      break;
    }
  }
  if (plain) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
