// Membership and leadership operations: what AddScm, RemoveScm and TransferLeadership do on the
// leader, and how a bootstrapped node asks the group to add it.
import type { RaftPeer } from '../raft/index.js';
import { isMember } from '../raft/index.js';
import type { ScmConfig, ScmPeerConfig } from './config.js';
import { FailedPreconditionError, NotFoundError } from '../errors.js';
import type { PeerCalls } from './peer-calls.js';
import type { RaftDriver } from './raft-driver.js';
import type { ScmMember } from '../api/scm-api.js';

export interface AdminOperationsParts {
  readonly driver: () => RaftDriver;
  readonly config: ScmConfig;
  readonly self: ScmPeerConfig;
  readonly log: { info(fields: Record<string, unknown>, message: string): void };
  readonly peers: PeerCalls;
  /** Whether this node still needs to ask to be added (self-membership.ts decides). */
  readonly stillJoining: () => boolean;
}

type ChangeResult = { ok: true; index: number; term: number } | { ok: false; error: string; leaderHint: string };

export class AdminOperations {
  private joinTimer: ReturnType<typeof setTimeout> | undefined;
  private stopped = false;
  private joinLoopRunning = false;

  constructor(private readonly parts: AdminOperationsParts) {}

  private get driver(): RaftDriver {
    return this.parts.driver();
  }

  peerConfig(id: string): ScmPeerConfig | undefined {
    return this.parts.config.peers.find((p) => p.nodeId === id);
  }

  isMemberId(id: string): boolean {
    return isMember(this.driver.core.status().membership, id);
  }

  members(): ScmMember[] {
    const m = this.driver.core.status().membership;
    return [...m.voters, ...m.nonVoters].map((p) => ({
      nodeId: p.id,
      address: p.address,
      clientAddress: this.peerConfig(p.id)?.clientAddress ?? '',
    }));
  }

  private requireLeader(): void {
    if (!this.driver.isLeader()) throw this.driver.notLeaderError();
  }

  /** Waits until a configuration change is applied here (the leader), or fails naming why. */
  private async waitForChange(result: ChangeResult, what: string): Promise<void> {
    if (!result.ok) {
      if (result.error === 'not-leader') throw this.driver.notLeaderError();
      throw new FailedPreconditionError(`${what}: ${result.error}`);
    }
    await this.driver.waitApplied(result.index, result.term);
  }

  async transferLeadership(newLeaderId: string): Promise<string> {
    this.requireLeader();
    const core = this.driver.core;
    if (newLeaderId === this.parts.self.nodeId) return newLeaderId;
    if (!core.status().membership.voters.some((p) => p.id === newLeaderId)) {
      throw new NotFoundError(`SCM ${newLeaderId} is not a voting member of the group`);
    }
    const result = core.transferLeadership(newLeaderId);
    if (!result.ok) throw new FailedPreconditionError(`cannot transfer leadership to ${newLeaderId}: ${result.error}`);
    this.driver.kick();
    await this.driver.waitFor(() => core.leaderId === newLeaderId, this.parts.config.raft.requestTimeoutMs, `leadership transfer to ${newLeaderId}`);
    return newLeaderId;
  }

  async addScm(member: ScmMember): Promise<ScmMember[]> {
    this.requireLeader();
    if (!this.isMemberId(member.nodeId)) {
      const peer: RaftPeer = { id: member.nodeId, address: member.address, priority: 0 };
      await this.waitForChange(this.driver.core.addNonVoter(peer, true), `cannot add SCM ${member.nodeId}`);
      this.parts.log.info({ member }, 'added SCM to the group as a non-voter; it is promoted once caught up');
    }
    return this.members();
  }

  async removeScm(nodeId: string): Promise<ScmMember[]> {
    this.requireLeader();
    if (!this.isMemberId(nodeId)) throw new NotFoundError(`SCM ${nodeId} is not a member of the group`);
    await this.waitForChange(this.driver.core.removeServer(nodeId), `cannot remove SCM ${nodeId}`);
    this.parts.log.info({ nodeId }, 'removed SCM from the group');
    return this.members();
  }

  /**
   * A bootstrapped node asks the leader to add it (as a non-voter, promoted once caught up), every
   * second until it is no longer joining: a member (it knows a committed configuration with
   * itself), or removed (`stillJoining` says). An add in its log that has not committed is not
   * enough: the leader that appended it may die and the next one may not have it, and would then
   * never contact this node; asked again, that leader appends a configuration with it, which
   * replaces the stale entry here (`addScm` on a leader that holds the add already appends nothing).
   * Starting it while it runs changes nothing.
   */
  startJoining(): void {
    if (this.joinLoopRunning || this.stopped) return;
    const self = this.parts.self;
    const others = this.parts.config.peers.filter((p) => p.nodeId !== self.nodeId).map((p) => p.clientAddress);
    if (others.length === 0) return;
    this.joinLoopRunning = true;
    const attempt = async (): Promise<void> => {
      if (this.stopped || !this.parts.stillJoining()) {
        this.joinLoopRunning = false;
        return;
      }
      try {
        await this.parts.peers.addMember(others, { nodeId: self.nodeId, address: self.ratisAddress, clientAddress: self.clientAddress });
        this.parts.log.info({}, 'joined the SCM Raft group');
      } catch (err) {
        this.parts.log.info({ err: (err as Error).message }, 'could not join the SCM Raft group yet; retrying');
      }
      if (!this.stopped && this.parts.stillJoining()) this.joinTimer = setTimeout(() => void attempt(), 1_000);
      else this.joinLoopRunning = false;
    };
    this.joinTimer = setTimeout(() => void attempt(), 100);
  }

  stop(): void {
    this.stopped = true;
    if (this.joinTimer !== undefined) clearTimeout(this.joinTimer);
  }
}
