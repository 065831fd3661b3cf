// The Prometheus metrics of one SCM node. Each node owns its own prom-client Registry with the
// default label `scm_node_id`, so several nodes can live in one process (simulations, integration
// tests) without sharing series. Process metrics come from the process-wide registry and are
// appended when the node's endpoint is scraped (see `render()`).
//
// Naming follows Prometheus conventions: `scm_` prefix, base units (`_seconds`, `_bytes`),
// `_total` on counters. Every label has a bounded value set: roles, container states, failure
// reasons and gRPC codes are fixed lists, peers are the configured members, gRPC methods come from
// the service definitions. Values outside those sets are rejected rather than silently creating
// new series.
import { Counter, exponentialBuckets, Gauge, Histogram, Registry } from 'prom-client';
import { getProcessRegistry } from './process-metrics.js';

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

/** Why a snapshot download or install failed; a closed set so the label stays bounded. */
export const SNAPSHOT_FAILURE_REASONS = [
  'leader_unavailable',
  'transport',
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

export interface GrpcRequestObservation {
  readonly service: string;
  readonly method: string;
  readonly type: GrpcCallType;
  readonly code: GrpcCodeName;
  readonly seconds: number;
}

export interface NodeMetricsOptions {
  /** This node's id; becomes the `scm_node_id` label on every series. */
  readonly nodeId: string;
  /** The other configured members; follower lag is only accepted for these. */
  readonly peers?: readonly string[];
}

// Latency buckets: fsync and append from 100 µs to ~3.3 s; RPCs from 500 µs to ~16 s;
// snapshot transfers from 10 ms to ~20 min (a multi-GiB checkpoint over a slow link).
const DISK_LATENCY_BUCKETS = exponentialBuckets(0.0001, 2, 16);
const RPC_LATENCY_BUCKETS = exponentialBuckets(0.0005, 2, 16);
const TRANSFER_DURATION_BUCKETS = exponentialBuckets(0.01, 2, 18);
// Batch sizes: 1 … 4096 entries per fsync.
const ENTRIES_PER_FSYNC_BUCKETS = exponentialBuckets(1, 2, 13);

const NODE_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

export class NodeMetrics {
  readonly nodeId: string;
  readonly registry: Registry;

  private readonly knownPeers = new Set<string>();
  private lastIndexes: RaftIndexes = { lastLog: 0, commit: 0, applied: 0 };

  private readonly term: Gauge;
  private readonly role: Gauge<'role'>;
  private readonly lastLogIndex: Gauge;
  private readonly commitIndex: Gauge;
  private readonly appliedIndex: Gauge;
  private readonly snapshotIndex: Gauge;
  private readonly leaderChanges: Counter;
  private readonly elections: Counter;
  private readonly appendSeconds: Histogram;
  private readonly fsyncSeconds: Histogram;
  private readonly entriesPerFsync: Histogram;
  private readonly followerLag: Gauge<'peer'>;
  private readonly snapshotNotifications: Counter<'direction'>;
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
  private readonly containers: Gauge<'state'>;
  private readonly allocations: Counter;
  private readonly grpcHandled: Counter<'grpc_service' | 'grpc_method' | 'grpc_type' | 'grpc_code'>;
  private readonly grpcHandlingSeconds: Histogram<'grpc_service' | 'grpc_method' | 'grpc_type'>;

  constructor(options: NodeMetricsOptions) {
    if (!NODE_ID_PATTERN.test(options.nodeId)) {
      throw new Error(
        `invalid node id ${JSON.stringify(options.nodeId)}: expected 1-128 characters of letters, digits, '.', '_', ':' or '-'`,
      );
    }
    this.nodeId = options.nodeId;
    this.registry = new Registry();
    this.registry.setDefaultLabels({ [NODE_ID_LABEL]: options.nodeId });
    const registers = [this.registry];

    this.term = new Gauge({ name: 'scm_raft_term', help: 'Current Raft term.', registers });
    this.role = new Gauge({
      name: 'scm_raft_role',
      help: 'Raft role of this node: 1 for the current role, 0 for the others.',
      labelNames: ['role'],
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
      help: 'Times this node observed a different leader (including none).',
      registers,
    });
    this.elections = new Counter({
      name: 'scm_raft_elections_total',
      help: 'Elections this node started as a candidate.',
      registers,
    });
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
    this.followerLag = new Gauge({
      name: 'scm_raft_follower_lag_entries',
      help: "Entries a follower is behind the leader's last log index (leader only).",
      labelNames: ['peer'],
      registers,
    });
    this.snapshotNotifications = new Counter({
      name: 'scm_snapshot_notifications_total',
      help: 'Install-snapshot notifications sent (leader) or received (follower).',
      labelNames: ['direction'],
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
    this.containers = new Gauge({
      name: 'scm_containers',
      help: 'Containers known to scm.db, by lifecycle state.',
      labelNames: ['state'],
      registers,
    });
    this.allocations = new Counter({
      name: 'scm_container_allocations_total',
      help: 'Containers allocated (applied on this node).',
      registers,
    });
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
    // queries like `scm_raft_role{role="leader"} == 1` and rate() need the zero samples.
    this.setRole('follower');
    this.term.set(0);
    this.setIndexes(this.lastIndexes);
    this.snapshotIndex.set(0);
    for (const direction of ['sent', 'received'] as const) this.snapshotNotifications.inc({ direction }, 0);
    this.setContainersByState({});
    this.setKnownPeers(options.peers ?? []);
  }

  setRole(role: RaftRole): void {
    if (!(RAFT_ROLES as readonly string[]).includes(role)) {
      throw new Error(`unknown Raft role ${JSON.stringify(role)}: expected one of ${RAFT_ROLES.join(', ')}`);
    }
    for (const r of RAFT_ROLES) this.role.set({ role: r }, r === role ? 1 : 0);
  }

  setTerm(term: number): void {
    requireCount('term', term);
    this.term.set(term);
  }

  setIndexes(indexes: RaftIndexes): void {
    requireCount('last log index', indexes.lastLog);
    requireCount('commit index', indexes.commit);
    requireCount('applied index', indexes.applied);
    // Raft invariant: nothing is applied before it is committed.
    if (indexes.applied > indexes.commit) {
      throw new Error(`applied index ${indexes.applied} is above commit index ${indexes.commit}`);
    }
    this.lastIndexes = { ...indexes };
    this.lastLogIndex.set(indexes.lastLog);
    this.commitIndex.set(indexes.commit);
    this.appliedIndex.set(indexes.applied);
  }

  setSnapshotIndex(index: number): void {
    requireCount('snapshot index', index);
    this.snapshotIndex.set(index);
  }

  leaderChanged(): void {
    this.leaderChanges.inc();
  }

  electionStarted(): void {
    this.elections.inc();
  }

  observeAppend(seconds: number): void {
    requireDuration('append duration', seconds);
    this.appendSeconds.observe(seconds);
  }

  observeFsync(seconds: number, entries: number): void {
    requireDuration('fsync duration', seconds);
    requireCount('entries per fsync', entries);
    this.fsyncSeconds.observe(seconds);
    this.entriesPerFsync.observe(entries);
  }

  /**
   * Replace the set of peers lag may be reported for (after a membership change). Series of
   * peers no longer configured are removed so a removed member does not linger on dashboards.
   */
  setKnownPeers(peers: readonly string[]): void {
    for (const peer of peers) {
      if (!NODE_ID_PATTERN.test(peer)) throw new Error(`invalid peer id ${JSON.stringify(peer)}`);
      if (peer === this.nodeId) throw new Error(`peer list of ${this.nodeId} must not contain the node itself`);
    }
    const next = new Set(peers);
    for (const old of this.knownPeers) {
      if (!next.has(old)) this.followerLag.remove({ peer: old });
    }
    this.knownPeers.clear();
    for (const peer of next) this.knownPeers.add(peer);
  }

  setFollowerLag(peerId: string, entries: number): void {
    if (!this.knownPeers.has(peerId)) {
      throw new Error(
        `follower lag for unknown peer ${JSON.stringify(peerId)}: configured peers are [${[...this.knownPeers].join(', ')}]`,
      );
    }
    requireCount('follower lag', entries);
    this.followerLag.set({ peer: peerId }, entries);
  }

  /** Drop all follower lag series: a node that stops leading no longer knows them. */
  clearFollowerLag(): void {
    this.followerLag.reset();
  }

  snapshotNotification(direction: SnapshotNotificationDirection): void {
    if (direction !== 'sent' && direction !== 'received') {
      throw new Error(`unknown snapshot notification direction ${JSON.stringify(direction)}: expected sent or received`);
    }
    this.snapshotNotifications.inc({ direction });
  }

  downloadCompleted(result: SnapshotTransferResult): void {
    requireTransfer('download', result);
    this.downloads.inc();
    this.downloadBytes.inc(result.bytes);
    this.downloadSeconds.observe(result.seconds);
  }

  downloadFailed(reason: SnapshotFailureReason): void {
    requireFailureReason(reason);
    this.downloadFailures.inc({ reason });
  }

  installCompleted(result: SnapshotTransferResult): void {
    requireTransfer('install', result);
    this.installs.inc();
    this.installBytes.inc(result.bytes);
    this.installSeconds.observe(result.seconds);
  }

  installFailed(reason: SnapshotFailureReason): void {
    requireFailureReason(reason);
    this.installFailures.inc({ reason });
  }

  checkpointServed(bytes: number): void {
    requireCount('served checkpoint bytes', bytes);
    this.checkpointsServed.inc();
    this.checkpointServedBytes.inc(bytes);
  }

  /** Set the container count of every state; states missing from `counts` are set to 0. */
  setContainersByState(counts: Partial<Record<ContainerState, number>> | ReadonlyMap<string, number>): void {
    const entries: [string, number][] = counts instanceof Map ? [...counts.entries()] : Object.entries(counts);
    const next = new Map<ContainerState, number>(CONTAINER_STATES.map((s) => [s, 0]));
    for (const [state, count] of entries) {
      if (!(CONTAINER_STATES as readonly string[]).includes(state)) {
        throw new Error(`unknown container state ${JSON.stringify(state)}: expected one of ${CONTAINER_STATES.join(', ')}`);
      }
      requireCount(`container count for ${state}`, count);
      next.set(state as ContainerState, count);
    }
    for (const [state, count] of next) this.containers.set({ state }, count);
  }

  allocation(count = 1): void {
    requireCount('allocation count', count);
    this.allocations.inc(count);
  }

  observeGrpcRequest(observation: GrpcRequestObservation): void {
    const { service, method, type, code, seconds } = observation;
    if (service.length === 0 || method.length === 0) {
      throw new Error(`gRPC observation needs a service and a method, got ${JSON.stringify({ service, method })}`);
    }
    if (!(GRPC_CALL_TYPES as readonly string[]).includes(type)) {
      throw new Error(`unknown gRPC call type ${JSON.stringify(type)}`);
    }
    if (!(GRPC_CODE_NAMES as readonly string[]).includes(code)) {
      throw new Error(`unknown gRPC status code ${JSON.stringify(code)}`);
    }
    requireDuration('gRPC handling time', seconds);
    this.grpcHandled.inc({ grpc_service: service, grpc_method: method, grpc_type: type, grpc_code: code });
    this.grpcHandlingSeconds.observe({ grpc_service: service, grpc_method: method, grpc_type: type }, seconds);
  }

  /** The indexes last set, for callers that compare before updating. */
  get indexes(): RaftIndexes {
    return this.lastIndexes;
  }

  /** Prometheus text exposition of this node's series followed by the process-wide ones. */
  async render(): Promise<string> {
    const own = await this.registry.metrics();
    const processWide = await getProcessRegistry().metrics();
    return `${own}${processWide}`;
  }

  /** Content-Type of `render()`'s output. */
  get contentType(): string {
    return this.registry.contentType;
  }
}

function requireCount(what: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new Error(`${what} must be a non-negative integer, got ${String(value)}`);
  }
}

function requireDuration(what: string, seconds: number): void {
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new Error(`${what} must be a finite non-negative number of seconds, got ${String(seconds)}`);
  }
}

function requireTransfer(what: string, result: SnapshotTransferResult): void {
  requireCount(`${what} bytes`, result.bytes);
  requireDuration(`${what} duration`, result.seconds);
}

function requireFailureReason(reason: string): void {
  if (!(SNAPSHOT_FAILURE_REASONS as readonly string[]).includes(reason)) {
    throw new Error(
      `unknown snapshot failure reason ${JSON.stringify(reason)}: expected one of ${SNAPSHOT_FAILURE_REASONS.join(', ')}`,
    );
  }
}
