// The node's HTTP endpoint (Ozone's default port 9876): Prometheus metrics at `/prom` (Ozone's
// path) and `/metrics` (Prometheus' default), liveness at `/healthz`, readiness at `/readyz`, and a
// JSON view of the Raft state at `/status`. Only GET is served; it reads state, never changes it.
// With `tls` it is served over HTTPS (Ozone's ozone.http.policy, on ozone.scm.https-address) with
// the node's certificate; a client certificate is not asked for, since probes and scrapers read
// only, and the certificate is replaced in place when the node's files are rotated.
//
// Anyone who reaches the port may use it, so what one connection can make the node do is bounded:
// a connection's requests are answered one at a time, the next once the last answer has left (an
// HTTP/1.1 client may send many before reading any: node:http hands them all over at once, and a
// few MB of pipelined `GET /prom` once made a node render for 90 s and hold 1.25 GB, 3.6 GB over
// HTTPS); at most MAX_WAITING_REQUESTS may wait behind the one being answered, and a connection
// with more is closed (scrapers and probes send one at a time). Concurrent scrapes share one
// rendering of the metrics (for RENDER_SHARE_MS at most).
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import type { AddressInfo, Socket } from 'node:net';
import type { NodeMetrics, RaftRole } from './node-metrics.js';

export interface PeerStatus {
  readonly id: string;
  /** host:port of the peer's Ratis endpoint. */
  readonly address: string;
  readonly voter: boolean;
  /** Highest index known replicated on the peer; null unless this node leads. */
  readonly matchIndex: number | null;
  /**
   * Seconds since this node last heard from the peer over the Raft port; null when it does not
   * expect to (a follower hears only from its leader) or never did.
   */
  readonly lastContactSeconds: number | null;
  /** False when this node expects to hear from the peer and has not for over an election timeout. */
  readonly reachable: boolean | null;
}

export interface NodeStatus {
  readonly nodeId: string;
  readonly clusterId: string | null;
  readonly role: RaftRole;
  readonly term: number;
  /** The leader this node currently follows (itself when leading); null when unknown. */
  readonly leaderId: string | null;
  readonly indexes: {
    readonly lastLog: number;
    readonly commit: number;
    readonly applied: number;
    readonly snapshot: number;
  };
  /** All members of the current configuration, this node included. */
  readonly peers: readonly PeerStatus[];
  /** The latest consistency check of scm.db against the other members; null before the first. */
  readonly consistency: ConsistencyStatus | null;
  /**
   * The configuration entry that removed this node from the group (a committed configuration
   * without it followed one with it), while it has not been added back; null otherwise.
   */
  readonly removedFromGroup: { readonly index: number } | null;
}

export interface ConsistencyStatus {
  /** The log index of the consistency marker the hashes were taken at. */
  readonly index: number;
  /** This node's own state: MATCH, MISMATCH, UNKNOWN (it has no hash at the marker) or UNREACHABLE. */
  readonly state: string;
  /** False when any member's hash differs from the majority's. */
  readonly consistent: boolean;
  /** The members whose scm.db differed. */
  readonly mismatched: readonly string[];
  /** ISO-8601, when the check finished. */
  readonly checkedAt: string;
}

/**
 * The role names an operator reads, the same in /status as in `scm admin scm roles` (GetScmRoles):
 * Apache Ratis' names, which Ozone prints. The metrics keep their lower-case label values.
 */
export const STATUS_ROLE_NAMES = {
  leader: 'LEADER',
  follower: 'FOLLOWER',
  candidate: 'CANDIDATE',
  'non-voter': 'LISTENER',
} as const satisfies Record<RaftRole, string>;

export type StatusRoleName = (typeof STATUS_ROLE_NAMES)[RaftRole];

/** /status as served: the node status with the role named as the CLI names it. */
export type StatusDocument = Omit<NodeStatus, 'role'> & { readonly role: StatusRoleName };

export function statusDocument(status: NodeStatus): StatusDocument {
  return { ...status, role: STATUS_ROLE_NAMES[status.role] };
}

export interface Readiness {
  readonly ready: boolean;
  readonly reason: string;
}

export interface MetricsHttpServerOptions {
  readonly host: string;
  /** 0 picks a free port (tests). */
  readonly port: number;
  readonly metrics: NodeMetrics;
  readonly status: () => NodeStatus;
  readonly readiness: () => Readiness;
  /** Serve HTTPS with this key material; `onChange` reports a new set (it returns an unsubscribe). */
  readonly tls?: {
    readonly contextOptions: () => SecureContextOptions;
    readonly onChange: (listener: () => void) => () => void;
  };
  /** A connection closed for sending too many requests ahead of their answers (`first`: the first in a minute). */
  readonly onRefused?: (refusal: HttpRefusal) => void;
  /** A monotonic clock in milliseconds (performance.now when absent); tests inject one. */
  readonly now?: () => number;
}

export interface HttpRefusal {
  readonly reason: 'pipelining';
  /** `address:port` of the connection. */
  readonly peer: string;
  readonly details: string;
  /** The first refusal, or the first a minute or more after the last one reported so (log it; count every one). */
  readonly first: boolean;
}

/** Requests a connection may have waiting behind the one being answered. */
export const MAX_WAITING_REQUESTS = 16;
/** A refusal is reported as `first` again this long after the last one that was. */
const REFUSAL_REPORT_INTERVAL_MS = 60_000;
/** How long a rendering of the metrics is shared with the scrapes that arrive while it runs. */
const RENDER_SHARE_MS = 10_000;

export interface MetricsHttpServer {
  readonly host: string;
  readonly port: number;
  readonly protocol: 'http' | 'https';
  close(): Promise<void>;
}

const JSON_TYPE = 'application/json; charset=utf-8';
const TEXT_TYPE = 'text/plain; charset=utf-8';

export async function startMetricsHttpServer(options: MetricsHttpServerOptions): Promise<MetricsHttpServer> {
  const { host, port } = options;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`invalid HTTP port ${String(port)}: expected an integer 0-65535`);
  }
  const clock = options.now ?? (() => performance.now());
  let rendering: { readonly body: Promise<string>; readonly startedAt: number } | undefined;
  const endpoints: Endpoints = {
    ...options,
    // One rendering at a time, shared by the scrapes that ask meanwhile; one that has not settled
    // within RENDER_SHARE_MS is no longer shared, so that a render that hangs holds up only the
    // scrapes already waiting for it.
    render: () => {
      const now = clock();
      if (rendering !== undefined && now - rendering.startedAt < RENDER_SHARE_MS) return rendering.body;
      const current = {
        startedAt: now,
        body: options.metrics.render().finally(() => {
          if (rendering === current) rendering = undefined;
        }),
      };
      rendering = current;
      return current.body;
    },
  };
  const queues = new WeakMap<Socket, ConnectionQueue>();
  let lastReported = Number.NEGATIVE_INFINITY;
  const listener: RequestListener = (request, response) => {
    const socket = request.socket;
    if (socket.destroyed) return; // a request parsed from the same read as one that closed it
    let queue = queues.get(socket);
    if (queue === undefined) queues.set(socket, (queue = { answering: false, waiting: [] }));
    if (!queue.answering) {
      answer(endpoints, queue, request, response);
      return;
    }
    if (queue.waiting.length < MAX_WAITING_REQUESTS) {
      queue.waiting.push({ request, response });
      return;
    }
    const peer = `${socket.remoteAddress ?? 'unknown'}:${socket.remotePort ?? '?'}`;
    queue.waiting = [];
    socket.destroy();
    const now = clock();
    const first = now - lastReported >= REFUSAL_REPORT_INTERVAL_MS;
    if (first) lastReported = now;
    options.onRefused?.({ reason: 'pipelining', peer, details: `Connection closed: it sent more than ${MAX_WAITING_REQUESTS} requests ahead of their answers`, first });
  };
  const tls = options.tls;
  let unsubscribe = (): void => {};
  let server: Server;
  if (tls !== undefined) {
    const https = createHttpsServer({ ...tls.contextOptions(), requestCert: false }, listener);
    unsubscribe = tls.onChange(() => https.setSecureContext(tls.contextOptions()));
    server = https;
  } else {
    server = createServer(listener);
  }
  // Scrapes and probes are short; do not let idle keep-alive sockets hold close() open.
  server.keepAliveTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    unsubscribe();
    throw err;
  }
  const bound = server.address() as AddressInfo;
  return {
    host,
    port: bound.port,
    protocol: tls !== undefined ? 'https' : 'http',
    close: () =>
      new Promise<void>((resolve, reject) => {
        unsubscribe();
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** What a connection's requests wait on: the one being answered, and those sent behind it. */
interface ConnectionQueue {
  answering: boolean;
  waiting: Array<{ readonly request: IncomingMessage; readonly response: ServerResponse }>;
}

type Endpoints = Pick<MetricsHttpServerOptions, 'metrics' | 'status' | 'readiness'> & { readonly render: () => Promise<string> };

/** Answers `request`, then the next request of its connection that waits, once this answer has left or the connection closed. */
function answer(endpoints: Endpoints, queue: ConnectionQueue, request: IncomingMessage, response: ServerResponse): void {
  queue.answering = true;
  response.once('close', () => {
    queue.answering = false;
    const next = queue.waiting.shift();
    if (next === undefined) return;
    if (next.request.socket.destroyed) {
      queue.waiting = [];
      return;
    }
    answer(endpoints, queue, next.request, next.response);
  });
  handle(endpoints, request, response).catch((error: unknown) => {
    // A failing status/metrics callback must not take the node down: report it to the scraper.
    if (!response.headersSent) send(response, 500, TEXT_TYPE, `internal error: ${errorMessage(error)}\n`);
    else response.destroy();
  });
}

async function handle(options: Endpoints, request: IncomingMessage, response: ServerResponse): Promise<void> {
  const path = new URL(request.url ?? '/', 'http://localhost').pathname;
  if (!KNOWN_PATHS.has(path)) {
    send(response, 404, TEXT_TYPE, `no such endpoint ${path}; try ${[...KNOWN_PATHS].join(', ')}\n`);
    return;
  }
  if (request.method !== 'GET') {
    response.setHeader('Allow', 'GET');
    send(response, 405, TEXT_TYPE, `method ${request.method ?? '?'} not allowed on ${path}; use GET\n`);
    return;
  }
  switch (path) {
    case '/prom':
    case '/metrics': {
      const body = await options.render();
      send(response, 200, options.metrics.contentType, body);
      return;
    }
    case '/healthz':
      // The process answers, so it is alive; readiness is a separate question.
      send(response, 200, TEXT_TYPE, 'ok\n');
      return;
    case '/readyz': {
      const { ready, reason } = options.readiness();
      send(response, ready ? 200 : 503, TEXT_TYPE, `${ready ? 'ready' : 'not ready'}: ${reason}\n`);
      return;
    }
    case '/status':
      send(response, 200, JSON_TYPE, `${JSON.stringify(statusDocument(options.status()), null, 2)}\n`);
      return;
  }
}

const KNOWN_PATHS = new Set(['/prom', '/metrics', '/healthz', '/readyz', '/status']);

function send(response: ServerResponse, code: number, contentType: string, body: string): void {
  response.writeHead(code, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
  response.end(body);
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
