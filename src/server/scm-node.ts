// One SCM node: storage, state machine, Raft driver and its four servers (client 9860, Ratis 9894,
// InterSCM gRPC 9895, HTTP 9876), with start-up checks and an orderly shutdown.
import { randomInt, randomUUID } from 'node:crypto';
import { mkdirSync, type Dirent } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { Level } from 'level';
import type { Logger } from 'pino';
import { RaftNode, SeededRandom, type Role } from '../raft/index.js';
import { RaftStorage, type DiskTimings, type DroppedEntries } from '../storage/index.js';
import { ScmStateMachine, type AppliedConfiguration, type LogEntry, type OnComputed } from '../statemachine/index.js';
import { CheckpointProvider, recoverInterruptedInstall, registerInterScmService, SCM_DB_NAME, type RootDb } from '../snapshot/index.js';
import { KEY, requireSelf, type ScmConfig, type ScmPeerConfig } from './config.js';
import { raftGroupDir, readVersionFile, type ScmVersionInfo } from './version-file.js';

export { raftGroupDir };
import { registerClientService } from './client-service.js';
import { UnaryGrpcServer, type UnaryServiceHost } from './unary-grpc-server.js';
import { PeerCalls } from './peer-calls.js';
import { ConsistencyChecker, type ConsistencyCheckResult } from './consistency-check.js';
import { requireRaftMetaBesideScmDb } from './raft-meta-repair.js';
import { PeerContact } from './peer-contact.js';
import { grpcConnectionSink, PeerPortListener, peerServerOptions, REFUSAL_REPORT_MS, type PeerConnectionSink } from './peer-port-listener.js';
import { MemberAddresses } from './member-addresses.js';
import { hostOf } from './tls.js';
import { PeerTransport } from './peer-transport.js';
import { RaftStreamServer } from './raft-stream-server.js';
import { NodeSecurity } from './node-security.js';
import { Authorizer, RefusalReporter } from './authz.js';
import { encodeRaftMessage } from './raft-codec.js';
import { RaftInbound } from './raft-inbound.js';
import { RaftDriver } from './raft-driver.js';
import { realScheduler, type ReplicatedStateMachine } from './raft-ports.js';
import { recoverRaftState } from './raft-boot.js';
import { InterScmCheckpoints } from './interscm-checkpoints.js';
import { AdminOperations } from './admin-operations.js';
import { selfMembershipAtStart, selfMembershipOf, type SelfMembership } from './self-membership.js';
import { metricsRole, NodeStatusView } from './node-status.js';
import { ScmService, type ReplicationGateway } from './scm-service.js';
import type { ClusterInfo, ScmNodeRole } from '../api/scm-api.js';
import { NodeMetrics, type ClientRefusalReason, type PeerPort } from '../metrics/node-metrics.js';
import { RaftEvents } from '../metrics/raft-events.js';
import { startMetricsHttpServer, type HttpRefusal, type MetricsHttpServer, type NodeStatus } from '../metrics/http-server.js';
import { assessReadiness } from '../metrics/readiness.js';
import { instrumentGrpcService } from '../metrics/grpc-instrumentation.js';
import { NotLeaderError } from '../errors.js';
import { raftMessageSizes } from './raft-message-sizes.js';

export const CHECKPOINTS_DIR = 'db.checkpoints';
export { SNAPSHOT_DIR } from './interscm-checkpoints.js';
/** How long a member waits to apply a consistency marker before answering that it has not. */
const CONSISTENCY_APPLY_WAIT_MS = 5_000;
/** A peer's answer may wait for apply and for hashing all of scm.db. */
const CONSISTENCY_PEER_TIMEOUT_MS = 30_000;

/**
 * How long a commit advance waits for the next append to carry it before it is sent to followers
 * on its own. At one caller the next allocation's append comes within a few ms and carries it,
 * sparing each follower a message, a Ready and an answer per allocation; when writes stop,
 * followers learn the last commit at most twice this much later.
 */
const COMMIT_FORWARD_DELAY_MS = 5;
/** When a client refusal is logged again after one was (unary-grpc-server.ts UnaryRefusal.first). */
const QUIET_UNTIL: Readonly<Record<ClientRefusalReason, string>> = {
  request_buffer: 'until the buffer is half free',
  connection_share: 'from that connection until its share is half free',
  read_timeout: 'from that connection',
  write_timeout: 'from that connection',
  connection_limit: 'until half the connections have closed',
  connection_evicted: 'until half the connections have closed',
  address_share: 'from that address until half its connections have closed',
  handshake_timeout: 'until a connection finishes its handshake',
  protocol_error: 'for 10 s',
  list_limit: 'until half the list calls in progress have finished',
  handler_count: 'until half the calls in progress have finished',
};

/**
 * Tick period and tick counts for the core, derived from Ozone's millisecond timeouts. An election
 * waits a random time between the minimum and the maximum election timeout, as Ratis' does (the
 * maximum is the minimum plus 200 ms), not up to twice the minimum: after a leader dies the next
 * one is elected about one timeout later, not up to two. The tick is a tenth of that spread (at
 * most 100 ms, at least 5 ms) so that two followers seldom draw the same tick: both would campaign
 * at once, split the vote and wait another whole timeout.
 */
export function raftTiming(config: ScmConfig): { tickMs: number; electionTicks: number; electionJitterTicks: number; heartbeatTicks: number } {
  const spreadMs = Math.max(1, config.raft.electionTimeoutMaxMs - config.raft.electionTimeoutMinMs);
  const tickMs = Math.min(100, Math.max(5, Math.round(Math.min(config.raft.heartbeatIntervalMs / 5, spreadMs / 10))));
  const electionTicks = Math.max(3, Math.round(config.raft.electionTimeoutMinMs / tickMs));
  return {
    tickMs,
    electionTicks,
    electionJitterTicks: Math.max(1, Math.round(spreadMs / tickMs)),
    heartbeatTicks: Math.min(electionTicks - 1, Math.max(1, Math.round(config.raft.heartbeatIntervalMs / tickMs))),
  };
}

/** The configuration entry `scm init` writes: this node alone, as Ozone's primordial SCM. */
export function bootstrapConfigEntry(self: ScmPeerConfig): LogEntry {
  return { term: 0, index: 0, payload: { kind: 'config', peers: [{ id: self.nodeId, address: self.ratisAddress, priority: 0 }], listeners: [] } };
}

function listen(server: PeerPortListener, host: string, port: number, what: string): Promise<number> {
  return server.listen(host, port).catch((err: Error) => {
    throw new Error(`cannot listen on ${host}:${port} for the ${what}: ${err.message}`, { cause: err });
  });
}

/** What shutdown needs of a server: grpc.Server and UnaryGrpcServer both have it. */
interface ShutdownServer {
  tryShutdown(callback: (error?: Error) => void): void;
  forceShutdown(): void;
}

/**
 * Lets calls in progress finish for 2 s, then forces. A stop must end even if the server never
 * calls back after the force: 1 s after the force it is taken as done. (The servers destroy the
 * sockets they accepted when forced, those without an HTTP/2 session too, so none should wait on
 * a client that says nothing; this is the last guard.)
 */
function shutdown(server: ShutdownServer): Promise<void> {
  return new Promise((resolve) => {
    let giveUp: NodeJS.Timeout | undefined;
    const force = setTimeout(() => {
      server.forceShutdown();
      giveUp = setTimeout(resolve, 1_000);
    }, 2_000);
    server.tryShutdown(() => {
      clearTimeout(force);
      if (giveUp !== undefined) clearTimeout(giveUp);
      resolve();
    });
  });
}

export interface ScmNodeOptions {
  readonly config: ScmConfig;
  readonly logger: Logger;
  /** Called after the node stopped itself because it cannot go on (the daemon exits non-zero). */
  readonly onFatal?: (error: Error) => void;
  /** Bind host for the client, Ratis and gRPC servers (default 0.0.0.0). */
  readonly bindHost?: string;
}

export interface BoundPorts {
  readonly client: number;
  readonly ratis: number;
  readonly grpc: number;
  /** 0 when ozone.http.policy serves HTTPS only. */
  readonly http: number;
  /** 0 unless ozone.http.policy serves HTTPS. */
  readonly https: number;
}

/**
 * Adds a service to a gRPC server with every handler instrumented for the node's metrics. The
 * registrars call server.addService themselves, so they are handed a server whose addService
 * wraps the implementation first.
 */
function instrumented<S extends grpc.Server | UnaryServiceHost>(server: S, metrics: NodeMetrics): S {
  return new Proxy(server, {
    get(target, prop, receiver) {
      if (prop === 'addService') {
        return (definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation) =>
          (target as grpc.Server).addService(definition, instrumentGrpcService(metrics, definition, implementation));
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/**
 * Wires one node together; the pieces with their own rules live in their own modules: the Raft loop
 * (raft-driver.ts), start-up recovery (raft-boot.ts), snapshot catch-up (snapshot-catch-up.ts with
 * interscm-checkpoints.ts), membership and leadership operations (admin-operations.ts) and what the
 * node reports (node-status.ts).
 */
export class ScmNode {
  private driver!: RaftDriver;
  private transport!: PeerTransport;
  private raftStreams!: RaftStreamServer;
  /** When a refused Raft stream was last logged, by reason (each at most once a minute; the rest only counted). */
  private readonly raftStreamRefusalsLogged = new Map<string, number>();
  private readonly servers: ShutdownServer[] = [];
  private committedMembersIndex = -1;
  private stopping: Promise<void> | undefined;
  ports: BoundPorts = { client: 0, ratis: 0, grpc: 0, http: 0, https: 0 };
  role: Role = 'follower';
  private leader = '';
  readonly metrics: NodeMetrics;
  private readonly events: RaftEvents;
  private readonly admin: AdminOperations;
  private readonly view: NodeStatusView;
  private readonly peerCalls: PeerCalls;
  private readonly contact: PeerContact;
  private readonly authz: Authorizer;
  /** The members' IP addresses, which the peer ports admit past their connection limit. */
  private readonly memberAddresses: MemberAddresses;
  private inbound: RaftInbound | undefined;
  private committedVoters: string[] = [];
  private committedNonVoters: string[] = [];
  private sizeTimer: NodeJS.Timeout | undefined;
  private readonly httpServers: MetricsHttpServer[] = [];
  private gaugeTimer: NodeJS.Timeout | undefined;
  private consistencyTimer: NodeJS.Timeout | undefined;
  private readonly consistency: ConsistencyChecker;
  /** Names the periodic check's markers in the retry cache: unique per node start. */
  private readonly consistencyClientId = `scm-consistency-check-${randomUUID()}`;
  private consistencyCallId = 0;
  /** raft-meta.conf as start-up read it: evidence of a membership the node held (self-membership.ts). */
  private savedConfAtStart: AppliedConfiguration | undefined;
  /** This node's place in its group, judged again whenever a configuration changes. */
  private place: SelfMembership = { kind: 'member' };
  /** The node has decided at start-up whether to ask to be added; later changes may start it too. */
  private joinDecided = false;

  private constructor(
    readonly config: ScmConfig,
    readonly self: ScmPeerConfig,
    readonly version: ScmVersionInfo,
    readonly storage: RaftStorage,
    readonly sm: ScmStateMachine,
    readonly log: Logger,
    private readonly security: NodeSecurity,
    private readonly onFatal?: (error: Error) => void,
  ) {
    this.metrics = new NodeMetrics({
      nodeId: self.nodeId,
      peers: config.peers.map((p) => p.nodeId).filter((id) => id !== self.nodeId),
      onWarning: (message) => log.warn({ event: 'metrics_warning' }, message),
    });
    this.events = new RaftEvents(this.metrics, log);
    this.memberAddresses = new MemberAddresses({ log: { warn: (fields, msg) => log.warn(fields, msg), info: (fields, msg) => log.info(fields, msg) } });
    this.contact = new PeerContact(Date.now, config.raft.electionTimeoutMinMs, (peer, seconds) => this.metrics.observePeerRoundTrip(peer, seconds));
    const startedAt = Date.now();
    this.peerCalls = new PeerCalls(`scm-node-${self.nodeId}`, 1_000, (address, nodeId) => (nodeId !== undefined ? security.peerChannel(nodeId, address) : security.serviceChannel(address)));
    this.admin = new AdminOperations({
      driver: () => this.driver,
      config,
      self,
      peers: this.peerCalls,
      log: { info: (fields, msg) => log.info(fields, msg) },
      stillJoining: () => this.place.kind === 'joining',
    });
    this.consistency = new ConsistencyChecker({
      nodeId: self.nodeId,
      appliedIndex: () => (sm.isClosed ? 0 : sm.lastApplied().index),
      // The driver exists once the node has booted, before any check can run.
      lastLogIndex: () => (this.driver === undefined ? 0 : this.driver.core.lastIndex),
      hashAt: (index) => sm.consistencyHash(index),
      members: () => this.admin.members(),
      peerHash: (nodeId, address, index) => this.peerCalls.consistencyHash(nodeId, address, index, CONSISTENCY_PEER_TIMEOUT_MS),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
      now: Date.now,
      onChecked: (check) => this.onConsistencyChecked(check),
      applyWaitMs: CONSISTENCY_APPLY_WAIT_MS,
    });
    this.view = new NodeStatusView({
      core: () => this.driver.core,
      sm,
      self,
      clusterId: version.clusterId,
      metrics: this.metrics,
      members: () => this.admin.members(),
      peers: this.peerCalls,
      contact: this.contact,
      raftStreamOpen: (nodeId) => this.transport.stats().get(nodeId)?.connected === true,
      startedAt,
      pendingProposals: () => this.driver.pendingProposals,
      droppedMessages: () => new Map([...this.transport.stats()].map(([id, st]) => [id, st.droppedMessages])),
      events: this.events,
      removedAt: () => (this.place.kind === 'removed' ? this.place.index : null),
      consistency: () => {
        const latest = this.consistency.latest();
        if (latest === undefined) return null;
        const { report } = latest;
        return {
          index: report.index,
          state: latest.own,
          consistent: report.consistent,
          mismatched: report.nodes.filter((n) => n.state === 'MISMATCH').map((n) => n.nodeId),
          checkedAt: new Date(latest.at).toISOString(),
        };
      },
    });
    const configured = new Set(config.peers.map((p) => p.nodeId));
    this.authz = new Authorizer({
      tls: security.tls,
      serviceId: config.serviceId,
      administrators: security.administrators,
      raftPeer: (id) => this.inbound?.acceptsFrom(id) ?? false,
      member: (id) => this.inbound?.isMember(id) ?? false,
      configured: (id) => configured.has(id),
      reporter: new RefusalReporter(
        (port, reason) => this.metrics.authRefused(port, reason),
        (fields, msg) => log.warn(fields, msg),
      ),
      audit: security.audit,
    });
  }

  get clusterId(): string {
    return this.version.clusterId;
  }

  get nodeId(): string {
    return this.self.nodeId;
  }

  get core(): RaftNode {
    return this.driver.core;
  }

  static async start(options: ScmNodeOptions): Promise<ScmNode> {
    const { config } = options;
    const self = requireSelf(config);
    const version = readVersionFile(config.dbDir);
    const log = options.logger;
    // Before anything is opened: a certificate that cannot be used stops the start, naming the file.
    const security = NodeSecurity.start(config, self, log);
    const groupDir = raftGroupDir(config, version.clusterId);
    mkdirSync(groupDir, { recursive: true });
    // Storage opens before the node (and its metrics) exist; its timings reach them once they do.
    const diskTimings: { sink?: (t: DiskTimings) => void } = {};
    const droppedAtOpen: DroppedEntries[] = [];
    let storage: RaftStorage;
    try {
      storage = RaftStorage.open(groupDir, {
        onDiskTimings: (t) => diskTimings.sink?.(t),
        segmentSizeBytes: config.raft.segmentSizeBytes,
        preallocateBytes: config.raft.segmentPreallocatedSizeBytes,
        corruptionPolicy: config.raft.logCorruptionPolicy,
        cacheBytes: config.raft.logCacheBytes,
        onWarning: (msg) => log.warn({ groupDir }, msg),
        onLogEntriesDropped: (dropped) => droppedAtOpen.push(dropped),
      });
    } catch (err) {
      await security.close();
      throw err;
    }
    let sm: ScmStateMachine;
    try {
      const recovery = await recoverInterruptedInstall(config.dbDir);
      log.info({ recovery }, 'checked for an interrupted snapshot install');
      sm = await ScmStateMachine.open(join(config.dbDir, SCM_DB_NAME), { retryCacheTimeoutMs: config.raft.retryCacheTimeoutMs, selfId: self.nodeId });
    } catch (err) {
      await storage.close();
      await security.close();
      throw err;
    }
    try {
      // A node whose scm.db has applied entries has voted before: without raft-meta it could vote
      // twice in a term. Refuse, naming the file and `scm repair raft-meta`.
      requireRaftMetaBesideScmDb(storage, sm.lastApplied());
    } catch (err) {
      await sm.close();
      await storage.close();
      await security.close();
      throw err;
    }
    const node = new ScmNode(config, self, version, storage, sm, log, security, options.onFatal);
    for (const dropped of droppedAtOpen) node.metrics.logEntriesDroppedAtStart(dropped.reason, dropped.lastIndex - dropped.firstIndex + 1);
    diskTimings.sink = (t) => {
      node.metrics.observeAppend(t.writeSeconds);
      node.metrics.observeFsync(t.syncSeconds, t.entries);
    };
    try {
      await node.boot(options.bindHost ?? '0.0.0.0');
    } catch (err) {
      await node.stop();
      throw err;
    }
    return node;
  }

  private async boot(bindHost: string): Promise<void> {
    const { storage, sm, config } = this;
    // Every node starts as a follower; onSoftState follows its role from here.
    storage.setFsyncOnLoop(config.raft.followerSyncOnLoop);
    const groupDir = raftGroupDir(config, this.clusterId);
    const logBefore = { firstIndex: storage.firstIndex(), lastIndex: storage.lastIndex() };
    const boot = await recoverRaftState(storage, sm, {
      where: groupDir,
      primordial: config.primordialNodeId === this.nodeId,
      warn: (msg, fields) => this.log.warn(fields, msg),
    });
    this.savedConfAtStart = boot.savedConf;
    if (boot.reconciliation === 'log-reset') {
      // Expected after a snapshot install interrupted between replacing scm.db and resetting the log;
      // otherwise the disk lost log entries scm.db had applied. Either way nothing committed is lost
      // (scm.db holds it), but the second is a disk to look at: warn with both indexes.
      this.log.warn(
        { applied: sm.lastApplied(), logBefore },
        `Raft log ${logBefore.firstIndex}..${logBefore.lastIndex} did not reach or match scm.db's applied entry ${sm.lastApplied().term}#${sm.lastApplied().index} ` +
          '(a snapshot install interrupted before the log was reset, or log entries lost on disk); restarted the log after the applied index',
      );
    }
    const timing = raftTiming(config);
    const messageSizes = raftMessageSizes(config.raft.appenderQueueByteLimitBytes);
    const core = new RaftNode(
      {
        id: this.nodeId,
        electionTicks: timing.electionTicks,
        electionJitterTicks: timing.electionJitterTicks,
        heartbeatTicks: timing.heartbeatTicks,
        preVote: config.raft.preVote,
        checkQuorum: true,
        leaseRead: false,
        maxInflightMsgs: 256,
        maxInflightBytes: config.raft.appenderQueueByteLimitBytes,
        maxBytesPerMsg: messageSizes.appendEntryBytes,
        promoteNonVoters: true,
        random: new SeededRandom(randomInt(2 ** 31)),
        onWarning: (msg, fields) => this.log.warn(fields, msg),
        onDropped: (reason) => this.metrics.raftMessageDropped(reason),
      },
      storage,
      boot.initial,
    );

    const inbound = new RaftInbound({
      selfId: this.nodeId,
      core: () => this.driver.core,
      configuredPeers: config.peers.map((p) => p.nodeId).filter((id) => id !== this.nodeId),
      step: (m) => this.driver.step(m),
      accepted: (m) => this.contact.received(m),
      dropped: (reason) => this.metrics.raftMessageDropped(reason),
      warn: (fields, msg) => this.log.warn(fields, msg),
      ...(this.security.tls ? { authenticatedSenders: (peer: string, detail: string) => this.authz.raftSender(peer, detail).message } : {}),
    });
    this.inbound = inbound;
    this.transport = new PeerTransport({
      selfId: this.nodeId,
      clusterId: this.clusterId,
      maxBatchBytes: messageSizes.batchBytes,
      connectOptions: (peerId, address) => this.security.raftStreamTls(peerId, address),
      onWarning: (msg) => this.log.warn({ event: 'raft_stream_link' }, msg),
    });
    this.raftStreams = new RaftStreamServer({
      clusterId: this.clusterId,
      maxMessageBytes: messageSizes.frameBytes,
      admitStream: (from, connection) => {
        const refusal = this.authz.raftStream(connection, from);
        return refusal !== undefined ? { code: grpc.status.PERMISSION_DENIED, details: refusal.message } : undefined;
      },
      onMessages: (from, messages) => {
        const refusal = inbound.receive(from, messages);
        if (refusal === undefined) return undefined;
        return { code: refusal.code === 'PERMISSION_DENIED' ? grpc.status.PERMISSION_DENIED : grpc.status.INVALID_ARGUMENT, details: refusal.message };
      },
      onRefused: (reason, peer, details) => {
        this.metrics.raftStreamRefused(reason);
        const now = Date.now();
        const last = this.raftStreamRefusalsLogged.get(reason);
        if (last !== undefined && now - last < REFUSAL_REPORT_MS) return;
        this.raftStreamRefusalsLogged.set(reason, now);
        this.log[reason === 'internal' ? 'error' : 'warn'](
          { event: 'raft_stream_refused', reason, peer },
          `ended a Raft stream from ${peer} on the Ratis port: ${details}; further ones for this reason are only counted (scm_raft_stream_refusals_total) for a minute`,
        );
      },
      ...(this.security.tls ? { tls: this.security.raftStreamServerTls()! } : {}),
    });

    this.driver = new RaftDriver(
      {
        core,
        log: storage,
        sm: timedApplies(sm, (seconds) => this.metrics.observeApply(seconds)),
        scheduler: realScheduler,
        savedConfIndex: boot.savedConfIndex,
        transport: {
          send: (m) => {
            if (m.type === 'snapshot-notify') this.events.snapshotNotification('sent', { peer: m.to, term: m.term, index: m.firstIndex });
            this.contact.sent(m);
            this.transport.send(m.to, encodeRaftMessage(m));
          },
          flush: () => this.transport.flush(),
        },
        checkpoints: new InterScmCheckpoints({
          dbParentDir: config.dbDir,
          clusterId: this.clusterId,
          requesterId: this.nodeId,
          deadlineMs: config.grpcDeadlineIntervalMs,
          busyWaitTimeoutMs: config.checkpointBusyWaitTimeoutMs,
          leaderGrpcAddress: (noticeFrom) => {
            const leader = this.driver.core.leaderId;
            return this.admin.peerConfig(leader === '' ? noticeFrom : leader)?.grpcAddress;
          },
          sm,
          events: this.events,
          log: (level, msg, fields) => this.log[level](fields ?? {}, msg),
          channel: (address) => this.security.serviceChannel(address),
        }),
      },
      {
        tickMs: timing.tickMs,
        snapshotThreshold: config.raft.snapshotThreshold,
        purgeEnabled: config.raft.logPurgeEnabled,
        purgeGap: config.raft.logPurgeGap,
        purgeUptoSnapshotIndex: config.raft.logPurgeUptoSnapshotIndex,
        requestTimeoutMs: config.raft.requestTimeoutMs,
        clientAddressOf: (id) => this.admin.peerConfig(id)?.clientAddress,
        commitForwardDelayMs: Math.min(COMMIT_FORWARD_DELAY_MS, timing.tickMs),
        applyWriteDelayMs: config.raft.applyWriteDelayMs,
        maxEntryBytes: { bytes: messageSizes.entryBytes, from: `a quarter of ${KEY.appenderQueueByteLimit}` },
      },
      {
        onMembershipChange: () => this.onMembershipChange(),
        onSoftState: (role, leader, term) => this.onSoftState(role, leader, term),
        onApplied: (results) => {
          let allocations = 0;
          for (const r of results) if (!r.replayed && r.outcome.ok && r.command?.type === 'allocateContainer') allocations++;
          if (allocations > 0) this.metrics.allocation(allocations);
          // Every member checks itself at every marker it applies, leader or not: a replica that
          // diverged learns it from its own gauge.
          for (const r of results) if (r.command?.type === 'markConsistency') void this.consistency.check(r.index);
        },
        onProposalFailed: () => this.metrics.proposalFailed(),
        onError: (err) => this.log.error({ err }, 'raft loop error'),
        onFatal: (err) => this.fatal(err),
        onInfo: (msg, fields) => this.log.info(fields ?? {}, msg),
      },
    );
    this.onMembershipChange();
    this.memberAddresses.start();

    // The client port serves unary calls only, on node:http2 directly (unary-grpc-server.ts says
    // why). Per connection, at most as many calls in progress as the node admits (HTTP/2 streams):
    // a flood from one client queues at the client instead of in this node's event loop, so the
    // Raft ticks and heartbeats keep their turn. Across connections, the request bytes held before
    // a handler runs are bounded by ozone.scm.client.request.buffer.size (a quarter of it per
    // connection), and the time a request may take to arrive by ozone.scm.client.request.read.timeout;
    // the connections open at once by ozone.scm.client.max.connections (the one idle longest closed
    // to make room), and the time a new one may take to finish its handshake by the read timeout
    // again. A refusal is counted, and logged once each time a limit is reached (a flood would
    // otherwise write a line per call).
    const material = this.security.material;
    const clientServer = new UnaryGrpcServer({
      maxConcurrentStreams: config.clientMaxInFlight,
      requestBufferBytes: config.clientRequestBufferBytes,
      requestReadTimeoutMs: config.clientRequestReadTimeoutMs,
      maxConnections: config.clientMaxConnections,
      onOpenConnections: (open) => this.metrics.setClientConnections(open),
      onRefused: (refusal) => {
        this.metrics.clientCallRefused(refusal.reason);
        if (refusal.first) {
          this.log.warn(
            { event: 'client_call_refused', reason: refusal.reason, method: refusal.method, peer: refusal.peer },
            `${refusal.details} (from ${refusal.peer}); further refusals are only counted (scm_client_refusals_total) ${QUIET_UNTIL[refusal.reason]}`,
          );
        }
      },
      onConnectionRefused: (refusal) => {
        this.metrics.clientCallRefused(refusal.reason);
        if (refusal.first) {
          this.log.warn(
            { event: 'client_connection_refused', reason: refusal.reason, peer: refusal.peer },
            `${refusal.details} (from ${refusal.peer}); further ones are only counted (scm_client_refusals_total) ${QUIET_UNTIL[refusal.reason]}`,
          );
        }
      },
      ...(material === undefined ? {} : { tls: { contextOptions: () => material.secureContextOptions(), onChange: (listener: () => void) => material.onReload(listener) } }),
    });
    const service = new ScmService(() => this.sm, this.gateway());
    registerClientService(instrumented(clientServer, this.metrics), service, {
      maxListCount: config.containerListMaxCount,
      maxInFlight: config.clientMaxInFlight,
      maxListsInFlight: config.clientMaxListsInFlight,
      onAdmissionRefused: (refusal) => {
        this.metrics.clientCallRefused(refusal.reason);
        if (refusal.first) {
          this.log.warn(
            { event: 'client_call_refused', reason: refusal.reason, method: refusal.method, peer: refusal.peer },
            `${refusal.details} (from ${refusal.peer}); further refusals are only counted (scm_client_refusals_total) ${QUIET_UNTIL[refusal.reason]}`,
          );
        }
      },
      onInternalError: (err) => this.log.error({ err }, 'client request failed internally'),
      guard: { admit: (method, call) => this.authz.clientCall(method, call) },
    });
    const grpcServer = new grpc.Server(peerServerOptions());
    registerInterScmService(instrumented(grpcServer, this.metrics), {
      clusterId: this.clusterId,
      provider: new CheckpointProvider({
        db: () => levelDbOf(this.sm),
        checkpointsDir: join(config.dbDir, CHECKPOINTS_DIR),
        minUsefulIndex: () => this.storage.firstIndex(),
        checkpointOptions: { onRetry: (reason) => this.log.info({ event: 'checkpoint_retry', reason }, 'checkpoint capture retried') },
        onCreated: (checkpoint, seconds) => {
          this.metrics.observeCheckpointCreation(seconds);
          this.log.info({ event: 'checkpoint_created', index: checkpoint.termIndex.index, method: checkpoint.method, seconds }, `checkpoint of scm.db at ${checkpoint.termIndex.term}#${checkpoint.termIndex.index} taken in ${seconds.toFixed(3)} s`);
        },
      }),
      log: (level, msg, fields) => this.log[level](fields ?? {}, msg),
      onServed: (bytes) => this.metrics.checkpointServed(bytes),
      onRefused: (reason) => this.metrics.checkpointServeRefused(reason),
      minReadBytes: config.checkpointMinRead.bytes,
      readWindowMs: config.checkpointMinRead.windowMs,
      gzipLevel: config.checkpointGzipLevel,
      authorize: (call) => {
        const refusal = this.authz.download(call);
        return refusal !== undefined ? { code: grpc.status.PERMISSION_DENIED, details: refusal.message } : undefined;
      },
    });
    // grpc-js serves the peer ports, behind listeners that bound the connections open at once
    // (ozone.scm.peer.max.connections, peer-port-listener.ts says why); a member's address is
    // admitted past the limit, within its share, so that a flood cannot keep a member out.
    const credentials = this.security.serverCredentials();
    const peerPort = (sink: PeerConnectionSink, port: PeerPort): PeerPortListener =>
      new PeerPortListener(sink, {
        maxConnections: config.peerMaxConnections,
        members: this.memberAddresses,
        onOpenConnections: (open) => this.metrics.setPeerConnections(port, open),
        onRefused: (reason, peer, first) => {
          this.metrics.peerConnectionRefused(port, reason);
          if (first) {
            this.log.warn(
              { event: 'peer_connection_refused', port, reason, peer },
              `closed a connection to the ${port === 'ratis' ? 'Ratis' : 'InterSCM'} port from ${peer} as it was accepted: ${
                reason === 'connection_limit' ? `ozone.scm.peer.max.connections (${config.peerMaxConnections}) are open` : `that address holds a quarter of ozone.scm.peer.max.connections (${config.peerMaxConnections}) already`
              }; further ones are only counted (scm_peer_connection_refusals_total) ${reason === 'connection_limit' ? 'until half the connections have closed' : 'from that address until half its share has closed'}, or logged again in a minute if they go on`,
            );
          }
        },
      });
    const ratisListener = peerPort(this.raftStreams, 'ratis');
    const grpcListener = peerPort(grpcConnectionSink(grpcServer, credentials), 'grpc');
    this.servers.push(ratisListener, clientServer, grpcListener);
    this.ports = {
      ratis: await listen(ratisListener, bindHost, this.self.ratisPort, 'Raft peer service (ozone.scm.ratis.port)'),
      client: await clientServer.listen(bindHost, this.self.clientPort).catch((err: Error) => {
        throw new Error(`cannot listen on ${bindHost}:${this.self.clientPort} for the client service (ozone.scm.client.port): ${err.message}`, { cause: err });
      }),
      grpc: await listen(grpcListener, bindHost, this.self.grpcPort, 'InterSCM service (ozone.scm.grpc.port)'),
      http: 0,
      https: 0,
    };
    const endpoints = {
      metrics: this.metrics,
      status: () => this.status(),
      readiness: () => assessReadiness(this.status()),
      onRefused: (refusal: HttpRefusal) => {
        this.metrics.httpRefused(refusal.reason);
        if (refusal.first) {
          this.log.warn(
            { event: 'http_connection_refused', reason: refusal.reason, peer: refusal.peer },
            `${refusal.details} (from ${refusal.peer}); further ones are only counted (scm_http_refusals_total), or logged again in a minute if they go on`,
          );
        }
      },
    };
    const policy = config.security.httpPolicy;
    if (policy !== 'HTTPS_ONLY') {
      const http = await startMetricsHttpServer({ host: this.self.httpHost, port: this.self.httpPort, ...endpoints });
      this.httpServers.push(http);
      this.ports = { ...this.ports, http: http.port };
    }
    if (policy !== 'HTTP_ONLY' && material !== undefined) {
      const https = await startMetricsHttpServer({
        host: this.self.httpsHost,
        port: this.self.httpsPort,
        ...endpoints,
        tls: { contextOptions: () => material.secureContextOptions(), onChange: (listener) => material.onReload(listener) },
      });
      this.httpServers.push(https);
      this.ports = { ...this.ports, https: https.port };
    }
    this.view.refreshGauges();
    this.gaugeTimer = setInterval(() => this.view.refreshGauges(), 1_000);
    this.gaugeTimer.unref();
    const sizes = (): void => {
      void Promise.all([directoryBytes(join(config.dbDir, SCM_DB_NAME)), directoryBytes(join(raftGroupDir(config, this.clusterId), 'current'))]).then(([db, log]) => {
        this.metrics.setDbSize(db);
        this.metrics.setRaftLogSize(log);
      });
    };
    sizes();
    this.sizeTimer = setInterval(sizes, 10_000);
    this.sizeTimer.unref();
    if (config.consistencyCheckIntervalMs > 0) {
      this.consistencyTimer = setInterval(() => {
        if (!this.driver.isLeader()) return;
        service.checkConsistency({ clientId: this.consistencyClientId, callId: ++this.consistencyCallId }).catch((err: unknown) => {
          this.log.warn({ event: 'consistency_check_failed', err }, `consistency check could not run: ${(err as Error).message}`);
        });
      }, config.consistencyCheckIntervalMs);
      this.consistencyTimer.unref();
    }
    await this.checkPeersCluster();
    // Before the loop runs: it rewrites raft-meta.conf and applies, which can erase the evidence.
    const atStart = await selfMembershipAtStart({ selfId: this.nodeId, core: this.core, sm: this.sm, savedConf: this.savedConfAtStart });
    this.driver.start();
    this.log.info(
      { clusterId: this.clusterId, ports: this.ports, applied: sm.lastApplied(), membership: boot.initial.membership, configurationFrom: boot.configurationSource },
      'SCM started',
    );
    this.joinDecided = true;
    this.settlePlace(atStart);
  }

  /** Judges this node's place in its group again (self-membership.ts) and acts on a change. */
  private refreshPlace(): void {
    this.settlePlace(selfMembershipOf({ selfId: this.nodeId, core: this.core, sm: this.sm, savedConf: this.savedConfAtStart }));
  }

  /**
   * A removed node says so once per removal (error log, scm_raft_removed, /status) and refuses
   * client calls; a joining one asks to be added. Nothing here ever asks on behalf of a removed
   * node: only an administrator's AddScm (or a fresh `scm bootstrap`) brings it back. A re-added
   * follower catching up may apply its old removal before the re-add and pass through here briefly
   * (then `member_again`): the error says "unless a later configuration adds it back".
   */
  private settlePlace(place: SelfMembership): void {
    const before = this.place;
    this.place = place;
    if (place.kind === 'removed' && (before.kind !== 'removed' || before.index !== place.index)) {
      this.metrics.setRemovedFromGroup(true);
      this.log.error(
        { event: 'removed_from_group', index: place.index, term: place.term },
        `this SCM (${this.nodeId}) was removed from the group at index ${place.index}; unless a later configuration adds it back, it will not ask to rejoin by itself and serves no reads or writes. ` +
          'To bring it back, an administrator adds it with AddScm (what `scm start` sends after `scm bootstrap`; ScmClient.addScm, `scm admin` has no verb for it), or stop it, clear its directories and run `scm bootstrap` and `scm start` again',
      );
    } else if (place.kind !== 'removed' && before.kind === 'removed') {
      this.metrics.setRemovedFromGroup(false);
      this.log.info({ event: 'member_again', removedAt: before.index }, `this SCM (${this.nodeId}) is in the group's configuration again (it was removed at index ${before.index})`);
    }
    if (place.kind === 'joining' && this.joinDecided) this.admin.startJoining();
  }

  /** Client calls a removed node refuses: it would answer from a state the group no longer updates. */
  private refuseIfRemoved(): void {
    const place = this.place;
    if (place.kind !== 'removed') return;
    throw new NotLeaderError(undefined, undefined, `this SCM (${this.nodeId}) was removed from the group at index ${place.index}; ask another SCM`);
  }

  private onSoftState(role: Role, leader: string, term: number): void {
    // A follower's fsync is on the path of every acknowledgement, a leader's runs beside its
    // followers' (segment-writer.ts, fsyncOnLoop, says what each costs).
    this.storage.setFsyncOnLoop(this.config.raft.followerSyncOnLoop && role !== 'leader');
    if (role !== this.role) {
      if (role === 'candidate') this.events.electionStarted(term);
      else this.events.roleChanged(metricsRole(role), term);
    }
    if (leader !== this.leader) {
      this.events.leaderChanged({ term, leaderId: leader === '' ? null : leader, previousLeaderId: this.leader === '' ? null : this.leader });
    }
    this.role = role;
    this.leader = leader;
  }

  /** Refuses to run next to peers of another cluster (a reachable peer with another clusterID). */
  private async checkPeersCluster(): Promise<void> {
    const others = this.config.peers.filter((p) => p.nodeId !== this.nodeId);
    await Promise.all(
      others.map(async (peer) => {
        let info: ClusterInfo;
        try {
          info = await this.peerCalls.clusterInfo(peer.clientAddress);
        } catch {
          return; // unreachable peers are normal at start-up
        }
        if (info.clusterId !== this.clusterId) {
          throw new Error(
            `clusterID mismatch: this SCM (${this.nodeId}) has ${this.clusterId} in ${this.config.dbDir}/scm/current/VERSION, but peer ${peer.nodeId} at ${peer.clientAddress} reports ${info.clusterId}; refusing to start`,
          );
        }
      }),
    );
  }

  /** The configuration changed: connect to its members and report the committed change. */
  private onMembershipChange(): void {
    const status = this.core.status();
    const m = status.membership;
    // Configured SCMs too: a bootstrapped node has no membership until the leader's first append
    // reaches it, and must still be able to answer that leader.
    const peers = new Map<string, string>(this.config.peers.map((p) => [p.nodeId, p.ratisAddress]));
    for (const p of [...m.voters, ...m.nonVoters]) peers.set(p.id, p.address);
    // And, on a leader, the members it removed and still tells so (they would otherwise never learn).
    // One that asked for votes after its removal left our log may have no address here: the
    // configuration file names it (the Ratis port took its message for no other reason).
    for (const p of status.departing) if (p.address !== '') peers.set(p.id, p.address);
    peers.delete(this.nodeId);
    this.transport.setPeers(peers);
    void this.memberAddresses.setHosts([...peers.values()].map(hostOf));
    const committed = this.core.committedMembership();
    if (committed.index !== this.committedMembersIndex) {
      const voters = committed.membership.voters.map((p) => p.id);
      const nonVoters = committed.membership.nonVoters.map((p) => p.id);
      if (this.committedMembersIndex >= 0) {
        this.events.membershipChanged({ index: committed.index, voters, nonVoters, previousVoters: this.committedVoters, previousNonVoters: this.committedNonVoters });
      }
      this.committedVoters = voters;
      this.committedNonVoters = nonVoters;
      this.committedMembersIndex = committed.index;
    }
    this.metrics.setKnownPeers([...new Set([...this.config.peers.map((p) => p.nodeId), ...peers.keys()])].filter((id) => id !== this.nodeId));
    // Configurations, the applied one and the removal record change only here (appended,
    // committed, applied, installed, truncated): the node's place in the group may have too.
    this.refreshPlace();
  }

  /** This node's verdict on itself: the gauge, and an error line naming who differs where. */
  private onConsistencyChecked({ report, own }: ConsistencyCheckResult): void {
    if (own === 'MATCH' || own === 'MISMATCH') this.metrics.setConsistencyMismatch(own === 'MISMATCH');
    const nodes = Object.fromEntries(report.nodes.map((n) => [n.nodeId, n.state === 'MATCH' || n.state === 'MISMATCH' ? `${n.state} ${n.hash}` : `${n.state}: ${n.detail}`]));
    if (report.consistent) {
      this.log.info({ event: 'consistency_check', index: report.index, own, nodes }, `consistency check at index ${report.index}: no member differs`);
      return;
    }
    const mismatched = report.nodes.filter((n) => n.state === 'MISMATCH').map((n) => n.nodeId);
    this.log.error(
      { event: 'consistency_mismatch', index: report.index, own, mismatched, nodes },
      `consistency check at index ${report.index}: scm.db of ${mismatched.join(', ')} differs from the majority's${own === 'MISMATCH' ? ' (this node is one of them)' : ''}`,
    );
  }

  /** How the client service reaches Raft. */
  private gateway(): ReplicationGateway {
    return {
      ensureLeader: () => {
        this.refuseIfRemoved();
        if (!this.driver.isLeader()) throw this.driver.notLeaderError();
      },
      submit: (data) => this.driver.propose(data),
      readBarrier: async (consistency) => {
        this.refuseIfRemoved();
        if (consistency === 'STALE') return;
        await this.driver.readBarrier();
      },
      now: () => Date.now(),
      roles: () => this.view.roles(),
      ownRole: () => this.ownRole(),
      clusterInfo: () => this.clusterInfo(),
      transferLeadership: (newLeaderId) => this.admin.transferLeadership(newLeaderId),
      addScm: (member) => this.admin.addScm(member),
      removeScm: (nodeId) => this.admin.removeScm(nodeId),
      compareConsistency: (index) => this.consistency.check(index),
      consistencyHash: (index) => this.consistency.ownHash(index),
    };
  }

  clusterInfo(): ClusterInfo {
    const leader = this.core.leaderId;
    return {
      clusterId: this.clusterId,
      nodeId: this.nodeId,
      scmUuid: this.version.scmUuid,
      leaderId: leader,
      leaderAddress: leader === '' ? '' : (this.admin.peerConfig(leader)?.clientAddress ?? ''),
      members: this.admin.members(),
    };
  }

  /** This node's own view, as every peer reports it in GetScmRoles. */
  ownRole(): ScmNodeRole {
    return this.view.ownRole();
  }

  /** /status and /readyz: role, term, indexes and members as this node sees them. */
  status(): NodeStatus {
    return this.view.status();
  }

  /** The Raft loop cannot continue: stop everything and tell the owner (the daemon exits 1). */
  private fatal(err: Error): void {
    this.log.fatal({ err }, 'stopping: the Raft loop cannot continue');
    void this.stop()
      .catch((stopErr: unknown) => this.log.error({ err: stopErr }, 'error while stopping after a fatal error'))
      .finally(() => this.onFatal?.(err));
  }

  /**
   * Stops serving clients, lets in-flight proposals finish (the Raft peers stay up meanwhile, so
   * followers can still acknowledge), finishes the fsync in flight, closes the DB and releases the
   * storage lock.
   */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.admin.stop();
      this.memberAddresses.stop();
      if (this.gaugeTimer !== undefined) clearInterval(this.gaugeTimer);
      if (this.sizeTimer !== undefined) clearInterval(this.sizeTimer);
      if (this.consistencyTimer !== undefined) clearInterval(this.consistencyTimer);
      await Promise.all(this.httpServers.map((server) => server.close()));
      const [ratis, ...others] = this.servers;
      await Promise.all(others.map((s) => shutdown(s)));
      if (this.driver !== undefined) await this.driver.stop();
      if (ratis !== undefined) await shutdown(ratis);
      this.transport?.close();
      this.peerCalls.close();
      // Closing scm.db writes what applies left unwritten, which may fail: the storage (and its
      // in_use.lock) and the security material are released all the same.
      try {
        await this.sm.close();
      } finally {
        try {
          await this.storage.close();
        } finally {
          await this.security.close();
        }
      }
      this.log.info('SCM stopped');
    })();
    return this.stopping;
  }
}

/** Checkpoints read LevelDB's own files: the production state machine runs on classic-level. */
function levelDbOf(sm: ScmStateMachine): RootDb {
  const db = sm.db;
  if (!(db instanceof Level)) throw new Error('scm.db is not a LevelDB database: checkpoints need LevelDB files');
  return db as RootDb;
}

/**
 * The state machine, with each applied batch timed for scm_raft_apply_seconds: the batch's own
 * work, without the turn its write waits for the driver's answers to leave; and each write of
 * batches whose write was left for later, so that a slow scm.db shows either way.
 */
function timedApplies(sm: ScmStateMachine, observe: (seconds: number) => void): ReplicatedStateMachine {
  return {
    applyBatch: async (entries, onComputed, options) => {
      const started = performance.now();
      let answering = 0;
      const timed: OnComputed | undefined =
        onComputed === undefined
          ? undefined
          : (results) => {
              const answered = onComputed(results);
              if (answered === undefined) return undefined;
              const waitStarted = performance.now();
              return answered.then(() => {
                answering = performance.now() - waitStarted;
              });
            };
      try {
        return await sm.applyBatch(entries, timed, options);
      } finally {
        observe((performance.now() - started - answering) / 1000);
      }
    },
    writeApplied: async () => {
      const started = performance.now();
      const wrote = await sm.writeApplied();
      if (wrote) observe((performance.now() - started) / 1000);
      return wrote;
    },
    lastApplied: () => sm.lastApplied(),
    snapshotPoint: () => sm.snapshotPoint(),
    recordSnapshotPoint: () => sm.recordSnapshotPoint(),
    configuration: () => sm.configuration(),
  };
}

/** Bytes in the files of a directory tree (0 if it does not exist); for the size gauges. */
async function directoryBytes(dir: string): Promise<number> {
  let total = 0;
  let names: Dirent[];
  try {
    names = await readdir(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of names) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) total += await directoryBytes(path);
    else if (entry.isFile()) total += await stat(path).then((st) => st.size, () => 0);
  }
  return total;
}
