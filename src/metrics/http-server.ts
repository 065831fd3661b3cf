// The node's HTTP endpoint (Ozone's default port 9876): Prometheus metrics at `/prom` (Ozone's
// path) and `/metrics` (Prometheus' default), liveness at `/healthz`, readiness at `/readyz`, and a
// JSON view of the Raft state at `/status`. Only GET is served; it reads state, never changes it.
// With `tls` it is served over HTTPS (Ozone's ozone.http.policy, on ozone.scm.https-address) with
// the node's certificate; a client certificate is not asked for, since probes and scrapers read
// only, and the certificate is replaced in place when the node's files are rotated.
import { createServer, type IncomingMessage, type RequestListener, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { SecureContextOptions } from 'node:tls';
import type { AddressInfo } from 'node:net';
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
}

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
  const listener: RequestListener = (request, response) => {
    handle(options, request, response).catch((error: unknown) => {
      // A failing status/metrics callback must not take the node down: report it to the scraper.
      if (!response.headersSent) send(response, 500, TEXT_TYPE, `internal error: ${errorMessage(error)}\n`);
      else response.destroy();
    });
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

async function handle(options: MetricsHttpServerOptions, request: IncomingMessage, response: ServerResponse): Promise<void> {
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
      const body = await options.metrics.render();
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
