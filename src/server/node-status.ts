// What a node reports about itself and its group: /status and /readyz, GetScmRoles, and the
// gauges sampled once a second. Read-only views of the core and the state machine.
import type { RaftNode, Role } from '../raft/index.js';
import type { ScmStateMachine } from '../statemachine/index.js';
import type { NodeMetrics, RaftRole } from '../metrics/node-metrics.js';
import { STATUS_ROLE_NAMES, type NodeStatus } from '../metrics/http-server.js';
import type { ScmPeerConfig } from './config.js';
import type { PeerCalls } from './peer-calls.js';
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
}

export class NodeStatusView {
  constructor(private readonly parts: NodeStatusParts) {}

  private applied(fallback: number): number {
    return this.parts.sm.isClosed ? fallback : this.parts.sm.lastApplied().index;
  }

  /** /status and /readyz: role, term, indexes and members as this node sees them. */
  status(): NodeStatus {
    const s = this.parts.core().status();
    const match = new Map(s.progress.map((p) => [p.id, p.match]));
    const voters = new Set(s.membership.voters.map((p) => p.id));
    const self = this.parts.self.nodeId;
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
      peers: [...s.membership.voters, ...s.membership.nonVoters].map((p) => ({
        id: p.id,
        address: p.address,
        voter: voters.has(p.id),
        matchIndex: s.role === 'leader' ? (p.id === self ? s.lastIndex : (match.get(p.id) ?? 0)) : null,
      })),
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
   * Every member's role, term and indexes, asked of each member itself (UNREACHABLE if it cannot
   * answer), in node id order (scm2 before scm10): the configuration's order changes as members are
   * added and promoted, and a table whose rows move is hard to watch.
   */
  async roles(): Promise<ScmNodeRole[]> {
    const members = [...this.parts.members()].sort((a, b) => a.nodeId.localeCompare(b.nodeId, 'en', { numeric: true }));
    return Promise.all(
      members.map(async (member): Promise<ScmNodeRole> => {
        if (member.nodeId === this.parts.self.nodeId) return this.ownRole();
        const unreachable: ScmNodeRole = { nodeId: member.nodeId, address: member.address, clientAddress: member.clientAddress, role: 'UNREACHABLE', term: 0, commitIndex: 0, appliedIndex: 0 };
        if (member.clientAddress === '') return unreachable;
        try {
          return (await this.parts.peers.ownRole(member.clientAddress, member.nodeId)) ?? unreachable;
        } catch {
          return unreachable;
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
  }
}
