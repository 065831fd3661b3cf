// What a node reports about itself and its group: /status and /readyz, GetScmRoles, and the
// gauges sampled once a second. Read-only views of the core and the state machine.
import type { RaftNode, Role } from '../raft/index.js';
import type { ScmStateMachine } from '../statemachine/index.js';
import type { NodeMetrics, RaftRole } from '../metrics/node-metrics.js';
import type { RaftEvents } from '../metrics/raft-events.js';
import { STATUS_ROLE_NAMES, type ConsistencyStatus, type NodeStatus } from '../metrics/http-server.js';
import type { ScmPeerConfig } from './config.js';
import type { PeerCalls } from './peer-calls.js';
import type { PeerContact } from './peer-contact.js';
import type { ScmMember, ScmNodeRole } from '../api/scm-api.js';

/** The core's role as the metrics name it. */
export function metricsRole(role: Role): RaftRole {
  return role === 'pre-candidate' ? 'candidate' : role;
}

export interface NodeStatusParts {
  readonly core: () => RaftNode;
  readonly sm: ScmStateMachine;
  readonly self: ScmPeerConfig;
  readonly clusterId: string;
  readonly metrics: NodeMetrics;
  readonly members: () => ScmMember[];
  readonly peers: PeerCalls;
  readonly contact: PeerContact;
  /** Whether this node's Raft stream to `nodeId` is open now (a stopped peer's is not, and cannot be opened again). */
  readonly raftStreamOpen: (nodeId: string) => boolean;
  /** When this node started (ms): a peer never heard from counts as silent since then. */
  readonly startedAt: number;
  /** Pending proposals and transport send failures, sampled with the gauges. */
  readonly pendingProposals: () => number;
  readonly droppedMessages: () => ReadonlyMap<string, number>;
  readonly events: RaftEvents;
  /** The latest consistency check, as this node judged itself. */
  readonly consistency: () => ConsistencyStatus | null;
  /** The index of the configuration that removed this node, while it is out; null otherwise. */
  readonly removedAt: () => number | null;
}

export class NodeStatusView {
  private readonly dropsSeen = new Map<string, number>();
  private hadQuorum = true;

  constructor(private readonly parts: NodeStatusParts) {}

  /** The peers this node expects to hear from: every member when it leads, else its leader. */
  private expectedContacts(): string[] {
    const s = this.parts.core().status();
    const self = this.parts.self.nodeId;
    if (s.role === 'leader') return [...s.membership.voters, ...s.membership.nonVoters].map((p) => p.id).filter((id) => id !== self);
    return s.leader !== '' && s.leader !== self ? [s.leader] : [];
  }

  private applied(fallback: number): number {
    return this.parts.sm.isClosed ? fallback : this.parts.sm.lastApplied().index;
  }

  /** /status and /readyz: role, term, indexes and members as this node sees them. */
  status(): NodeStatus {
    const s = this.parts.core().status();
    const match = new Map(s.progress.map((p) => [p.id, p.match]));
    const voters = new Set(s.membership.voters.map((p) => p.id));
    const self = this.parts.self.nodeId;
    const removedAt = this.parts.removedAt();
    return {
      nodeId: self,
      clusterId: this.parts.clusterId,
      role: metricsRole(s.role),
      term: s.term,
      leaderId: s.leader === '' ? null : s.leader,
      indexes: {
        lastLog: s.lastIndex,
        commit: s.commit,
        applied: this.applied(s.applied),
        snapshot: this.parts.sm.isClosed ? 0 : this.parts.sm.snapshotPoint().index,
      },
      peers: [...s.membership.voters, ...s.membership.nonVoters].map((p) => {
        const expected = p.id !== self && (s.role === 'leader' || p.id === s.leader);
        return {
          id: p.id,
          address: p.address,
          voter: voters.has(p.id),
          matchIndex: s.role === 'leader' ? (p.id === self ? s.lastIndex : (match.get(p.id) ?? 0)) : null,
          lastContactSeconds: expected ? (this.parts.contact.silentSeconds(p.id) ?? null) : null,
          reachable: expected ? !this.parts.contact.isUnreachable(p.id, this.parts.startedAt) : null,
        };
      }),
      consistency: this.parts.consistency(),
      removedFromGroup: removedAt === null ? null : { index: removedAt },
    };
  }

  /** This node's own view, as every peer reports it in GetScmRoles. */
  ownRole(): ScmNodeRole {
    const s = this.parts.core().status();
    return {
      nodeId: this.parts.self.nodeId,
      address: this.parts.self.ratisAddress,
      clientAddress: this.parts.self.clientAddress,
      // The names /status uses too: one table for both.
      role: STATUS_ROLE_NAMES[metricsRole(s.role)],
      term: s.term,
      commitIndex: s.commit,
      appliedIndex: this.applied(s.applied),
    };
  }

  /**
   * Every member's role, term and indexes, as each member reports itself, in node id order (scm2
   * before scm10: the configuration's order changes as members are added and promoted, and a table
   * whose rows move is hard to watch). UNREACHABLE means what Raft sees: on a leader, nothing heard
   * from the member for longer than an election timeout, or a member that does not answer this
   * call while the leader's Raft stream to it is closed (a member stopped a moment ago, still heard
   * from within the timeout); a member that is heard from, its stream open, but slow to answer this
   * call is reported from the leader's own view: its role in the configuration, this term, and its
   * match index for both indexes. On a follower, which hears only from its leader, a member that
   * does not answer.
   */
  async roles(): Promise<ScmNodeRole[]> {
    const s = this.parts.core().status();
    const leading = s.role === 'leader';
    const match = new Map(s.progress.map((p) => [p.id, p.match]));
    const voters = new Set(s.membership.voters.map((p) => p.id));
    const members = [...this.parts.members()].sort((a, b) => a.nodeId.localeCompare(b.nodeId, 'en', { numeric: true }));
    return Promise.all(
      members.map(async (member): Promise<ScmNodeRole> => {
        if (member.nodeId === this.parts.self.nodeId) return this.ownRole();
        const unreachable: ScmNodeRole = { nodeId: member.nodeId, address: member.address, clientAddress: member.clientAddress, role: 'UNREACHABLE', term: 0, commitIndex: 0, appliedIndex: 0 };
        if (leading && this.parts.contact.isUnreachable(member.nodeId, this.parts.startedAt)) return unreachable;
        const fromLeader = (): ScmNodeRole => {
          const m = match.get(member.nodeId) ?? 0;
          return { ...unreachable, role: voters.has(member.nodeId) ? 'FOLLOWER' : 'LISTENER', term: s.term, commitIndex: m, appliedIndex: m };
        };
        if (member.clientAddress === '') return leading ? fromLeader() : unreachable;
        try {
          return (await this.parts.peers.ownRole(member.clientAddress, member.nodeId)) ?? (leading ? fromLeader() : unreachable);
        } catch {
          return leading && this.parts.raftStreamOpen(member.nodeId) ? fromLeader() : unreachable;
        }
      }),
    );
  }

  /** Gauges that are cheaper to sample than to update on every entry. */
  refreshGauges(): void {
    const { sm, metrics } = this.parts;
    if (sm.isClosed) return;
    const s = this.parts.core().status();
    metrics.setTerm(s.term);
    metrics.setIndexes({ lastLog: s.lastIndex, commit: s.commit, applied: sm.lastApplied().index });
    metrics.setSnapshotIndex(sm.snapshotPoint().index);
    metrics.setContainersByState(sm.containerCountsByState());
    if (s.role === 'leader') {
      for (const p of s.progress) if (p.id !== this.parts.self.nodeId) metrics.setFollowerLag(p.id, Math.max(0, s.lastIndex - p.match));
    }
    metrics.setProposalsPending(this.parts.pendingProposals());
    const pipelines = new Map<string, number>();
    for (const p of sm.listPipelines()) pipelines.set(p.state, (pipelines.get(p.state) ?? 0) + 1);
    metrics.setPipelinesByState(pipelines);
    metrics.setDatanodesByState({ IN_SERVICE: sm.listDatanodes().length });
    for (const [peer, dropped] of this.parts.droppedMessages()) {
      const delta = dropped - (this.dropsSeen.get(peer) ?? 0);
      if (delta > 0) metrics.peerSendFailed(peer, delta);
      this.dropsSeen.set(peer, dropped);
    }
    this.refreshContacts(s);
  }

  /** Last-contact gauges, and a log line when a peer goes quiet or comes back, or the quorum is lost. */
  private refreshContacts(s: ReturnType<RaftNode['status']>): void {
    const { contact, metrics, events, startedAt } = this.parts;
    const expected = this.expectedContacts();
    for (const peer of expected) {
      const silent = contact.silentSeconds(peer);
      if (silent !== undefined) metrics.setPeerLastContact(peer, silent);
    }
    for (const change of contact.changes(expected, startedAt)) events.peerContact(change);
    if (s.role !== 'leader') {
      this.hadQuorum = true;
      return;
    }
    const self = this.parts.self.nodeId;
    const voters = s.membership.voters.map((p) => p.id);
    const heard = voters.filter((id) => id === self || !contact.isUnreachable(id, startedAt));
    const hasQuorum = heard.length >= Math.floor(voters.length / 2) + 1;
    if (hasQuorum !== this.hadQuorum) events.quorumContact({ hasQuorum, heard, voters });
    this.hadQuorum = hasQuorum;
  }
}
