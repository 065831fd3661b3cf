// One SCM node: storage, state machine, Raft driver and its four servers (client 9860, Ratis 9894,
// InterSCM gRPC 9895, HTTP 9876), with start-up checks and an orderly shutdown.
import { randomInt } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import type { Logger } from 'pino';
import {
  RaftNode,
  SeededRandom,
  type IndexedMembership,
  type Membership,
  type RaftPeer,
  type Role,
  type SnapshotNotice,
} from '../raft/index.js';
import { RaftStorage, type DiskTimings } from '../storage/index.js';
import { ScmStateMachine, type LogEntry } from '../statemachine/index.js';
import {
  CheckpointProvider,
  installCheckpoint,
  recoverInterruptedInstall,
  registerInterScmService,
  SnapshotDownloader,
  StaleCheckpointError,
  SCM_DB_NAME,
  type ReadyCheckpoint,
} from '../snapshot/index.js';
import { ScmClient } from '../client/scm-client.js';
import { requireSelf, type ScmConfig, type ScmPeerConfig } from './config.js';
import { raftGroupIdOf, readVersionFile, type ScmVersionInfo } from './version-file.js';
import { registerClientService } from './client-service.js';
import { FailedPreconditionError, NotFoundError } from '../errors.js';
import { PeerTransport } from './peer-transport.js';
import { decodeRaftMessage, encodeRaftMessage } from './raft-codec.js';
import { FatalInstallError, RaftDriver } from './raft-driver.js';
import { reconcileLogWithStateMachine } from './log-reconcile.js';
import { ScmService, type ReplicationGateway } from './scm-service.js';
import type { ClusterInfo, ScmMember, ScmNodeRole } from '../api/scm-api.js';
import { NodeMetrics, type RaftRole } from '../metrics/node-metrics.js';
import { RaftEvents } from '../metrics/raft-events.js';
import { startMetricsHttpServer, type MetricsHttpServer, type NodeStatus } from '../metrics/http-server.js';
import { assessReadiness } from '../metrics/readiness.js';
import { instrumentGrpcService } from '../metrics/grpc-instrumentation.js';

export const CHECKPOINTS_DIR = 'db.checkpoints';
export const SNAPSHOT_DIR = 'snapshot';

/** Tick period and tick counts for the core, derived from Ozone's millisecond timeouts. */
export function raftTiming(config: ScmConfig): { tickMs: number; electionTicks: number; heartbeatTicks: number } {
  const tickMs = Math.min(100, Math.max(5, Math.round(config.raft.heartbeatIntervalMs / 5)));
  return {
    tickMs,
    electionTicks: Math.max(3, Math.round(config.raft.electionTimeoutMinMs / tickMs)),
    heartbeatTicks: Math.max(1, Math.round(config.raft.heartbeatIntervalMs / tickMs)),
  };
}

export function raftGroupDir(config: ScmConfig, clusterId: string): string {
  return join(config.ratisDir, raftGroupIdOf(clusterId));
}

/** The configuration entry `scm init` writes: this node alone, as Ozone's primordial SCM. */
export function bootstrapConfigEntry(self: ScmPeerConfig): LogEntry {
  return { term: 0, index: 0, payload: { kind: 'config', peers: [{ id: self.nodeId, address: self.ratisAddress, priority: 0 }], listeners: [] } };
}

function membershipOfEntry(entry: LogEntry | undefined): { membership: Membership; index: number } {
  if (entry === undefined || entry.payload.kind !== 'config') return { membership: { voters: [], nonVoters: [] }, index: 0 };
  return { membership: { voters: entry.payload.peers, nonVoters: entry.payload.listeners }, index: entry.index };
}

function listen(server: grpc.Server, host: string, port: number, what: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.bindAsync(`${host}:${port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err !== null) reject(new Error(`cannot listen on ${host}:${port} for the ${what}: ${err.message}`, { cause: err }));
      else resolve(bound);
    });
  });
}

function shutdown(server: grpc.Server): Promise<void> {
  return new Promise((resolve) => {
    const force = setTimeout(() => server.forceShutdown(), 2_000);
    server.tryShutdown(() => {
      clearTimeout(force);
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
  readonly http: number;
}

/** The core's role as the metrics name it. */
function metricsRole(role: Role): RaftRole {
  return role === 'pre-candidate' ? 'candidate' : role;
}

/**
 * Adds a service to a gRPC server with every handler instrumented for the node's metrics. The
 * registrars call server.addService themselves, so they are handed a server whose addService
 * wraps the implementation first.
 */
function instrumented(server: grpc.Server, metrics: NodeMetrics): grpc.Server {
  return new Proxy(server, {
    get(target, prop, receiver) {
      if (prop === 'addService') {
        return (definition: grpc.ServiceDefinition, implementation: grpc.UntypedServiceImplementation) =>
          target.addService(definition, instrumentGrpcService(metrics, definition, implementation));
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

export class ScmNode {
  private driver!: RaftDriver;
  private transport!: PeerTransport;
  private readonly servers: grpc.Server[] = [];
  private savedConfIndex = -1;
  private committedMembers: string[] = [];
  /** raft-meta.conf writes, one after another (they share a temp file). */
  private confWrites: Promise<void> = Promise.resolve();
  private readonly downloads = new AbortController();
  private joinTimer: NodeJS.Timeout | undefined;
  private stopping: Promise<void> | undefined;
  ports: BoundPorts = { client: 0, ratis: 0, grpc: 0, http: 0 };
  role: Role = 'follower';
  private leader = '';
  readonly metrics: NodeMetrics;
  private readonly events: RaftEvents;
  private http: MetricsHttpServer | undefined;
  private gaugeTimer: NodeJS.Timeout | undefined;

  private constructor(
    readonly config: ScmConfig,
    readonly self: ScmPeerConfig,
    readonly version: ScmVersionInfo,
    readonly storage: RaftStorage,
    readonly sm: ScmStateMachine,
    readonly log: Logger,
    private readonly onFatal?: (error: Error) => void,
  ) {
    this.metrics = new NodeMetrics({ nodeId: self.nodeId, peers: config.peers.map((p) => p.nodeId).filter((id) => id !== self.nodeId) });
    this.events = new RaftEvents(this.metrics, log);
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
    const groupDir = raftGroupDir(config, version.clusterId);
    mkdirSync(groupDir, { recursive: true });
    // Storage opens before the node (and its metrics) exist; its timings reach them once they do.
    const diskTimings: { sink?: (t: DiskTimings) => void } = {};
    const storage = RaftStorage.open(groupDir, {
      onDiskTimings: (t) => diskTimings.sink?.(t),
      segmentSizeBytes: config.raft.segmentSizeBytes,
      preallocateBytes: config.raft.segmentPreallocatedSizeBytes,
      corruptionPolicy: config.raft.logCorruptionPolicy,
      onWarning: (msg) => log.warn({ groupDir }, msg),
    });
    let sm: ScmStateMachine;
    try {
      const recovery = await recoverInterruptedInstall(config.dbDir);
      log.info({ recovery }, 'checked for an interrupted snapshot install');
      sm = await ScmStateMachine.open(join(config.dbDir, SCM_DB_NAME), { retryCacheTimeoutMs: config.raft.retryCacheTimeoutMs });
    } catch (err) {
      await storage.close();
      throw err;
    }
    const node = new ScmNode(config, self, version, storage, sm, log, options.onFatal);
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
    const applied = sm.lastApplied();
    const logBefore = { firstIndex: storage.firstIndex(), lastIndex: storage.lastIndex() };
    if ((await reconcileLogWithStateMachine(storage, applied, raftGroupDir(config, this.clusterId))) === 'log-reset') {
      this.log.info({ applied, logBefore }, 'Raft log did not match scm.db after a snapshot install; restarted it after the applied index');
    }
    const conf = membershipOfEntry(storage.readConf());
    this.savedConfIndex = conf.index;
    this.committedMembers = [...conf.membership.voters, ...conf.membership.nonVoters].map((p) => p.id);
    const hardState = storage.readMeta();
    const timing = raftTiming(config);
    const core = new RaftNode(
      {
        id: this.nodeId,
        electionTicks: timing.electionTicks,
        heartbeatTicks: timing.heartbeatTicks,
        preVote: config.raft.preVote,
        checkQuorum: true,
        leaseRead: false,
        maxInflightMsgs: 256,
        maxInflightBytes: config.raft.appenderQueueByteLimitBytes,
        maxBytesPerMsg: 1024 * 1024,
        random: new SeededRandom(randomInt(2 ** 31)),
      },
      storage,
      { hardState, membership: conf.membership, membershipIndex: conf.index, applied: applied.index },
    );

    this.transport = new PeerTransport({
      selfId: this.nodeId,
      clusterId: this.clusterId,
      onMessages: (_from, messages) => {
        for (const bytes of messages) {
          let message;
          try {
            message = decodeRaftMessage(bytes);
          } catch (err) {
            this.log.warn({ err }, 'dropped a malformed Raft message');
            continue;
          }
          if (message.to !== this.nodeId) continue;
          this.driver.step(message);
        }
      },
      onWarning: (msg) => this.log.warn(msg),
    });

    this.driver = new RaftDriver(
      core,
      storage,
      sm,
      {
        tickMs: timing.tickMs,
        snapshotThreshold: config.raft.snapshotThreshold,
        purgeEnabled: config.raft.logPurgeEnabled,
        purgeGap: config.raft.logPurgeGap,
        requestTimeoutMs: config.raft.requestTimeoutMs,
        clientAddressOf: (id) => this.peerConfig(id)?.clientAddress,
      },
      {
        send: (m) => {
          if (m.type === 'snapshot-notify') this.events.snapshotNotification('sent', { peer: m.to, term: m.firstTerm, index: m.firstIndex });
          this.transport.send(m.to, encodeRaftMessage(m));
        },
        onMembershipChange: () => this.onMembershipChange(),
        onSoftState: (role, leader, term) => {
          if (role !== this.role) {
            if (role === 'candidate') this.events.electionStarted(term);
            else this.events.roleChanged(metricsRole(role), term);
          }
          if (leader !== this.leader) {
            this.events.leaderChanged({ term, leaderId: leader === '' ? null : leader, previousLeaderId: this.leader === '' ? null : this.leader });
          }
          this.role = role;
          this.leader = leader;
        },
        onApplied: (results) => {
          let allocations = 0;
          for (const r of results) if (!r.replayed && r.outcome.ok && r.command?.type === 'allocateContainer') allocations++;
          if (allocations > 0) this.metrics.allocation(allocations);
        },
        installSnapshot: (notice) => this.installSnapshot(notice),
        onError: (err) => this.log.error({ err }, 'raft loop error'),
        onFatal: (err) => this.fatal(err),
        onInfo: (msg, fields) => this.log.info(fields ?? {}, msg),
      },
    );
    this.onMembershipChange();

    const ratisServer = new grpc.Server({ 'grpc.max_receive_message_length': 256 * 1024 * 1024 });
    this.transport.registerOn(ratisServer);
    const clientServer = new grpc.Server();
    registerClientService(instrumented(clientServer, this.metrics), new ScmService(() => this.sm, this.gateway()), {
      maxListCount: config.containerListMaxCount,
      onInternalError: (err) => this.log.error({ err }, 'client request failed internally'),
    });
    const grpcServer = new grpc.Server();
    registerInterScmService(instrumented(grpcServer, this.metrics), {
      clusterId: this.clusterId,
      provider: new CheckpointProvider({
        db: () => this.sm.db,
        checkpointsDir: join(config.dbDir, CHECKPOINTS_DIR),
        minUsefulIndex: () => this.storage.firstIndex(),
        checkpointOptions: { onRetry: (reason) => this.log.info({ event: 'checkpoint_retry', reason }, 'checkpoint capture retried') },
      }),
      log: (level, msg, fields) => this.log[level](fields ?? {}, msg),
      onServed: (bytes) => this.metrics.checkpointServed(bytes),
    });
    this.servers.push(ratisServer, clientServer, grpcServer);
    this.ports = {
      ratis: await listen(ratisServer, bindHost, this.self.ratisPort, 'Raft peer service (ozone.scm.ratis.port)'),
      client: await listen(clientServer, bindHost, this.self.clientPort, 'client service (ozone.scm.client.port)'),
      grpc: await listen(grpcServer, bindHost, this.self.grpcPort, 'InterSCM service (ozone.scm.grpc.port)'),
      http: 0,
    };
    this.http = await startMetricsHttpServer({
      host: this.self.httpHost,
      port: this.self.httpPort,
      metrics: this.metrics,
      status: () => this.status(),
      readiness: () => assessReadiness(this.status()),
    });
    this.ports = { ...this.ports, http: this.http.port };
    this.refreshGauges();
    this.gaugeTimer = setInterval(() => this.refreshGauges(), 1_000);
    this.gaugeTimer.unref();
    await this.checkPeersCluster();
    this.driver.start();
    this.log.info({ clusterId: this.clusterId, ports: this.ports, applied, membership: conf.membership }, 'SCM started');
    if (!this.isMember()) this.startJoining();
  }

  private peerConfig(id: string): ScmPeerConfig | undefined {
    return this.config.peers.find((p) => p.nodeId === id);
  }

  private isMember(): boolean {
    const m = this.core.status().membership;
    return [...m.voters, ...m.nonVoters].some((p) => p.id === this.nodeId);
  }

  /** Refuses to run next to peers of another cluster (a reachable peer with another clusterID). */
  private async checkPeersCluster(): Promise<void> {
    const others = this.config.peers.filter((p) => p.nodeId !== this.nodeId);
    await Promise.all(
      others.map(async (peer) => {
        const client = new ScmClient({ addresses: [peer.clientAddress], deadlineMs: 1_500, attemptTimeoutMs: 1_000 });
        let info: ClusterInfo;
        try {
          info = await client.getClusterInfo();
        } catch {
          return; // unreachable peers are normal at start-up
        } finally {
          client.close();
        }
        if (info.clusterId !== this.clusterId) {
          throw new Error(
            `clusterID mismatch: this SCM (${this.nodeId}) has ${this.clusterId} in ${this.config.dbDir}/scm/current/VERSION, but peer ${peer.nodeId} at ${peer.clientAddress} reports ${info.clusterId}; refusing to start`,
          );
        }
      }),
    );
  }

  /** A bootstrapped node asks the leader to add it (as a non-voter, promoted once caught up). */
  private startJoining(): void {
    const others = this.config.peers.filter((p) => p.nodeId !== this.nodeId).map((p) => p.clientAddress);
    if (others.length === 0) return;
    const attempt = async (): Promise<void> => {
      if (this.stopping !== undefined || this.isMember()) return;
      const client = new ScmClient({ addresses: others, deadlineMs: 5_000 });
      try {
        await client.addScm({ nodeId: this.nodeId, address: this.self.ratisAddress, clientAddress: this.self.clientAddress });
        this.log.info('joined the SCM Raft group');
      } catch (err) {
        this.log.info({ err: (err as Error).message }, 'could not join the SCM Raft group yet; retrying');
      } finally {
        client.close();
      }
      if (this.stopping === undefined && !this.isMember()) this.joinTimer = setTimeout(() => void attempt(), 1_000);
    };
    this.joinTimer = setTimeout(() => void attempt(), 100);
  }

  private onMembershipChange(): void {
    const status = this.core.status();
    const m = status.membership;
    // Configured SCMs too: a bootstrapped node has no membership until the leader's first append
    // reaches it, and must still be able to answer that leader.
    const peers = new Map<string, string>(this.config.peers.map((p) => [p.nodeId, p.ratisAddress]));
    for (const p of [...m.voters, ...m.nonVoters]) peers.set(p.id, p.address);
    peers.delete(this.nodeId);
    this.transport.setPeers(peers);
    const committed = this.core.committedMembership();
    const members = [...committed.membership.voters, ...committed.membership.nonVoters].map((p) => p.id);
    if (committed.index > this.savedConfIndex && this.savedConfIndex >= 0) {
      this.events.membershipChanged({ index: committed.index, members, previousMembers: this.committedMembers });
    }
    this.committedMembers = members;
    this.metrics.setKnownPeers([...new Set([...this.config.peers.map((p) => p.nodeId), ...peers.keys()])].filter((id) => id !== this.nodeId));
    void this.saveConf(committed);
  }

  /** Queues a raft-meta.conf write of `m` unless a newer one was already queued. */
  private saveConf(m: IndexedMembership): Promise<void> {
    if (m.index <= this.savedConfIndex) return this.confWrites;
    this.savedConfIndex = m.index;
    const entry = this.confEntry(m);
    this.confWrites = this.confWrites
      .then(() => this.storage.saveConf(entry))
      .catch((err: unknown) => this.log.error({ err }, 'could not write raft-meta.conf'));
    return this.confWrites;
  }

  private confEntry(m: IndexedMembership): LogEntry {
    return {
      term: this.core.logTerm(m.index) ?? 0,
      index: m.index,
      payload: { kind: 'config', peers: m.membership.voters, listeners: m.membership.nonVoters },
    };
  }

  private leaderGrpcAddress(): string | undefined {
    const leader = this.core.status().leader;
    return leader === '' ? undefined : this.peerConfig(leader)?.grpcAddress;
  }

  private async installSnapshot(notice: SnapshotNotice): Promise<() => Promise<{ term: number; index: number }>> {
    this.log.info({ leader: notice.leaderId, firstIndex: notice.firstIndex }, 'leader asked us to install a snapshot');
    this.events.snapshotNotification('received', { peer: notice.leaderId, term: notice.firstTerm, index: notice.firstIndex });
    const downloader = new SnapshotDownloader({
      leaderAddress: () => this.leaderGrpcAddress() ?? this.peerConfig(notice.leaderId)?.grpcAddress,
      expectedClusterId: this.clusterId,
      snapshotDir: join(this.config.dbDir, SNAPSHOT_DIR),
      deadlineMs: this.config.grpcDeadlineIntervalMs,
      requesterId: this.nodeId,
      log: (level, msg, fields) => this.log[level](fields ?? {}, msg),
    });
    const download = this.events.snapshotTransfer('download', { peer: notice.leaderId, term: notice.firstTerm, index: notice.firstIndex });
    let ready: ReadyCheckpoint;
    try {
      ready = await downloader.fetch(notice.firstIndex, this.downloads.signal);
    } catch (err) {
      download.failed(err instanceof StaleCheckpointError ? 'stale_checkpoint' : 'transport', err);
      throw err;
    }
    download.done(ready.downloadedBytes);
    // The swap runs between Readies: nothing else touches scm.db or the log meanwhile.
    return async () => {
      const install = this.events.snapshotTransfer('install', { term: ready.termIndex.term, index: ready.termIndex.index });
      try {
        const applied = this.sm.lastApplied();
        if (ready.termIndex.index <= applied.index) {
          throw new Error(`downloaded checkpoint at ${ready.termIndex.term}#${ready.termIndex.index} is not ahead of scm.db (applied ${applied.term}#${applied.index})`);
        }
        // installCheckpoint restores the old scm.db itself when it fails.
        await installCheckpoint({
          dbParentDir: this.config.dbDir,
          checkpointDir: ready.dir,
          termIndex: ready.termIndex,
          closeDb: () => this.sm.close(),
          openDb: () => this.sm.reload(),
        });
      } catch (err) {
        install.failed('io', err);
        throw err;
      }
      try {
        // The configuration first: once the log is reset, it no longer holds the older ones.
        await this.saveConf(notice.config);
        await this.storage.reset(ready.termIndex.index + 1, ready.termIndex.term);
      } catch (err) {
        install.failed('io', err);
        throw new FatalInstallError(`scm.db now holds ${ready.termIndex.term}#${ready.termIndex.index} but the Raft log could not be reset: ${(err as Error).message}`, { cause: err });
      }
      install.done(ready.downloadedBytes);
      return ready.termIndex;
    };
  }

  /** How the client service reaches Raft. */
  private gateway(): ReplicationGateway {
    const waitForEntry = async (result: { ok: true; index: number; term: number } | { ok: false; error: string; leaderHint: string }, what: string) => {
      if (!result.ok) {
        if (result.error === 'not-leader') throw this.driver.notLeaderError();
        throw new FailedPreconditionError(`${what}: ${result.error}`);
      }
      await this.driver.waitApplied(result.index, result.term);
    };
    return {
      ensureLeader: () => {
        if (!this.driver.isLeader()) throw this.driver.notLeaderError();
      },
      submit: (data) => this.driver.propose(data),
      readBarrier: async (consistency) => {
        if (consistency === 'STALE') return;
        await this.driver.readBarrier();
      },
      now: () => Date.now(),
      roles: () => this.roles(),
      ownRole: () => this.ownRole(),
      clusterInfo: () => this.clusterInfo(),
      transferLeadership: async (newLeaderId) => {
        if (!this.driver.isLeader()) throw this.driver.notLeaderError();
        if (newLeaderId === this.nodeId) return this.nodeId;
        if (!this.core.status().membership.voters.some((p) => p.id === newLeaderId)) {
          throw new NotFoundError(`SCM ${newLeaderId} is not a voting member of the group`);
        }
        const result = this.core.transferLeadership(newLeaderId);
        if (!result.ok) throw new FailedPreconditionError(`cannot transfer leadership to ${newLeaderId}: ${result.error}`);
        this.driver.kick();
        await this.driver.waitFor(() => this.core.status().leader === newLeaderId, this.config.raft.requestTimeoutMs, `leadership transfer to ${newLeaderId}`);
        return newLeaderId;
      },
      addScm: async (member) => {
        if (!this.driver.isLeader()) throw this.driver.notLeaderError();
        if (!this.isMemberId(member.nodeId)) {
          const peer: RaftPeer = { id: member.nodeId, address: member.address, priority: 0 };
          await waitForEntry(this.core.addNonVoter(peer, true), `cannot add SCM ${member.nodeId}`);
          this.log.info({ member }, 'added SCM to the group as a non-voter; it is promoted once caught up');
        }
        return this.members();
      },
      removeScm: async (nodeId) => {
        if (!this.driver.isLeader()) throw this.driver.notLeaderError();
        if (!this.isMemberId(nodeId)) throw new NotFoundError(`SCM ${nodeId} is not a member of the group`);
        await waitForEntry(this.core.removeServer(nodeId), `cannot remove SCM ${nodeId}`);
        this.log.info({ nodeId }, 'removed SCM from the group');
        return this.members();
      },
    };
  }

  private isMemberId(id: string): boolean {
    const m = this.core.status().membership;
    return [...m.voters, ...m.nonVoters].some((p) => p.id === id);
  }

  private members(): ScmMember[] {
    const m = this.core.status().membership;
    return [...m.voters, ...m.nonVoters].map((p) => ({
      nodeId: p.id,
      address: p.address,
      clientAddress: this.peerConfig(p.id)?.clientAddress ?? '',
    }));
  }

  clusterInfo(): ClusterInfo {
    const leader = this.core.status().leader;
    return {
      clusterId: this.clusterId,
      nodeId: this.nodeId,
      scmUuid: this.version.scmUuid,
      leaderId: leader,
      leaderAddress: leader === '' ? '' : (this.peerConfig(leader)?.clientAddress ?? ''),
      members: this.members(),
    };
  }

  /** This node's own view, as every peer reports it in GetScmRoles. */
  ownRole(): ScmNodeRole {
    const s = this.core.status();
    const role =
      s.role === 'leader' ? 'LEADER' : s.role === 'candidate' || s.role === 'pre-candidate' ? 'CANDIDATE' : s.role === 'non-voter' ? 'LISTENER' : 'FOLLOWER';
    return {
      nodeId: this.nodeId,
      address: this.self.ratisAddress,
      clientAddress: this.self.clientAddress,
      role,
      term: s.term,
      commitIndex: s.commit,
      appliedIndex: this.sm.isClosed ? s.applied : this.sm.lastApplied().index,
    };
  }

  /** Every member's role, term and indexes, asked of each member itself (UNREACHABLE if it cannot answer). */
  private async roles(): Promise<ScmNodeRole[]> {
    const members = this.members();
    return Promise.all(
      members.map(async (member): Promise<ScmNodeRole> => {
        if (member.nodeId === this.nodeId) return this.ownRole();
        const unreachable: ScmNodeRole = { nodeId: member.nodeId, address: member.address, clientAddress: member.clientAddress, role: 'UNREACHABLE', term: 0, commitIndex: 0, appliedIndex: 0 };
        if (member.clientAddress === '') return unreachable;
        const client = new ScmClient({ addresses: [member.clientAddress], deadlineMs: 1_500, attemptTimeoutMs: 1_000 });
        try {
          const theirs = await client.getScmRoles({ selfOnly: true });
          return theirs.find((r) => r.nodeId === member.nodeId) ?? unreachable;
        } catch {
          return unreachable;
        } finally {
          client.close();
        }
      }),
    );
  }

  /** /status and /readyz: role, term, indexes and members as this node sees them. */
  status(): NodeStatus {
    const s = this.core.status();
    const match = new Map(s.progress.map((p) => [p.id, p.match]));
    const voters = new Set(s.membership.voters.map((p) => p.id));
    return {
      nodeId: this.nodeId,
      clusterId: this.clusterId,
      role: metricsRole(s.role),
      term: s.term,
      leaderId: s.leader === '' ? null : s.leader,
      indexes: {
        lastLog: s.lastIndex,
        commit: s.commit,
        applied: this.sm.isClosed ? s.applied : this.sm.lastApplied().index,
        snapshot: this.sm.isClosed ? 0 : this.sm.snapshotPoint().index,
      },
      peers: [...s.membership.voters, ...s.membership.nonVoters].map((p) => ({
        id: p.id,
        address: p.address,
        voter: voters.has(p.id),
        matchIndex: s.role === 'leader' ? (p.id === this.nodeId ? s.lastIndex : (match.get(p.id) ?? 0)) : null,
      })),
    };
  }

  /** Gauges that are cheaper to sample than to update on every entry. */
  private refreshGauges(): void {
    if (this.sm.isClosed) return;
    const s = this.core.status();
    this.metrics.setTerm(s.term);
    this.metrics.setIndexes({ lastLog: s.lastIndex, commit: s.commit, applied: this.sm.lastApplied().index });
    this.metrics.setSnapshotIndex(this.sm.snapshotPoint().index);
    this.metrics.setContainersByState(this.sm.containerCountsByState());
    if (s.role === 'leader') {
      for (const p of s.progress) if (p.id !== this.nodeId) this.metrics.setFollowerLag(p.id, Math.max(0, s.lastIndex - p.match));
    }
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
      if (this.joinTimer !== undefined) clearTimeout(this.joinTimer);
      if (this.gaugeTimer !== undefined) clearInterval(this.gaugeTimer);
      this.downloads.abort();
      await this.http?.close();
      const [ratis, ...others] = this.servers;
      await Promise.all(others.map((s) => shutdown(s)));
      if (this.driver !== undefined) await this.driver.stop();
      if (ratis !== undefined) await shutdown(ratis);
      this.transport?.close();
      await this.confWrites;
      await this.sm.close();
      await this.storage.close();
      this.log.info('SCM stopped');
    })();
    return this.stopping;
  }
}

