// The Prometheus metrics of one SCM node. Each node owns its own prom-client Registry with the
// default label `scm_node_id`, so several nodes can live in one process (simulations, integration
// tests) without sharing series. Process metrics come from the process-wide registry and are
// appended when the node's endpoint is scraped (see `render()`).
//
// Naming follows Prometheus conventions: `scm_` prefix, base units (`_seconds`, `_bytes`),
// `_total` on counters. Every label has a bounded value set: roles, object states, failure
// reasons and gRPC codes are fixed lists, peers are the configured members, gRPC methods come from
// the service definitions. Values outside those sets are not recorded, so they cannot create new
// series.
//
// Metrics never throw once the node runs: they are updated from timers and from the Raft loop, and
// a bad sample must not take a node down. An update that breaks an invariant is clamped, one that
// cannot be recorded is dropped, and either way the `onWarning` callback hears about it (at most
// once a minute per kind of problem). Only the constructor throws, for a node id that cannot be a
// label value.
//
// Failure counters exist at 0 from the start (for every reason, every known peer, every gRPC code
// a method can answer with), so `increase()` and `rate()` see the first failure.
import { Counter, exponentialBuckets, Gauge, Histogram, Registry } from 'prom-client';
import { packageVersion } from './build-info.js';
import { getProcessRegistry, withProcessLabel } from './process-metrics.js';

export const NODE_ID_LABEL = 'scm_node_id';

export const RAFT_ROLES = ['leader', 'follower', 'candidate', 'non-voter'] as const;
export type RaftRole = (typeof RAFT_ROLES)[number];

/** Ozone's container LifeCycleState values. */
export const CONTAINER_STATES = [
  'OPEN',
  'CLOSING',
  'QUASI_CLOSED',
  'CLOSED',
  'DELETING',
  'DELETED',
  'RECOVERING',
] as const;
export type ContainerState = (typeof CONTAINER_STATES)[number];

/** Ozone's Pipeline.PipelineState values. */
export const PIPELINE_STATES = ['ALLOCATED', 'OPEN', 'DORMANT', 'CLOSED'] as const;
export type PipelineState = (typeof PIPELINE_STATES)[number];

/**
 * Ozone's datanode operational states (HddsProtos.NodeOperationalState). Not health (HEALTHY,
 * STALE, DEAD): that needs datanode heartbeats, which this SCM does not receive, so it would be a
 * guess. A registered datanode is IN_SERVICE until maintenance or decommissioning exists here.
 */
export const DATANODE_STATES = ['IN_SERVICE', 'ENTERING_MAINTENANCE', 'IN_MAINTENANCE', 'DECOMMISSIONING', 'DECOMMISSIONED'] as const;
export type DatanodeState = (typeof DATANODE_STATES)[number];

/**
 * Why a Raft message from a peer was dropped before it changed anything: undecodable or out of
 * range, addressed to another node, naming another sender than the connection's, from outside the
 * configuration, an answer to a request never sent, or breaking the protocol's own rules.
 */
export const RAFT_DROP_REASONS = ['malformed', 'misaddressed', 'sender_mismatch', 'non_member', 'unsolicited', 'invalid'] as const;
export type RaftDropReason = (typeof RAFT_DROP_REASONS)[number];

/**
 * Why the Ratis port ended a Raft stream, or a connection before it was one: a TLS handshake that
 * failed or did not finish in time, bytes that are not the protocol (raft-stream-wire.ts), a frame
 * over the port's cap, no HELLO within its timeout, nothing at all for the idle timeout, a HELLO of
 * another cluster or naming no sender, an internal error its messages ran into. (A refused identity
 * counts in scm_auth_refusals_total, an undecodable message in scm_raft_messages_dropped_total.)
 */
export const RAFT_STREAM_REFUSAL_REASONS = ['tls_handshake', 'handshake_timeout', 'protocol', 'frame_too_large', 'frame_budget', 'frame_timeout', 'hello_timeout', 'idle', 'foreign_cluster', 'unnamed', 'internal'] as const;
export type RaftStreamRefusalReason = (typeof RAFT_STREAM_REFUSAL_REASONS)[number];

/** The gRPC ports a caller can be refused on (README, "Security"). */
export const AUTH_PORTS = ['client', 'ratis', 'grpc'] as const;
export type AuthPort = (typeof AUTH_PORTS)[number];

/**
 * Why an authenticated caller was refused (PERMISSION_DENIED): its certificate names no SCM node,
 * or a node of another service; the node is not a member; a stream or message names another
 * sender than the certificate; the name is not in ozone.administrators; no certificate at all
 * where one is needed. (Callers without a certificate of the cluster CA never complete the TLS
 * handshake, so they never reach a count.)
 */
export const AUTH_REFUSAL_REASONS = ['not_a_node', 'other_service', 'non_member', 'sender_mismatch', 'not_admin', 'no_certificate'] as const;
export type AuthRefusalReason = (typeof AUTH_REFUSAL_REASONS)[number];

/**
 * Why the leader did not serve a checkpoint download to its end (the InterSCM service's
 * SERVE_REFUSALS): a malformed request, a requester or peer over its caps, every transfer slot
 * taken, or a slot reclaimed mid-stream from a reader that made no progress (`idle`) or read slower
 * than the minimum rate (`slow`).
 */
export const SERVE_REFUSAL_REASONS = ['invalid_request', 'rate_limited', 'busy', 'idle', 'slow'] as const;
export type ServeRefusalReason = (typeof SERVE_REFUSAL_REASONS)[number];

/** Why a peer port (Ratis, InterSCM) closed a connection as it accepted it (peer-port-listener.ts). */
export const PEER_CONNECTION_REFUSAL_REASONS = ['connection_limit', 'address_share'] as const;
export type PeerConnectionRefusalReason = (typeof PEER_CONNECTION_REFUSAL_REASONS)[number];
/** The peer ports, as the auth refusals name them. */
export const PEER_PORTS = ['ratis', 'grpc'] as const;
export type PeerPort = (typeof PEER_PORTS)[number];

/**
 * Why the client port's server refused a call before its handler ran, or a connection before it
 * carried one (unary-grpc-server.ts): `request_buffer`, the call would have taken the bytes held for
 * requests not yet handed to their handler past ozone.scm.client.request.buffer.size;
 * `connection_share`, it would have taken its connection past its share of that; `read_timeout`, its
 * request did not arrive within ozone.scm.client.request.read.timeout; `write_timeout`, its answer,
 * written, was not taken by the client within that timeout (the stream was reset, or the connection
 * closed if its client read nothing at all); `connection_limit`, the
 * connection was accepted while ozone.scm.client.max.connections were open, each with a call in
 * progress; `address_share`, its client address held a quarter of that limit already;
 * `connection_evicted`, an idle connection was closed to make room when another took the last slot; `handshake_timeout`, it did not finish its TLS handshake or send the HTTP/2 preface
 * within the read timeout; `protocol_error`, node:http2 ended its session for a protocol error or a
 * flood (a GOAWAY of its own, a session error); its socket is destroyed a grace after, whether or
 * not its client closes it; `list_limit`, it was a list call (ListContainer, ListPipelines,
 * ListDatanodes) while ozone.scm.client.list.handler.count of them were in progress (client-service.ts);
 * `handler_count`, ozone.scm.handler.count.key calls were in progress (client-service.ts).
 */
export const CLIENT_REFUSAL_REASONS = ['request_buffer', 'connection_share', 'read_timeout', 'write_timeout', 'connection_limit', 'address_share', 'connection_evicted', 'handshake_timeout', 'protocol_error', 'list_limit', 'handler_count'] as const;
export type ClientRefusalReason = (typeof CLIENT_REFUSAL_REASONS)[number];

/**
 * Why the HTTP port (metrics, status, probes) closed a connection: `pipelining`, it sent more
 * requests ahead of their answers than may wait (http-server.ts, MAX_WAITING_REQUESTS).
 */
export const HTTP_REFUSAL_REASONS = ['pipelining'] as const;
export type HttpRefusalReason = (typeof HTTP_REFUSAL_REASONS)[number];

/**
 * Why start-up removed entries from the Raft log: `zeroed`, acknowledged entries found as zeros at
 * the log's end (the disk lost them); `corruption-policy`, WARN_AND_RETURN ended the log at damage.
 */
export const LOG_DROP_REASONS = ['zeroed', 'corruption-policy'] as const;
export type LogDropReason = (typeof LOG_DROP_REASONS)[number];

/**
 * Why a snapshot download or install failed; a closed set so the label stays bounded. `busy`: the
 * leader kept refusing the download as busy (RESOURCE_EXHAUSTED with a retry hint) until the
 * follower's busy budget (ozone.scm.ha.grpc.checkpoint.busy.wait.timeout) was spent, which is not
 * a network failure (`transport`).
 */
export const SNAPSHOT_FAILURE_REASONS = [
  'leader_unavailable',
  'transport',
  'busy',
  'cluster_id_mismatch',
  'offset_mismatch',
  'checksum_mismatch',
  'stale_checkpoint',
  'extract',
  'io',
  'cancelled',
  'other',
] as const;
export type SnapshotFailureReason = (typeof SNAPSHOT_FAILURE_REASONS)[number];

/** Direction of an install-snapshot notification as seen by this node. */
export type SnapshotNotificationDirection = 'sent' | 'received';

/** The gRPC status code names (grpc-js `Status`), indexed by numeric code. */
export const GRPC_CODE_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
] as const;
export type GrpcCodeName = (typeof GRPC_CODE_NAMES)[number];

/**
 * The codes our gRPC services answer with: OK, what the handlers and the typed errors of
 * src/server/errors.ts map to, what the instrumentation records for a client cancel or a thrown
 * handler, and DEADLINE_EXCEEDED. `scm_grpc_server_handled_total` starts at 0 for each of them on
 * every instrumented method. (A test checks the server code uses no other code.)
 */
export const SERVED_GRPC_CODES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'PERMISSION_DENIED',
  'OUT_OF_RANGE',
  'INTERNAL',
  'UNAVAILABLE',
] as const satisfies readonly GrpcCodeName[];

export const GRPC_CALL_TYPES = ['unary', 'client_stream', 'server_stream', 'bidi_stream'] as const;
export type GrpcCallType = (typeof GRPC_CALL_TYPES)[number];

export interface RaftIndexes {
  readonly lastLog: number;
  readonly commit: number;
  readonly applied: number;
}

export interface SnapshotTransferResult {
  readonly bytes: number;
  readonly seconds: number;
}

export interface GrpcMethod {
  readonly service: string;
  readonly method: string;
  readonly type: GrpcCallType;
}

export interface GrpcRequestObservation extends GrpcMethod {
  readonly code: GrpcCodeName;
  readonly seconds: number;
}

/** Receives what NodeMetrics could not record as given (see the header comment). */
export type MetricsWarningHandler = (message: string) => void;

export interface NodeMetricsOptions {
  /** This node's id; becomes the `scm_node_id` label on every series. */
  readonly nodeId: string;
  /** The other configured members; peer series are only accepted for these. */
  readonly peers?: readonly string[];
  /** `version` label of `scm_build_info`; package.json's version when absent. */
  readonly version?: string;
  /**
   * Told about every update that was clamped or dropped; `process.emitWarning` when absent. Pass
   * e.g. `(msg) => log.warn({ event: 'metrics_warning' }, msg)`.
   */
  readonly onWarning?: MetricsWarningHandler;
  /** Least milliseconds between two warnings of the same kind (default 60 000); 0 reports all. */
  readonly warningIntervalMs?: number;
  /** Milliseconds clock for the warning interval; tests inject one. */
  readonly now?: () => number;
}

// Latency buckets: fsync and append from 100 µs to ~3.3 s; RPCs from 500 µs to ~16 s;
// snapshot transfers from 10 ms to ~20 min (a multi-GiB checkpoint over a slow link).
const DISK_LATENCY_BUCKETS = exponentialBuckets(0.0001, 2, 16);
const RPC_LATENCY_BUCKETS = exponentialBuckets(0.0005, 2, 16);
const TRANSFER_DURATION_BUCKETS = exponentialBuckets(0.01, 2, 18);
// Peer round trips from 100 µs (loopback) to ~6.5 s.
const PEER_RTT_BUCKETS = exponentialBuckets(0.0001, 2, 17);
// Batch sizes: 1 … 4096 entries per fsync.
const ENTRIES_PER_FSYNC_BUCKETS = exponentialBuckets(1, 2, 13);

const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const DEFAULT_WARNING_INTERVAL_MS = 60_000;

export class NodeMetrics {
  readonly nodeId: string;
  readonly registry: Registry;

  private readonly knownPeers = new Set<string>();
  private lastIndexes: RaftIndexes = { lastLog: 0, commit: 0, applied: 0 };
  private readonly warnSink: MetricsWarningHandler;
  private readonly warningIntervalMs: number;
  private readonly now: () => number;
  private readonly lastWarning = new Map<string, { at: number; suppressed: number }>();

  private readonly term: Gauge;
  private readonly role: Gauge<'role'>;
  private readonly hasLeader: Gauge;
  private readonly lastLogIndex: Gauge;
  private readonly commitIndex: Gauge;
  private readonly appliedIndex: Gauge;
  private readonly snapshotIndex: Gauge;
  private readonly leaderChanges: Counter;
  private readonly elections: Counter;
  private readonly proposalsPending: Gauge;
  private readonly proposalsFailed: Counter;
  private readonly raftMessagesDropped: Counter<'reason'>;
  private readonly raftStreamRefusals: Counter<'reason'>;
  private readonly authRefusals: Counter<'port' | 'reason'>;
  private readonly logEntriesDropped: Counter<'reason'>;
  private readonly applySeconds: Histogram;
  private readonly appendSeconds: Histogram;
  private readonly fsyncSeconds: Histogram;
  private readonly entriesPerFsync: Histogram;
  private readonly raftLogSize: Gauge;
  private readonly followerLag: Gauge<'peer'>;
  private readonly peerLastContact: Gauge<'peer'>;
  private readonly peerSendFailures: Counter<'peer'>;
  private readonly peerRoundTrip: Histogram<'peer'>;
  private readonly snapshotNotifications: Counter<'direction'>;
  private readonly checkpointCreationSeconds: Histogram;
  private readonly downloads: Counter;
  private readonly downloadBytes: Counter;
  private readonly downloadSeconds: Histogram;
  private readonly downloadFailures: Counter<'reason'>;
  private readonly installs: Counter;
  private readonly installBytes: Counter;
  private readonly installSeconds: Histogram;
  private readonly installFailures: Counter<'reason'>;
  private readonly checkpointsServed: Counter;
  private readonly checkpointServedBytes: Counter;
  private readonly checkpointServeRefusals: Counter;
  private readonly clientRefusals: Counter<'reason'>;
  private readonly httpRefusals: Counter<'reason'>;
  private readonly clientConnections: Gauge;
  private readonly peerConnections: Gauge<'port'>;
  private readonly peerConnectionRefusals: Counter<'port' | 'reason'>;
  private readonly dbSize: Gauge;
  private readonly containers: Gauge<'state'>;
  private readonly pipelines: Gauge<'state'>;
  private readonly datanodes: Gauge<'state'>;
  private readonly allocations: Counter;
  private readonly consistencyMismatch: Gauge;
  private readonly removedFromGroup: Gauge;
  private readonly buildInfo: Gauge<'version'>;
  private readonly grpcHandled: Counter<'grpc_service' | 'grpc_method' | 'grpc_type' | 'grpc_code'>;
  private readonly grpcHandlingSeconds: Histogram<'grpc_service' | 'grpc_method' | 'grpc_type'>;

  constructor(options: NodeMetricsOptions) {
    if (!NODE_ID_PATTERN.test(options.nodeId)) {
      throw new Error(
        `invalid node id ${JSON.stringify(options.nodeId)}: expected 1-128 characters of letters, digits, '.', '_', ':' or '-'`,
      );
    }
    this.nodeId = options.nodeId;
    this.warnSink = options.onWarning ?? ((message) => process.emitWarning(message, 'ScmMetricsWarning'));
    this.warningIntervalMs = options.warningIntervalMs ?? DEFAULT_WARNING_INTERVAL_MS;
    this.now = options.now ?? (() => Date.now());
    this.registry = new Registry();
    this.registry.setDefaultLabels({ [NODE_ID_LABEL]: options.nodeId });
    const registers = [this.registry];

    // Raft state.
    this.term = new Gauge({ name: 'scm_raft_term', help: 'Current Raft term.', registers });
    this.role = new Gauge({
      name: 'scm_raft_role',
      help: 'Raft role of this node: 1 for the current role, 0 for the others.',
      labelNames: ['role'],
      registers,
    });
    this.hasLeader = new Gauge({
      name: 'scm_raft_has_leader',
      help: 'Whether this node knows a leader in its current term (1) or not (0).',
      registers,
    });
    this.lastLogIndex = new Gauge({
      name: 'scm_raft_last_log_index',
      help: 'Index of the last entry in the local Raft log.',
      registers,
    });
    this.commitIndex = new Gauge({
      name: 'scm_raft_commit_index',
      help: 'Highest Raft log index known to be committed.',
      registers,
    });
    this.appliedIndex = new Gauge({
      name: 'scm_raft_applied_index',
      help: 'Highest Raft log index applied to scm.db.',
      registers,
    });
    this.snapshotIndex = new Gauge({
      name: 'scm_raft_snapshot_index',
      help: 'Applied index of the latest snapshot point (taken or installed).',
      registers,
    });
    this.leaderChanges = new Counter({
      name: 'scm_raft_leader_changes_total',
      help: 'Times this node saw a leader other than the last one it knew (a term without a leader does not count).',
      registers,
    });
    this.elections = new Counter({
      name: 'scm_raft_elections_total',
      help: 'Elections this node started as a candidate.',
      registers,
    });
    this.proposalsPending = new Gauge({
      name: 'scm_raft_proposals_pending',
      help: 'Proposals this node has accepted (as leader) that are not yet committed and applied.',
      registers,
    });
    this.proposalsFailed = new Counter({
      name: 'scm_raft_proposals_failed_total',
      help: 'Proposals that failed to commit (timed out, leadership lost, not leader).',
      registers,
    });
    this.raftMessagesDropped = new Counter({
      name: 'scm_raft_messages_dropped_total',
      help: 'Raft messages from peers dropped before they changed anything, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.raftStreamRefusals = new Counter({
      name: 'scm_raft_stream_refusals_total',
      help: 'Raft streams (or connections before they were one) the Ratis port ended: tls_handshake (failed), handshake_timeout, protocol (bytes not the protocol), frame_too_large, frame_budget (frames still arriving would pass the port budget), frame_timeout (a frame not whole within a minute), hello_timeout, idle, foreign_cluster, unnamed (no sender id), internal.',
      labelNames: ['reason'],
      registers,
    });
    this.authRefusals = new Counter({
      name: 'scm_auth_refusals_total',
      help: 'Calls and streams refused with PERMISSION_DENIED, by port and reason.',
      labelNames: ['port', 'reason'],
      registers,
    });
    this.logEntriesDropped = new Counter({
      name: 'scm_raft_log_entries_dropped_total',
      help: 'Raft log entries that start-up removed from the log (acknowledged entries found zeroed, or cut by the WARN_AND_RETURN corruption policy), by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.applySeconds = new Histogram({
      name: 'scm_raft_apply_seconds',
      help: 'Time to apply one batch of committed entries: its effects, and its scm.db write unless left for later (ozone.scm.ha.dbtransactionbuffer.flush.interval); each later write of such batches is observed here too.',
      buckets: DISK_LATENCY_BUCKETS,
      registers,
    });
    // Log durability.
    this.appendSeconds = new Histogram({
      name: 'scm_raft_log_append_seconds',
      help: 'Time to append a batch of entries to the Raft log segment (write, before fsync).',
      buckets: DISK_LATENCY_BUCKETS,
      registers,
    });
    this.fsyncSeconds = new Histogram({
      name: 'scm_raft_log_fsync_seconds',
      help: 'Time of one fsync of the Raft log.',
      buckets: DISK_LATENCY_BUCKETS,
      registers,
    });
    this.entriesPerFsync = new Histogram({
      name: 'scm_raft_log_entries_per_fsync',
      help: 'Raft log entries made durable by one fsync.',
      buckets: ENTRIES_PER_FSYNC_BUCKETS,
      registers,
    });
    this.raftLogSize = new Gauge({
      name: 'scm_raft_log_size_bytes',
      help: 'Bytes of the Raft log segments on disk (closed and open).',
      registers,
    });
    // Peers.
    this.followerLag = new Gauge({
      name: 'scm_raft_follower_lag_entries',
      help: "Entries a follower is behind the leader's last log index (leader only).",
      labelNames: ['peer'],
      registers,
    });
    this.peerLastContact = new Gauge({
      name: 'scm_raft_peer_last_contact_seconds',
      help: 'Seconds since this node last heard from the peer: the leader for each follower, a follower for its leader.',
      labelNames: ['peer'],
      registers,
    });
    this.peerSendFailures = new Counter({
      name: 'scm_raft_peer_send_failures_total',
      help: 'Raft messages to the peer that could not be sent or were not answered.',
      labelNames: ['peer'],
      registers,
    });
    this.peerRoundTrip = new Histogram({
      name: 'scm_raft_peer_round_trip_seconds',
      help: 'Round trip of a Raft request to the peer and its response.',
      labelNames: ['peer'],
      buckets: PEER_RTT_BUCKETS,
      registers,
    });
    // Snapshots.
    this.snapshotNotifications = new Counter({
      name: 'scm_snapshot_notifications_total',
      help: 'Install-snapshot notifications sent (leader) or received (follower).',
      labelNames: ['direction'],
      registers,
    });
    this.checkpointCreationSeconds = new Histogram({
      name: 'scm_snapshot_checkpoint_creation_seconds',
      help: 'Time to take a point-in-time checkpoint of scm.db (before packing and sending).',
      buckets: TRANSFER_DURATION_BUCKETS,
      registers,
    });
    this.downloads = new Counter({
      name: 'scm_snapshot_downloads_total',
      help: 'Completed checkpoint downloads from the leader.',
      registers,
    });
    this.downloadBytes = new Counter({
      name: 'scm_snapshot_download_bytes_total',
      help: 'Bytes of checkpoint archives downloaded from the leader.',
      registers,
    });
    this.downloadSeconds = new Histogram({
      name: 'scm_snapshot_download_seconds',
      help: 'Duration of completed checkpoint downloads.',
      buckets: TRANSFER_DURATION_BUCKETS,
      registers,
    });
    this.downloadFailures = new Counter({
      name: 'scm_snapshot_download_failures_total',
      help: 'Failed checkpoint downloads, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.installs = new Counter({
      name: 'scm_snapshot_installs_total',
      help: 'Checkpoints installed as scm.db.',
      registers,
    });
    this.installBytes = new Counter({
      name: 'scm_snapshot_install_bytes_total',
      help: 'Bytes of checkpoint archives installed.',
      registers,
    });
    this.installSeconds = new Histogram({
      name: 'scm_snapshot_install_seconds',
      help: 'Duration of checkpoint installs (verify, extract, swap, reopen).',
      buckets: TRANSFER_DURATION_BUCKETS,
      registers,
    });
    this.installFailures = new Counter({
      name: 'scm_snapshot_install_failures_total',
      help: 'Failed checkpoint installs, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.checkpointsServed = new Counter({
      name: 'scm_snapshot_checkpoints_served_total',
      help: 'Checkpoint downloads served to followers.',
      registers,
    });
    this.checkpointServedBytes = new Counter({
      name: 'scm_snapshot_served_bytes_total',
      help: 'Bytes of checkpoint archives streamed to followers.',
      registers,
    });
    this.checkpointServeRefusals = new Counter({
      name: 'scm_snapshot_serve_refusals_total',
      help: 'Checkpoint downloads refused or reclaimed mid-stream by this leader, by reason (idle and slow are slots reclaimed from readers).',
      labelNames: ['reason'],
      registers,
    });
    this.httpRefusals = new Counter({
      name: 'scm_http_refusals_total',
      help: 'Connections the HTTP port (metrics, status, probes) closed of its own accord, by reason (pipelining: more requests sent ahead of their answers than may wait).',
      labelNames: ['reason'],
      registers,
    });
    this.clientConnections = new Gauge({
      name: 'scm_client_connections',
      help: 'Connections open on the client port (ozone.scm.client.max.connections bounds them).',
      registers,
    });
    this.clientRefusals = new Counter({
      name: 'scm_client_refusals_total',
      help: 'Client calls the client port refused before their handler ran (RESOURCE_EXHAUSTED; UNAVAILABLE for read_timeout), answers it reset because the client did not take them in time (write_timeout), and connections it closed of its own accord (connection_limit, address_share, connection_evicted, handshake_timeout), by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.peerConnections = new Gauge({
      name: 'scm_peer_connections',
      help: 'Connections open on a peer port (ratis, grpc: InterSCM); ozone.scm.peer.max.connections bounds them.',
      labelNames: ['port'],
      registers,
    });
    this.peerConnectionRefusals = new Counter({
      name: 'scm_peer_connection_refusals_total',
      help: 'Connections a peer port (ratis, grpc: InterSCM) closed as it accepted them: connection_limit (ozone.scm.peer.max.connections were open), address_share (their address held a quarter of them).',
      labelNames: ['port', 'reason'],
      registers,
    });
    // SCM state.
    this.dbSize = new Gauge({
      name: 'scm_db_size_bytes',
      help: 'Bytes of scm.db on disk.',
      registers,
    });
    this.containers = new Gauge({
      name: 'scm_containers',
      help: 'Containers known to scm.db, by lifecycle state.',
      labelNames: ['state'],
      registers,
    });
    this.pipelines = new Gauge({
      name: 'scm_pipelines',
      help: 'Pipelines known to scm.db, by state.',
      labelNames: ['state'],
      registers,
    });
    this.datanodes = new Gauge({
      name: 'scm_datanodes',
      help: 'Datanodes registered with this SCM, by operational state.',
      labelNames: ['state'],
      registers,
    });
    this.allocations = new Counter({
      name: 'scm_container_allocations_total',
      help: 'Containers allocated (applied on this node).',
      registers,
    });
    this.consistencyMismatch = new Gauge({
      name: 'scm_consistency_mismatch',
      help: "1 when the last consistency check found this node's scm.db different from the quorum's at the same index, else 0.",
      registers,
    });
    this.removedFromGroup = new Gauge({
      name: 'scm_raft_removed',
      help: '1 when this node was removed from the Raft group (a committed configuration without it followed one with it) and not added back; it does not ask to rejoin by itself. Else 0.',
      registers,
    });
    this.buildInfo = new Gauge({
      name: 'scm_build_info',
      help: 'Always 1; the labels say which scm-ha version this node runs.',
      labelNames: ['version'],
      registers,
    });
    // gRPC.
    this.grpcHandled = new Counter({
      name: 'scm_grpc_server_handled_total',
      help: 'gRPC requests completed by the server, by method and status code.',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_type', 'grpc_code'],
      registers,
    });
    this.grpcHandlingSeconds = new Histogram({
      name: 'scm_grpc_server_handling_seconds',
      help: 'Time from receiving a gRPC request to sending its status.',
      labelNames: ['grpc_service', 'grpc_method', 'grpc_type'],
      buckets: RPC_LATENCY_BUCKETS,
      registers,
    });

    // Start from explicit values so every series exists from the first scrape: Prometheus
    // queries like `scm_raft_role{role="leader"} == 1`, increase() and rate() need the zero samples.
    this.setRole('follower');
    this.term.set(0);
    this.hasLeader.set(0);
    this.setIndexes(this.lastIndexes);
    this.snapshotIndex.set(0);
    this.proposalsPending.set(0);
    this.raftLogSize.set(0);
    this.dbSize.set(0);
    this.consistencyMismatch.set(0);
    this.removedFromGroup.set(0);
    this.buildInfo.set({ version: options.version ?? packageVersion() }, 1);
    for (const direction of ['sent', 'received'] as const) this.snapshotNotifications.inc({ direction }, 0);
    for (const reason of RAFT_DROP_REASONS) this.raftMessagesDropped.inc({ reason }, 0);
    for (const reason of RAFT_STREAM_REFUSAL_REASONS) this.raftStreamRefusals.inc({ reason }, 0);
    for (const port of AUTH_PORTS) for (const reason of AUTH_REFUSAL_REASONS) this.authRefusals.inc({ port, reason }, 0);
    for (const reason of LOG_DROP_REASONS) this.logEntriesDropped.inc({ reason }, 0);
    for (const reason of SERVE_REFUSAL_REASONS) this.checkpointServeRefusals.inc({ reason }, 0);
    for (const reason of CLIENT_REFUSAL_REASONS) this.clientRefusals.inc({ reason }, 0);
    for (const reason of HTTP_REFUSAL_REASONS) this.httpRefusals.inc({ reason }, 0);
    for (const port of PEER_PORTS) {
      this.peerConnections.set({ port }, 0);
      for (const reason of PEER_CONNECTION_REFUSAL_REASONS) this.peerConnectionRefusals.inc({ port, reason }, 0);
    }
    for (const reason of SNAPSHOT_FAILURE_REASONS) {
      this.downloadFailures.inc({ reason }, 0);
      this.installFailures.inc({ reason }, 0);
    }
    this.setContainersByState({});
    this.setPipelinesByState({});
    this.setDatanodesByState({});
    this.setKnownPeers(options.peers ?? []);
  }

  // ---- Raft state ----

  setRole(role: RaftRole): void {
    if (!isOneOf(RAFT_ROLES, role)) {
      this.warn('role', `unknown Raft role ${JSON.stringify(role)} not recorded: expected one of ${RAFT_ROLES.join(', ')}`);
      return;
    }
    for (const r of RAFT_ROLES) this.role.set({ role: r }, r === role ? 1 : 0);
  }

  setTerm(term: number): void {
    if (this.count('term', term)) this.term.set(term);
  }

  /** Whether this node knows a leader (itself included). RaftEvents.leaderChanged sets it. */
  setHasLeader(hasLeader: boolean): void {
    this.hasLeader.set(hasLeader ? 1 : 0);
  }

  /**
   * The local log's last index, the commit index and the applied index. Raft never applies an
   * uncommitted entry, but a sample can catch the two mid-update (a snapshot install moves the
   * applied index before the commit index catches up): then the commit index is reported as the
   * applied index, which is committed by definition, and a warning says so.
   */
  setIndexes(indexes: RaftIndexes): void {
    if (!this.count('last log index', indexes.lastLog) || !this.count('commit index', indexes.commit) || !this.count('applied index', indexes.applied)) {
      return;
    }
    let commit = indexes.commit;
    if (indexes.applied > commit) {
      this.warn(
        'applied_above_commit',
        `applied index ${indexes.applied} is above commit index ${commit}: reporting commit index ${indexes.applied}`,
      );
      commit = indexes.applied;
    }
    this.lastIndexes = { lastLog: indexes.lastLog, commit, applied: indexes.applied };
    this.lastLogIndex.set(indexes.lastLog);
    this.commitIndex.set(commit);
    this.appliedIndex.set(indexes.applied);
  }

  setSnapshotIndex(index: number): void {
    if (this.count('snapshot index', index)) this.snapshotIndex.set(index);
  }

  /** Counts one leader change; RaftEvents.leaderChanged decides what is a real change. */
  leaderChanged(): void {
    this.leaderChanges.inc();
  }

  electionStarted(): void {
    this.elections.inc();
  }

  /** Proposals accepted by this leader and not yet applied (0 on followers). */
  setProposalsPending(count: number): void {
    if (this.count('pending proposals', count)) this.proposalsPending.set(count);
  }

  /** Proposals that failed: timed out, or leadership was lost before they committed. */
  proposalFailed(count = 1): void {
    if (this.count('failed proposals', count)) this.proposalsFailed.inc(count);
  }

  /** The Ratis port ended a Raft stream (see RAFT_STREAM_REFUSAL_REASONS). */
  raftStreamRefused(reason: RaftStreamRefusalReason): void {
    if (!isOneOf(RAFT_STREAM_REFUSAL_REASONS, reason)) {
      this.warn('raft_stream_refusal', `unknown Raft stream refusal ${JSON.stringify(reason)} not recorded`);
      return;
    }
    this.raftStreamRefusals.inc({ reason });
  }

  /** A Raft message from a peer was dropped (see RAFT_DROP_REASONS). */
  raftMessageDropped(reason: RaftDropReason): void {
    if (!isOneOf(RAFT_DROP_REASONS, reason)) {
      this.warn('raft_drop_reason', `unknown Raft drop reason ${JSON.stringify(reason)} not recorded`);
      return;
    }
    this.raftMessagesDropped.inc({ reason });
  }

  /** A caller was refused on a port (see AUTH_REFUSAL_REASONS). */
  authRefused(port: AuthPort, reason: AuthRefusalReason): void {
    if (!isOneOf(AUTH_PORTS, port) || !isOneOf(AUTH_REFUSAL_REASONS, reason)) {
      this.warn('auth_refusal', `unknown refusal ${JSON.stringify({ port, reason })} not recorded`);
      return;
    }
    this.authRefusals.inc({ port, reason });
  }

  /** Connections open on the client port now. */
  setClientConnections(open: number): void {
    if (this.count('client connections', open)) this.clientConnections.set(open);
  }

  /** Connections open on a peer port now. */
  setPeerConnections(port: PeerPort, open: number): void {
    if (!isOneOf(PEER_PORTS, port)) {
      this.warn('peer_connections', `unknown peer port ${JSON.stringify(port)} not recorded`);
      return;
    }
    if (this.count('peer connections', open)) this.peerConnections.set({ port }, open);
  }

  /** A peer port closed a connection as it accepted it (see PEER_CONNECTION_REFUSAL_REASONS). */
  peerConnectionRefused(port: PeerPort, reason: PeerConnectionRefusalReason): void {
    if (!isOneOf(PEER_PORTS, port) || !isOneOf(PEER_CONNECTION_REFUSAL_REASONS, reason)) {
      this.warn('peer_connection_refusal', `unknown peer connection refusal ${JSON.stringify({ port, reason })} not recorded`);
      return;
    }
    this.peerConnectionRefusals.inc({ port, reason });
  }

  /** The client port refused a call before its handler ran (see CLIENT_REFUSAL_REASONS). */
  clientCallRefused(reason: ClientRefusalReason): void {
    if (!isOneOf(CLIENT_REFUSAL_REASONS, reason)) {
      this.warn('client_refusal', `unknown client call refusal ${JSON.stringify(reason)} not recorded`);
      return;
    }
    this.clientRefusals.inc({ reason });
  }

  /** The HTTP port closed a connection (see HTTP_REFUSAL_REASONS). */
  httpRefused(reason: HttpRefusalReason): void {
    if (!isOneOf(HTTP_REFUSAL_REASONS, reason)) {
      this.warn('http_refusal', `unknown HTTP refusal ${JSON.stringify(reason)} not recorded`);
      return;
    }
    this.httpRefusals.inc({ reason });
  }

  /** Start-up removed `count` entries from the Raft log (see LOG_DROP_REASONS). */
  logEntriesDroppedAtStart(reason: LogDropReason, count: number): void {
    if (!isOneOf(LOG_DROP_REASONS, reason) || !Number.isSafeInteger(count) || count < 0) {
      this.warn('log_entries_dropped', `unknown log drop ${JSON.stringify({ reason, count })} not recorded`);
      return;
    }
    this.logEntriesDropped.inc({ reason }, count);
  }

  /** Time to apply one batch of committed entries to scm.db. */
  observeApply(seconds: number): void {
    if (this.duration('apply duration', seconds)) this.applySeconds.observe(seconds);
  }

  // ---- Log durability ----

  observeAppend(seconds: number): void {
    if (this.duration('append duration', seconds)) this.appendSeconds.observe(seconds);
  }

  observeFsync(seconds: number, entries: number): void {
    if (!this.duration('fsync duration', seconds) || !this.count('entries per fsync', entries)) return;
    this.fsyncSeconds.observe(seconds);
    this.entriesPerFsync.observe(entries);
  }

  /** Bytes of the Raft log's segment files on disk. */
  setRaftLogSize(bytes: number): void {
    if (this.count('Raft log size', bytes)) this.raftLogSize.set(bytes);
  }

  // ---- Peers ----

  /**
   * Replace the set of peers the per-peer series may name (after a membership change). A new peer
   * starts with 0 send failures; every series of a peer no longer configured is removed, so a
   * removed member does not linger on dashboards. Invalid ids and this node itself are skipped.
   */
  setKnownPeers(peers: readonly string[]): void {
    const next = new Set<string>();
    for (const peer of peers) {
      if (!NODE_ID_PATTERN.test(peer)) this.warn('peer_id', `invalid peer id ${JSON.stringify(peer)} skipped`);
      else if (peer === this.nodeId) this.warn('peer_self', `peer list of ${this.nodeId} contains the node itself; skipped`);
      else next.add(peer);
    }
    for (const old of this.knownPeers) {
      if (next.has(old)) continue;
      this.followerLag.remove({ peer: old });
      this.peerLastContact.remove({ peer: old });
      this.peerSendFailures.remove({ peer: old });
      this.peerRoundTrip.remove({ peer: old });
    }
    for (const peer of next) if (!this.knownPeers.has(peer)) this.peerSendFailures.inc({ peer }, 0);
    this.knownPeers.clear();
    for (const peer of next) this.knownPeers.add(peer);
  }

  setFollowerLag(peerId: string, entries: number): void {
    if (this.knownPeer('follower lag', peerId) && this.count('follower lag', entries)) this.followerLag.set({ peer: peerId }, entries);
  }

  /** Drop all follower lag series: a node that stops leading no longer knows them. */
  clearFollowerLag(): void {
    this.followerLag.reset();
  }

  /**
   * Seconds since this node last heard from `peerId`. Report it for the peers this node exchanges
   * messages with in its current role: the leader for every follower, a follower for its leader.
   */
  setPeerLastContact(peerId: string, seconds: number): void {
    if (this.knownPeer('last contact', peerId) && this.duration('last contact', seconds)) this.peerLastContact.set({ peer: peerId }, seconds);
  }

  /** Drop all last-contact series (RaftEvents does on every role change). */
  clearPeerLastContact(): void {
    this.peerLastContact.reset();
  }

  /** A Raft message to `peerId` could not be sent, or its request got no response. */
  peerSendFailed(peerId: string, count = 1): void {
    if (this.knownPeer('send failure', peerId) && this.count('send failures', count)) this.peerSendFailures.inc({ peer: peerId }, count);
  }

  /** Round trip of one Raft request to `peerId` and its response. */
  observePeerRoundTrip(peerId: string, seconds: number): void {
    if (this.knownPeer('round trip', peerId) && this.duration('round trip', seconds)) this.peerRoundTrip.observe({ peer: peerId }, seconds);
  }

  // ---- Snapshots ----

  snapshotNotification(direction: SnapshotNotificationDirection): void {
    if (direction !== 'sent' && direction !== 'received') {
      this.warn('notification_direction', `unknown snapshot notification direction ${JSON.stringify(direction)} not recorded: expected sent or received`);
      return;
    }
    this.snapshotNotifications.inc({ direction });
  }

  /** Time to take one point-in-time checkpoint of scm.db (leader, before it is packed and sent). */
  observeCheckpointCreation(seconds: number): void {
    if (this.duration('checkpoint creation', seconds)) this.checkpointCreationSeconds.observe(seconds);
  }

  downloadCompleted(result: SnapshotTransferResult): void {
    if (!this.transfer('download', result)) return;
    this.downloads.inc();
    this.downloadBytes.inc(result.bytes);
    this.downloadSeconds.observe(result.seconds);
  }

  downloadFailed(reason: SnapshotFailureReason): void {
    this.downloadFailures.inc({ reason: this.failureReason(reason) });
  }

  installCompleted(result: SnapshotTransferResult): void {
    if (!this.transfer('install', result)) return;
    this.installs.inc();
    this.installBytes.inc(result.bytes);
    this.installSeconds.observe(result.seconds);
  }

  installFailed(reason: SnapshotFailureReason): void {
    this.installFailures.inc({ reason: this.failureReason(reason) });
  }

  checkpointServed(bytes: number): void {
    if (!this.count('served checkpoint bytes', bytes)) return;
    this.checkpointsServed.inc();
    this.checkpointServedBytes.inc(bytes);
  }

  /** A checkpoint download was refused, or its slot reclaimed (see SERVE_REFUSAL_REASONS). */
  checkpointServeRefused(reason: ServeRefusalReason): void {
    if (!isOneOf(SERVE_REFUSAL_REASONS, reason)) {
      this.warn('serve_refusal', `unknown checkpoint serve refusal ${JSON.stringify(reason)} not recorded`);
      return;
    }
    this.checkpointServeRefusals.inc({ reason });
  }

  // ---- SCM state ----

  /** Bytes of scm.db on disk. */
  setDbSize(bytes: number): void {
    if (this.count('scm.db size', bytes)) this.dbSize.set(bytes);
  }

  /** Set the container count of every state; states missing from `counts` are set to 0. */
  setContainersByState(counts: Partial<Record<ContainerState, number>> | ReadonlyMap<string, number>): void {
    this.setByState(this.containers, 'container', CONTAINER_STATES, counts);
  }

  /** Set the pipeline count of every state; states missing from `counts` are set to 0. */
  setPipelinesByState(counts: Partial<Record<PipelineState, number>> | ReadonlyMap<string, number>): void {
    this.setByState(this.pipelines, 'pipeline', PIPELINE_STATES, counts);
  }

  /** Set the datanode count of every health state; states missing from `counts` are set to 0. */
  setDatanodesByState(counts: Partial<Record<DatanodeState, number>> | ReadonlyMap<string, number>): void {
    this.setByState(this.datanodes, 'datanode', DATANODE_STATES, counts);
  }

  allocation(count = 1): void {
    if (this.count('allocation count', count)) this.allocations.inc(count);
  }

  /** The outcome of the latest consistency check of scm.db against the quorum. */
  setConsistencyMismatch(mismatch: boolean): void {
    this.consistencyMismatch.set(mismatch ? 1 : 0);
  }

  setRemovedFromGroup(removed: boolean): void {
    this.removedFromGroup.set(removed ? 1 : 0);
  }

  // ---- gRPC ----

  /** Creates the method's series at 0 for every served code (instrumentGrpcService calls it). */
  initGrpcMethod(method: GrpcMethod): void {
    if (!this.grpcMethod(method)) return;
    const labels = { grpc_service: method.service, grpc_method: method.method, grpc_type: method.type };
    for (const code of SERVED_GRPC_CODES) this.grpcHandled.inc({ ...labels, grpc_code: code }, 0);
  }

  observeGrpcRequest(observation: GrpcRequestObservation): void {
    const { service, method, type, code, seconds } = observation;
    if (!this.grpcMethod(observation) || !this.duration('gRPC handling time', seconds)) return;
    if (!isOneOf(GRPC_CODE_NAMES, code)) {
      this.warn('grpc_code', `unknown gRPC status code ${JSON.stringify(code)} not recorded`);
      return;
    }
    this.grpcHandled.inc({ grpc_service: service, grpc_method: method, grpc_type: type, grpc_code: code });
    this.grpcHandlingSeconds.observe({ grpc_service: service, grpc_method: method, grpc_type: type }, seconds);
  }

  /** The indexes last set, for callers that compare before updating. */
  get indexes(): RaftIndexes {
    return this.lastIndexes;
  }

  /**
   * Prometheus text exposition of this node's series followed by the process-wide ones, which get
   * this node's `scm_node_id` too (they describe the process this node runs in).
   */
  async render(): Promise<string> {
    const own = await this.registry.metrics();
    const processWide = await getProcessRegistry().metrics();
    return `${own}${withProcessLabel(processWide, NODE_ID_LABEL, this.nodeId)}`;
  }

  /** Content-Type of `render()`'s output. */
  get contentType(): string {
    return this.registry.contentType;
  }

  // ---- Validation: report and drop, never throw ----

  /** Reports a problem, at most once per interval for each `kind`, with a count of those held back. */
  private warn(kind: string, message: string): void {
    const now = this.now();
    const last = this.lastWarning.get(kind);
    if (last !== undefined && now - last.at < this.warningIntervalMs) {
      last.suppressed++;
      return;
    }
    const held = last !== undefined && last.suppressed > 0 ? ` (${last.suppressed} similar warnings since the last one)` : '';
    this.lastWarning.set(kind, { at: now, suppressed: 0 });
    try {
      this.warnSink(`metrics of ${this.nodeId}: ${message}${held}`);
    } catch {
      // A failing warning handler must not turn a metrics update into a crash either.
    }
  }

  private count(what: string, value: number): boolean {
    if (Number.isSafeInteger(value) && value >= 0) return true;
    this.warn(`count:${what}`, `${what} must be a non-negative integer, got ${String(value)}; not recorded`);
    return false;
  }

  private duration(what: string, seconds: number): boolean {
    if (Number.isFinite(seconds) && seconds >= 0) return true;
    this.warn(`duration:${what}`, `${what} must be a finite non-negative number of seconds, got ${String(seconds)}; not recorded`);
    return false;
  }

  private transfer(what: string, result: SnapshotTransferResult): boolean {
    return this.count(`${what} bytes`, result.bytes) && this.duration(`${what} duration`, result.seconds);
  }

  private knownPeer(what: string, peerId: string): boolean {
    if (this.knownPeers.has(peerId)) return true;
    this.warn(
      `peer:${what}`,
      `${what} for unknown peer ${JSON.stringify(peerId)} not recorded: configured peers are [${[...this.knownPeers].join(', ')}]`,
    );
    return false;
  }

  /** An unknown reason is counted as `other`, so the failure itself is not lost. */
  private failureReason(reason: string): SnapshotFailureReason {
    if (isOneOf(SNAPSHOT_FAILURE_REASONS, reason)) return reason;
    this.warn('failure_reason', `unknown snapshot failure reason ${JSON.stringify(reason)} counted as "other"`);
    return 'other';
  }

  private grpcMethod(method: GrpcMethod): boolean {
    if (method.service.length === 0 || method.method.length === 0) {
      this.warn('grpc_method', `gRPC observation needs a service and a method, got ${JSON.stringify({ service: method.service, method: method.method })}`);
      return false;
    }
    if (!isOneOf(GRPC_CALL_TYPES, method.type)) {
      this.warn('grpc_type', `unknown gRPC call type ${JSON.stringify(method.type)} not recorded`);
      return false;
    }
    return true;
  }

  private setByState<S extends string>(
    gauge: Gauge<'state'>,
    what: string,
    states: readonly S[],
    counts: Partial<Record<S, number>> | ReadonlyMap<string, number>,
  ): void {
    const entries: [string, number | undefined][] = counts instanceof Map ? [...counts.entries()] : Object.entries(counts);
    const next = new Map<string, number>(states.map((s) => [s, 0]));
    for (const [state, count] of entries) {
      if (!isOneOf(states, state)) {
        this.warn(`${what}_state`, `unknown ${what} state ${JSON.stringify(state)} not recorded: expected one of ${states.join(', ')}`);
        continue;
      }
      if (count === undefined || !this.count(`${what} count for ${state}`, count)) continue;
      next.set(state, count);
    }
    for (const [state, count] of next) gauge.set({ state }, count);
  }
}

function isOneOf<T extends string>(values: readonly T[], value: unknown): value is T {
  return typeof value === 'string' && (values as readonly string[]).includes(value);
}
