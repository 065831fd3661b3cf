// RaftNode: the Raft protocol as a pure, deterministic state machine (in the style of etcd-io/raft).
// It never does I/O, never reads a clock, never draws global randomness. The caller drives it.
//
// DRIVING CONTRACT
// Inputs (any order, all synchronous):
//   tick()                      once per tick interval (election and heartbeat timeouts count ticks)
//   step(message)               every message received from a peer
//   propose(data)               leader only; returns the index/term assigned, or why not
//   readIndex(requestId)        leader only; the answer comes back as a ReadState in a later Ready
//   transferLeadership(id), addNonVoter(peer), promote(id), removeServer(id)
//   snapshotInstalled(term, index, config) / snapshotInstallFailed()   after a Ready.snapshotNotice
//   compacted(index)            after the caller purged its log below `index` (index ≤ applied)
//   forwardCommit()             leader: send a commit advance no append has carried yet, now (it
//                               otherwise rides on the next append or heartbeat, or leaves at the
//                               next tick); commitForwardPending() says whether one waits
//
// Output loop. Whenever hasReady() is true:
//   const rd = node.ready();        // at most one Ready outstanding; ready() throws before advance()
//   1. Persist: if rd.hardState, write it (term, votedFor). If rd.entries is non-empty, delete every
//      entry at index ≥ rd.entries[0].index (rd.truncateFrom names the conflict point when one was
//      replaced) and append rd.entries. Writes may happen asynchronously.
//   2. rd.messages may be sent at once, even before step 1 is durable (leader → follower traffic:
//      the leader replicates while its own fsync runs; it counts itself only after advance()).
//   3. rd.messagesAfterPersist must be sent only once step 1 is durable (fsynced): they are votes and
//      acknowledgements that promise the hard state / entries are on disk.
//   4. Apply rd.committedEntries in order (they are always durable locally already).
//   5. rd.readStates: each read may be served now (once step 4 is done) at the state it names.
//      rd.droppedReads failed (leadership lost): answer them with an error so the client retries.
//   6. rd.snapshotNotice (follower): the leader has purged what we need; download and install a
//      checkpoint of its state machine, then, between Readies: keep the log if it holds the
//      checkpoint's own entry (logTerm(index) === term), else reset it to start right after the
//      checkpoint; then call snapshotInstalled(term, index, config) with the configuration the
//      checkpoint holds (or snapshotInstallFailed()).
//   7. Call advance() once step 1 is complete: it marks the entries durable and the committed ones
//      handed out (they are never handed out again). Step 4 may still be running (the driver
//      applies beside its loop, in order); the caller must then compact only below what it has
//      really applied, and call snapshotInstalled only once every handed-out apply has finished.
// After advance(), the LogReader must return every entry handed out so far (until truncated).
import type {
  AppendMessage,
  AppendResponseMessage,
  HardState,
  HeartbeatMessage,
  HeartbeatResponseMessage,
  IndexedMembership,
  LogEntry,
  LogReader,
  Membership,
  Message,
  RaftPeer,
  RandomSource,
  Role,
  SnapshotNotifyMessage,
  SnapshotStatusKind,
  SnapshotStatusMessage,
  VoteMessage,
} from './types.js';
import { assertIndex, invariant } from './assert.js';
import { majority, quorumValue } from './quorum.js';
import { mutant } from './mutants.js';
import { RaftLog, entrySize } from './raft-log.js';
import { Progress, type ProgressState } from './progress.js';
import {
  MembershipTracker,
  isMember,
  isVoter,
  memberIds,
  membershipFromPayload,
  payloadFromMembership,
  validateMembership,
} from './membership.js';

/** Ratis' raft.server.staging.catchup.gap default. */
const DEFAULT_PROMOTION_CATCH_UP_GAP = 1000;

export interface RaftConfig {
  readonly id: string;
  /**
   * Base election timeout in ticks; each election waits a random value in
   * [electionTicks, electionTicks + electionJitterTicks).
   */
  readonly electionTicks: number;
  /** The random part of the election timeout, in ticks (default: electionTicks). */
  readonly electionJitterTicks?: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /** Serve reads from a leader lease without a heartbeat round. Requires checkQuorum. */
  readonly leaseRead: boolean;
  readonly maxInflightMsgs: number;
  readonly maxInflightBytes: number;
  readonly maxBytesPerMsg: number;
  /** Bound on the committed entries handed out in one Ready (default 64 MiB). */
  readonly maxCommittedBytesPerReady?: number;
  /**
   * A joining member streaming appends is promoted once it is within this many entries of the
   * commit index (default 1000, Ratis' staging catch-up gap). Demanding the exact commit index
   * starves a member whose disk is slower than the others': under steady writes the others have
   * always committed more by the time its answer arrives.
   */
  readonly promotionCatchUpGap?: number;
  /**
   * Every non-voter is a member on its way to voting (SCM HA has no permanent listeners): a new
   * leader takes over promoting the non-voters of the configuration once they catch up.
   */
  readonly promoteNonVoters?: boolean;
  readonly random: RandomSource;
  /**
   * Conditions an operator should hear about that the protocol survives (a follower that lost
   * entries it had acknowledged). The core does no I/O; the caller logs.
   */
  readonly onWarning?: (message: string, fields: Record<string, unknown>) => void;
  /** A message that was well formed but not acted on, and why (for a metric; not an error). */
  readonly onDropped?: (reason: 'unsolicited', message: Message) => void;
}

export interface InitialState {
  readonly hardState: HardState;
  /** The configuration in force as of `membershipIndex` (0 for a bootstrap configuration). */
  readonly membership: Membership;
  readonly membershipIndex: number;
  /** Index of the last entry applied to the state machine. */
  readonly applied: number;
  /** Known commit index (≥ applied); defaults to applied. */
  readonly commit?: number;
}

export interface SoftState {
  readonly role: Role;
  readonly leader: string;
  readonly term: number;
}

export interface ReadState {
  readonly requestId: string;
  readonly index: number;
}

/** A leader's request to install a checkpoint of its state machine (it purged what we need). */
export interface SnapshotNotice {
  readonly leaderId: string;
  /** The leader's term when it asked. */
  readonly term: number;
  readonly noticeId: number;
  /** The leader's first available log index: a checkpoint at or above it lets us resume from it. */
  readonly firstIndex: number;
}

export interface Ready {
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  readonly entries: readonly LogEntry[];
  readonly truncateFrom?: number;
  readonly messages: readonly Message[];
  readonly messagesAfterPersist: readonly Message[];
  readonly committedEntries: readonly LogEntry[];
  readonly readStates: readonly ReadState[];
  readonly droppedReads: readonly string[];
  readonly snapshotNotice?: SnapshotNotice;
}

export type ProposeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly error: 'not-leader'; readonly leaderHint: string }
  | { readonly ok: false; readonly error: 'transferring'; readonly leaderHint: string };

export type ChangeResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly error: string; readonly leaderHint: string };

export interface ProgressStatus {
  readonly id: string;
  readonly match: number;
  readonly next: number;
  readonly state: ProgressState;
  readonly inflight: number;
  readonly recentActive: boolean;
}

export interface RaftStatus {
  readonly id: string;
  readonly role: Role;
  readonly term: number;
  readonly votedFor: string;
  readonly leader: string;
  readonly commit: number;
  readonly applied: number;
  readonly firstIndex: number;
  readonly lastIndex: number;
  readonly membership: Membership;
  readonly membershipIndex: number;
  readonly progress: readonly ProgressStatus[];
  readonly leadTransferee: string;
  readonly installingSnapshot: boolean;
  /** Leader: members it removed and still tells of their removal (they are in no quorum). */
  readonly departing: readonly RaftPeer[];
}

interface PendingRead {
  readonly requestId: string;
  readonly index: number;
  readonly round: number;
}

/** A removed member the leader still tells (syncProgressWithMembership). */
interface Departure {
  readonly peer: RaftPeer;
  /**
   * A configuration entry that leaves it out (the one that removed it, or our latest): once it holds
   * this entry committed, its committed configuration leaves it out too.
   */
  readonly removedAt: number;
  /** The tick of the first heartbeat to it carrying a commit index at or past removedAt. */
  toldTick: number | undefined;
}

interface OutstandingReady {
  readonly lastEntry: { index: number; term: number } | undefined;
  readonly hardState: HardState | undefined;
  readonly appliedTo: number;
}

const DEFAULT_MAX_COMMITTED_BYTES = 64 * 1024 * 1024;

export class RaftNode {
  readonly id: string;
  private readonly cfg: RaftConfig;
  private readonly log: RaftLog;
  private readonly members: MembershipTracker;

  private term: number;
  private votedFor: string;
  private lead = '';
  private role: Role = 'follower';

  private electionElapsed = 0;
  private heartbeatElapsed = 0;
  private randomizedElectionTimeout = 0;
  /** Whether this timer cycle was already extended for a granted pre-vote (makeWayFor). */
  private electionTimerExtended = false;
  /** Monotonic tick counter, the time base of lease reads. */
  private tickCount = 0;

  private readonly progress = new Map<string, Progress>();
  private readonly votes = new Map<string, boolean>();
  private leadTransferee = '';
  private transferElapsed = 0;
  /** Joining members to promote once caught up, each with an index it must hold first (the entry that added it, or this term's first). */
  private readonly autoPromote = new Map<string, number>();
  /**
   * Members this leader removed and is still telling so. Their progress stays in `progress` (they
   * are sent appends and heartbeats), but they are in no quorum: every count walks a configuration's
   * voters, never `progress`.
   */
  private readonly departing = new Map<string, Departure>();
  /** Counts changes to `departing`, so the caller knows when to update its links (departuresVersion). */
  private departuresChanged = 0;

  private readRound = 0;
  private readBroadcastNeeded = false;
  private pendingReads: PendingRead[] = [];
  /** Reads received before the leader committed an entry of its own term. */
  private readsAwaitingCommit: string[] = [];
  /** Confirmed reads waiting for the state machine to reach their index. */
  private confirmedReads: ReadState[] = [];
  private droppedReads: string[] = [];

  /**
   * Follower: a snapshot install is under way (the caller downloads and swaps); its statuses go to
   * the leader that last sent a notice, naming that notice.
   */
  private install: { answerTo: string; noticeId: number } | undefined;
  /** A new install request to hand to the caller in the next Ready. */
  private snapshotNotice: SnapshotNotice | undefined;
  /** Leader: numbers the rounds of install notices, so late statuses are recognised. */
  private lastNoticeId = 0;
  /**
   * Candidate: our own vote counts only once the new term and the vote for ourselves are durable;
   * until then nothing of the new term may leave (a crash could otherwise let us win it twice).
   */
  private selfVotePending = false;
  /** The hard state the caller has made durable (as of the last advance()). */
  private durableHardState: HardState;
  /**
   * Leader: lease reads count only heartbeats sent at or after this tick. Raised after an abandoned
   * leadership transfer, whose TimeoutNow may still be in flight and would let voters bypass the
   * lease.
   */
  private leaseFloorTick = Number.NEGATIVE_INFINITY;
  /** Follower: the highest heartbeat tick of the current leader (this term) we acknowledged. */
  private leaderTickAcked = Number.NEGATIVE_INFINITY;

  /**
   * Leader: an empty append that carries nothing but a commit advance may leave (set by
   * forwardCommit() and by every tick, cleared by the next flush). Otherwise the commit index
   * waits for the next append or heartbeat, which carry it anyway.
   */
  private commitForwardDue = false;

  private msgs: Message[] = [];
  private msgsAfterPersist: Message[] = [];
  private lastHardState: HardState;
  private lastSoftState: SoftState;
  private outstanding: OutstandingReady | undefined;

  constructor(config: RaftConfig, reader: LogReader, initial: InitialState) {
    validateConfig(config);
    this.cfg = config;
    this.id = config.id;
    assertIndex(initial.hardState.term, 'initial term');
    assertIndex(initial.applied, 'initial applied index');
    assertIndex(initial.membershipIndex, 'initial membership index');
    validateMembership(initial.membership, 'initial membership');
    this.term = initial.hardState.term;
    this.votedFor = initial.hardState.votedFor;
    const first = reader.firstIndex();
    const snapshotPoint = { index: first - 1, term: reader.term(first - 1) };
    const commit = Math.max(initial.commit ?? initial.applied, initial.applied);
    this.log = new RaftLog(reader, initial.applied, commit, snapshotPoint);
    if (initial.membershipIndex > commit) {
      throw new Error(`initial configuration index ${initial.membershipIndex} is above the commit index ${commit}: a configuration is in force as committed only once committed`);
    }
    this.members = new MembershipTracker({ index: initial.membershipIndex, membership: initial.membership });
    // Configuration entries after the given one (possibly uncommitted) are in force too.
    this.scanConfigurations(initial.membershipIndex + 1);
    this.members.committedTo(commit);
    this.lastHardState = { term: this.term, votedFor: this.votedFor };
    this.durableHardState = this.lastHardState;
    this.becomeFollower(this.term, '');
    this.lastSoftState = this.softState();
  }

  // ---------------------------------------------------------------- inputs

  tick(): void {
    this.tickCount++;
    // A commit advance reaches followers within a tick even if the caller never forwards it.
    this.commitForwardDue = true;
    if (this.role === 'leader') this.tickLeader();
    else this.tickElection();
  }

  step(m: Message): void {
    validateMessage(m, this.id);
    if (this.isUnsolicited(m)) {
      // An answer to a request we never made (we do not hold that role): it must not move our term.
      this.cfg.onDropped?.('unsolicited', m);
      return;
    }
    if (this.role === 'leader') {
      if (m.type === 'pre-vote' || m.type === 'vote') this.tellIfRemoved(m);
      else if (m.term > this.term && this.departing.has(m.from)) {
        // A removed member of a higher term (it ran elections while cut off, with pre-vote off)
        // rejects what we send it: it can no longer be told, and, in no quorum, it must not depose
        // us (Raft thesis §4.2.3).
        this.stopTelling(m.from);
        return;
      }
    }
    if (m.term > this.term) {
      if (m.type === 'vote' || m.type === 'pre-vote') {
        // A node that heard from a live leader within the election timeout ignores candidates
        // (the check-quorum lease, and the pre-vote rule of the Raft thesis §9.6): a partitioned or
        // removed node cannot disrupt a healthy leader.
        // With lease reads, a freshly (re)started node also waits one election timeout before voting:
        // it may have acknowledged a leader's lease just before it crashed.
        const inLease =
          (this.cfg.checkQuorum || m.type === 'pre-vote') &&
          ((this.lead !== '' && this.electionElapsed < this.cfg.electionTicks) ||
            (this.cfg.leaseRead && this.tickCount < this.cfg.electionTicks));
        if (inLease && !(m.type === 'vote' && this.transferMayBypassLease(m))) return;
      }
      if (m.type === 'pre-vote' || (m.type === 'pre-vote-response' && !m.reject)) {
        // Pre-votes never change terms: the candidate asks about term+1 without entering it.
      } else if (m.type === 'append' || m.type === 'heartbeat' || m.type === 'snapshot-notify') {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, '');
      }
    } else if (m.term < this.term) {
      if ((this.cfg.checkQuorum || this.cfg.preVote) && (m.type === 'append' || m.type === 'heartbeat')) {
        // A stale leader (e.g. one that was partitioned) learns our term from this and steps down.
        this.send({ type: 'append-response', to: m.from, reject: true, index: 0, hintIndex: 0, hintTerm: 0 });
      } else if (m.type === 'pre-vote') {
        this.send({ type: 'pre-vote-response', to: m.from, reject: true });
      }
      return;
    }

    if (m.type === 'vote' || m.type === 'pre-vote') {
      this.handleVoteRequest(m);
      return;
    }

    switch (this.role) {
      case 'leader':
        this.stepLeader(m);
        break;
      case 'candidate':
      case 'pre-candidate':
        this.stepCandidate(m);
        break;
      case 'follower':
      case 'non-voter':
        this.stepFollower(m);
        break;
    }
  }

  /** Responses only a leader, a candidate or a pre-candidate asked for. */
  private isUnsolicited(m: Message): boolean {
    switch (m.type) {
      case 'append-response':
      case 'heartbeat-response':
      case 'snapshot-status':
        return this.role !== 'leader';
      case 'vote-response':
        return this.role !== 'candidate';
      case 'pre-vote-response':
        return this.role !== 'pre-candidate';
      default:
        return false;
    }
  }

  propose(data: Uint8Array): ProposeResult {
    if (!(data instanceof Uint8Array)) throw new Error('propose: data must be a Uint8Array');
    if (this.role !== 'leader') return { ok: false, error: 'not-leader', leaderHint: this.lead };
    if (this.leadTransferee !== '') return { ok: false, error: 'transferring', leaderHint: this.lead };
    const entry = this.appendAsLeader({ kind: 'data', data });
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Leader: send followers the commit index now, as empty appends to those not yet sent it (the
   * next Ready carries them). The commit index rides on every append and heartbeat; on its own it
   * leaves only when this is called or at the next tick, so that under a stream of proposals the
   * next append carries it instead of a message (and a follower Ready and answer) of its own. The
   * driver calls this shortly after a commit while commitForwardPending().
   */
  forwardCommit(): void {
    if (this.role === 'leader') this.commitForwardDue = true;
  }

  /**
   * Leader: whether a follower being replicated to has not been sent the commit index up to
   * `index` (default: the current commit index).
   */
  commitForwardPending(index = this.log.committed): boolean {
    if (this.role !== 'leader') return false;
    const committed = Math.min(index, this.log.committed);
    for (const [id, pr] of this.progress) {
      if (id !== this.id && pr.state === 'replicate' && pr.sentCommit < committed) return true;
    }
    return false;
  }

  /** Asks for a linearizable read point; the answer arrives as a ReadState once safe. */
  readIndex(requestId: string): { ok: true } | { ok: false; error: 'not-leader'; leaderHint: string } {
    if (typeof requestId !== 'string') throw new Error('readIndex: requestId must be a string');
    if (this.role !== 'leader') return { ok: false, error: 'not-leader', leaderHint: this.lead };
    if (!this.committedInCurrentTerm()) {
      this.readsAwaitingCommit.push(requestId);
      return { ok: true };
    }
    this.registerRead(requestId);
    return { ok: true };
  }

  transferLeadership(targetId: string): ChangeResult {
    if (this.role !== 'leader') return { ok: false, error: 'not-leader', leaderHint: this.lead };
    if (targetId === this.id) return { ok: true, index: this.log.lastIndex(), term: this.term };
    if (!isVoter(this.members.current(), targetId)) {
      return { ok: false, error: `transfer target ${JSON.stringify(targetId)} is not a voter`, leaderHint: this.lead };
    }
    const pr = this.progress.get(targetId);
    invariant(pr !== undefined, `no progress for voter ${targetId}`);
    this.leadTransferee = targetId;
    this.transferElapsed = 0;
    // Catch the target up first; TimeoutNow goes out once its log matches ours.
    if (pr.match === this.log.lastIndex()) this.sendTimeoutNow(targetId);
    return { ok: true, index: this.log.lastIndex(), term: this.term };
  }

  /** Adds a server as a non-voter; with promoteWhenCaughtUp it becomes a voter once it has caught up. */
  addNonVoter(peer: RaftPeer, promoteWhenCaughtUp = false): ChangeResult {
    validateMembership({ voters: [peer], nonVoters: [] }, 'addNonVoter');
    const current = this.members.current();
    if (isMember(current, peer.id)) {
      return { ok: false, error: `server ${JSON.stringify(peer.id)} is already a member`, leaderHint: this.lead };
    }
    const result = this.proposeMembership({ voters: current.voters, nonVoters: [...current.nonVoters, peer] });
    if (result.ok && promoteWhenCaughtUp) this.autoPromote.set(peer.id, result.index);
    return result;
  }

  promote(id: string): ChangeResult {
    const current = this.members.current();
    const peer = current.nonVoters.find((p) => p.id === id);
    if (peer === undefined) {
      return { ok: false, error: `server ${JSON.stringify(id)} is not a non-voter`, leaderHint: this.lead };
    }
    const result = this.proposeMembership({
      voters: [...current.voters, peer],
      nonVoters: current.nonVoters.filter((p) => p.id !== id),
    });
    if (result.ok) this.autoPromote.delete(id);
    return result;
  }

  removeServer(id: string): ChangeResult {
    const current = this.members.current();
    if (!isMember(current, id)) {
      return { ok: false, error: `server ${JSON.stringify(id)} is not a member`, leaderHint: this.lead };
    }
    const next = { voters: current.voters.filter((p) => p.id !== id), nonVoters: current.nonVoters.filter((p) => p.id !== id) };
    if (next.voters.length === 0) {
      return { ok: false, error: `removing ${JSON.stringify(id)} would leave no voters`, leaderHint: this.lead };
    }
    const result = this.proposeMembership(next);
    if (result.ok) this.autoPromote.delete(id);
    return result;
  }

  /**
   * Follower: a checkpoint at (term, index) is installed, holding the configuration `config` (the
   * one in force at its index). Call between Readies, after making the log consistent with it: if
   * logTerm(index) === term the log holds the checkpoint's own entry and is kept (the entries after
   * it may already be acknowledged, as etcd keeps them); otherwise the caller has reset the log to
   * start right after the checkpoint. The configuration comes only from the checkpoint and the log
   * kept after it, never from a notice.
   */
  snapshotInstalled(term: number, index: number, config: IndexedMembership): void {
    assertIndex(term, 'snapshot term');
    assertIndex(index, 'snapshot index');
    assertIndex(config.index, 'snapshot configuration index');
    validateMembership(config.membership, 'snapshot configuration');
    if (this.outstanding !== undefined) throw new Error('snapshotInstalled must be called between Readies (after advance())');
    if (config.index > index) throw new Error(`snapshot at ${index} claims a configuration from index ${config.index}, after it`);
    if (index < this.log.applied) {
      throw new Error(`installed snapshot index ${index} is below the applied index ${this.log.applied}`);
    }
    if (index < this.log.committed) {
      throw new Error(`installed snapshot index ${index} is below the commit index ${this.log.committed}`);
    }
    const keepSuffix = this.keepsLogOnInstall(term, index);
    this.log.restoreSnapshot(index, term, keepSuffix);
    this.members.restore(mutant('install-keeps-old-config') ? this.members.committed() : config);
    if (keepSuffix) this.scanConfigurations(index + 1);
    this.updateRoleForMembership();
    const answered = this.install;
    this.install = undefined;
    this.snapshotNotice = undefined;
    if (this.lead !== '') this.sendSnapshotStatus(this.lead, 'installed', answered?.answerTo === this.lead ? answered.noticeId : 0, index);
  }

  /**
   * Whether installing a checkpoint at (term, index) keeps the log: it does when the log holds that
   * very entry. The caller resets its log otherwise, before snapshotInstalled().
   */
  keepsLogOnInstall(term: number, index: number): boolean {
    return !mutant('stale-snapshot-status') && this.log.matchTerm(index, term);
  }

  /** Follower: the install asked for failed (the leader will ask again). */
  snapshotInstallFailed(): void {
    const answered = this.install;
    this.install = undefined;
    this.snapshotNotice = undefined;
    if (this.lead !== '') this.sendSnapshotStatus(this.lead, 'unavailable', answered?.answerTo === this.lead ? answered.noticeId : 0, 0);
  }

  /**
   * Leader: do not purge the log below this index (undefined: no limit).
   *
   * A follower asked to install a checkpoint resumes right after it, at or above the first index
   * the leader had when it asked; purging past that would send it back to install again. With
   * `holdForLiveFollowers` (Ratis' default, purge.upto.snapshot.index=false) a follower that is
   * replicating holds back what it still needs, from its match on: otherwise a member catching up
   * after an install, or just slower than the other, is sent back to install whenever the leader
   * takes its next snapshot point, and under steady writes that never ends (158 installs back to
   * back were seen). A replicating follower holds only while heard from since the last
   * check-quorum round, an installing one while heard from within two election timeouts (it says
   * nothing while it swaps the checkpoint in; a swap that outlasts that is sent to install again):
   * a crashed or cut-off one must not pin the leader's log; it installs when it comes back.
   */
  purgeFloor(holdForLiveFollowers: boolean): number | undefined {
    if (this.role !== 'leader') return undefined;
    let floor: number | undefined;
    for (const [id, pr] of this.progress) {
      if (id === this.id || this.departing.has(id)) continue;
      let needs: number;
      // A follower installing a checkpoint may say nothing while it swaps it in (its loop waits
      // for the install): it holds what it resumes from for two election timeouts of silence, not
      // only until the next check-quorum round, or a leader writing on would purge past it
      // meanwhile and send it to install again, and again.
      if (pr.state === 'snapshot' && this.heardRecently(pr)) needs = pr.noticeFirstIndex;
      else if (pr.state !== 'snapshot' && pr.recentActive && holdForLiveFollowers && this.madeProgressRecently(pr)) needs = pr.match + 1;
      else continue;
      floor = Math.min(floor ?? Number.MAX_SAFE_INTEGER, needs);
    }
    return floor;
  }

  /**
   * Seen making progress within the last two election timeouts. Bounds the hold: a follower whose
   * appends never get through (or whose match this leader has not confirmed yet, such as one still
   * installing what the previous leader asked for) does not pin the log; it installs instead.
   */
  private madeProgressRecently(pr: Progress): boolean {
    return this.tickCount - pr.lastProgressTick <= 2 * this.cfg.electionTicks;
  }

  /** Heard from within the last two election timeouts (one that crashed holds nothing after). */
  private heardRecently(pr: Progress): boolean {
    return this.tickCount - pr.lastHeardTick <= 2 * this.cfg.electionTicks;
  }

  /** The caller purged its log below `index` (which must be applied); remembers the term there. */
  compacted(index: number, term: number): void {
    assertIndex(index, 'compaction index');
    this.log.compacted(index, term);
  }

  // ---------------------------------------------------------------- outputs

  hasReady(): boolean {
    if (this.outstanding !== undefined) return false;
    this.flushAppends();
    return (
      this.msgs.length > 0 ||
      this.msgsAfterPersist.length > 0 ||
      this.log.hasUnhanded() ||
      this.log.hasCommittedToApply() ||
      this.hardStateChanged() ||
      this.softStateChanged() ||
      this.droppedReads.length > 0 ||
      this.snapshotNotice !== undefined ||
      this.confirmedReads.some((r) => r.index <= this.log.applied)
    );
  }

  ready(): Ready | null {
    if (this.outstanding !== undefined) throw new Error('ready() called again before advance() of the previous Ready');
    if (!this.hasReady()) return null;
    const { entries, truncateFrom } = this.log.takeUnhanded();
    const committedEntries = this.log.committedToApply(this.cfg.maxCommittedBytesPerReady ?? DEFAULT_MAX_COMMITTED_BYTES);
    const appliedTo = committedEntries.length > 0 ? (committedEntries[committedEntries.length - 1] as LogEntry).index : this.log.applied;
    const readStates = this.confirmedReads.filter((r) => r.index <= appliedTo);
    this.confirmedReads = this.confirmedReads.filter((r) => r.index > appliedTo);
    const hs = this.hardStateChanged() ? { term: this.term, votedFor: this.votedFor } : undefined;
    const ss = this.softStateChanged() ? this.softState() : undefined;
    const lastEntry = entries.length > 0 ? (entries[entries.length - 1] as LogEntry) : undefined;
    const rd: Ready = {
      ...(ss !== undefined ? { softState: ss } : {}),
      ...(hs !== undefined ? { hardState: hs } : {}),
      entries,
      ...(truncateFrom !== undefined ? { truncateFrom } : {}),
      messages: this.msgs,
      messagesAfterPersist: this.msgsAfterPersist,
      committedEntries,
      readStates,
      droppedReads: this.droppedReads,
      ...(this.snapshotNotice !== undefined ? { snapshotNotice: this.snapshotNotice } : {}),
    };
    this.msgs = [];
    this.msgsAfterPersist = [];
    this.droppedReads = [];
    this.snapshotNotice = undefined;
    if (ss !== undefined) this.lastSoftState = ss;
    if (hs !== undefined) this.lastHardState = hs;
    this.outstanding = {
      lastEntry: lastEntry === undefined ? undefined : { index: lastEntry.index, term: lastEntry.term },
      hardState: hs,
      appliedTo,
    };
    return rd;
  }

  /** Acknowledges the last Ready: its entries and hard state are durable, its committed entries applied. */
  advance(): void {
    const out = this.outstanding;
    if (out === undefined) throw new Error('advance() called without an outstanding Ready');
    this.outstanding = undefined;
    if (out.hardState !== undefined) this.durableHardState = out.hardState;
    if (out.lastEntry !== undefined) this.log.stableTo(out.lastEntry.index, out.lastEntry.term);
    if (out.appliedTo > this.log.applied) this.log.appliedTo(out.appliedTo);
    this.maybeCountSelfVote();
    if (this.role === 'leader') {
      // The leader's own vote for its entries counts only now that they are durable.
      const self = this.progress.get(this.id);
      if (self !== undefined) self.maybeUpdate(this.log.stableLastIndex());
      this.maybeCommit();
    }
  }

  status(): RaftStatus {
    const progress: ProgressStatus[] = [];
    if (this.role === 'leader') {
      for (const [id, pr] of this.progress) {
        if (this.departing.has(id)) continue;
        progress.push({ id, match: pr.match, next: pr.next, state: pr.state, inflight: pr.inflights.count, recentActive: pr.recentActive });
      }
    }
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      votedFor: this.votedFor,
      leader: this.lead,
      commit: this.log.committed,
      applied: this.log.applied,
      firstIndex: this.log.firstIndex(),
      lastIndex: this.log.lastIndex(),
      membership: this.members.current(),
      membershipIndex: this.members.currentIndex(),
      progress,
      leadTransferee: this.leadTransferee,
      installingSnapshot: this.install !== undefined,
      departing: [...this.departing.values()].map((d) => d.peer),
    };
  }

  // Cheap accessors for hot paths (metrics, simulators) that do not need a full status().
  get currentRole(): Role {
    return this.role;
  }

  get currentTerm(): number {
    return this.term;
  }

  get leaderId(): string {
    return this.lead;
  }

  get commitIndex(): number {
    return this.log.committed;
  }

  get appliedIndex(): number {
    return this.log.applied;
  }

  get lastIndex(): number {
    return this.log.lastIndex();
  }

  /** Term of the entry at `index` in the core's view of the log (undefined if unknown). */
  logTerm(index: number): number | undefined {
    return this.log.term(index);
  }

  /** Leader: whether `id` is a member it removed and is still telling so. */
  isTellingOfRemoval(id: string): boolean {
    return this.departing.has(id);
  }

  /** Changes whenever the members in status().departing change (the caller's links follow them). */
  get departuresVersion(): number {
    return this.departuresChanged;
  }

  /** The configuration committed so far (what raft-meta.conf should hold once applied). */
  committedMembership(): IndexedMembership {
    return this.members.committed();
  }

  // ---------------------------------------------------------------- roles

  private softState(): SoftState {
    return { role: this.role, leader: this.lead, term: this.term };
  }

  private softStateChanged(): boolean {
    const s = this.lastSoftState;
    return s.role !== this.role || s.leader !== this.lead || s.term !== this.term;
  }

  private hardStateChanged(): boolean {
    return this.lastHardState.term !== this.term || this.lastHardState.votedFor !== this.votedFor;
  }

  /**
   * Whether this node campaigns and stands as a voter: a voter in its latest configuration, or in
   * the committed one (Raft thesis §4.2.2). A leader removed by a change that has not committed yet
   * must still campaign after losing leadership, or a group of two voters, the other of which needs
   * its vote, would have no leader forever.
   */
  private promotable(): boolean {
    if (isVoter(this.members.current(), this.id)) return true;
    return !mutant('removed-voter-stops-campaigning') && isVoter(this.members.committed().membership, this.id);
  }

  /**
   * Adds the configurations held by log entries from `from` on (after a restart or an install).
   * With a log store that knows which entries hold one, only those are read: at start-up the range
   * is usually the whole log.
   */
  private scanConfigurations(from: number): void {
    for (const e of this.log.configurationEntries(from, this.log.lastIndex() + 1)) {
      if (e.payload.kind === 'config') this.members.appended(e.index, membershipFromPayload(e.payload));
    }
  }

  /** Candidate: our vote for ourselves counts once the Ready holding it is durable. */
  private maybeCountSelfVote(): void {
    if (!this.selfVotePending || this.role !== 'candidate') return;
    if (this.durableHardState.term !== this.term || this.durableHardState.votedFor !== this.id) return;
    this.selfVotePending = false;
    this.votes.set(this.id, true);
    this.tallyAndAct();
  }

  private reset(term: number): void {
    invariant(term >= this.term, `term goes backwards from ${this.term} to ${term}`);
    if (term !== this.term) {
      this.term = term;
      this.votedFor = '';
    }
    this.lead = '';
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.drawElectionTimeout();
    this.votes.clear();
    this.selfVotePending = false;
    this.leadTransferee = '';
    this.transferElapsed = 0;
    this.leaseFloorTick = Number.NEGATIVE_INFINITY;
    this.leaderTickAcked = Number.NEGATIVE_INFINITY;
    this.progress.clear();
    if (this.departing.size > 0) this.departuresChanged++;
    this.departing.clear();
    this.autoPromote.clear();
    // Reads not yet answered can no longer be confirmed by this node as leader.
    for (const r of this.pendingReads) this.droppedReads.push(r.requestId);
    for (const r of this.readsAwaitingCommit) this.droppedReads.push(r);
    this.pendingReads = [];
    this.readsAwaitingCommit = [];
    this.readBroadcastNeeded = false;
  }

  private drawElectionTimeout(): void {
    this.randomizedElectionTimeout = this.cfg.electionTicks + this.cfg.random.nextInt(this.cfg.electionJitterTicks ?? this.cfg.electionTicks);
    this.electionTimerExtended = false;
  }

  private becomeFollower(term: number, lead: string): void {
    // Reads already confirmed stay valid: their index was confirmed while we led.
    this.reset(term);
    this.lead = lead;
    this.role = this.promotable() ? 'follower' : 'non-voter';
  }

  private becomePreCandidate(): void {
    invariant(this.role !== 'leader', 'a leader cannot become a pre-candidate');
    // Pre-vote keeps term and vote: only the role and the tally change.
    this.votes.clear();
    this.lead = '';
    this.electionElapsed = 0;
    this.drawElectionTimeout();
    this.role = 'pre-candidate';
  }

  private becomeCandidate(): void {
    invariant(this.role !== 'leader', 'a leader cannot become a candidate');
    this.reset(this.term + 1);
    this.votedFor = this.id;
    this.role = 'candidate';
  }

  private becomeLeader(): void {
    invariant(this.role === 'candidate', `only a candidate becomes leader (was ${this.role})`);
    this.reset(this.term);
    this.role = 'leader';
    this.lead = this.id;
    const last = this.log.lastIndex();
    for (const id of memberIds(this.members.current())) this.addProgress(id, last + 1);
    if (!this.progress.has(this.id)) this.addProgress(this.id, last + 1);
    // Removed by a configuration this leader holds uncommitted: no earlier leader can have told
    // them (or not for sure), and this term's first entry commits it.
    for (const removed of this.removedSinceCommitted()) this.startTelling(removed, this.members.currentIndex());
    const self = this.progress.get(this.id) as Progress;
    self.maybeUpdate(this.log.stableLastIndex());
    self.becomeReplicate();
    self.recentActive = true;
    // The first entry of every term is a configuration entry with the current configuration (as
    // Ratis does); it is also the no-op that lets the leader commit entries of earlier terms.
    const first = this.appendAsLeader(payloadFromMembership(this.members.current()));
    // A member added under an earlier leader and not promoted yet would otherwise stay a non-voter
    // for good: the intent to promote lived only in that leader's memory.
    if (this.cfg.promoteNonVoters === true) {
      for (const p of this.members.current().nonVoters) this.autoPromote.set(p.id, first.index);
    }
  }

  private addProgress(id: string, next: number): void {
    const pr = new Progress(next, this.cfg.maxInflightMsgs, this.cfg.maxInflightBytes);
    pr.heard(this.tickCount);
    this.progress.set(id, pr);
  }

  /** `transferTick`: the sentTick of the TimeoutNow that started this campaign (a transfer). */
  private campaign(transferTick: number | undefined): void {
    if (!this.promotable()) return;
    if (this.cfg.preVote && transferTick === undefined) {
      this.becomePreCandidate();
      this.requestVotes('pre-vote', this.term + 1, undefined);
    } else {
      this.becomeCandidate();
      this.requestVotes('vote', this.term, transferTick);
    }
  }

  /**
   * A vote asked for because of a leadership transfer may be granted inside our check-quorum lease,
   * but only when it comes from a voter and the TimeoutNow behind it is not older than the
   * transfer's timeout by the heartbeats we have acknowledged since: a TimeoutNow that lands after
   * the leader gave the transfer up (the leader may serve lease reads again by then, counting on
   * our acknowledgements) must not let anyone past that lease.
   */
  private transferMayBypassLease(m: VoteMessage): boolean {
    if (!m.transfer || !isVoter(this.members.current(), m.from)) return false;
    if (mutant('lease-after-abandoned-transfer')) return true;
    return this.leaderTickAcked < m.transferTick + this.cfg.electionTicks;
  }

  private requestVotes(type: 'vote' | 'pre-vote', term: number, transferTick: number | undefined): void {
    if (type === 'pre-vote' || mutant('self-vote-before-durable')) {
      // A pre-vote changes nothing durable: our own counts at once.
      this.votes.set(this.id, true);
      if (this.tallyAndAct()) return;
    } else {
      // The requests leave after the new term and vote are durable (they are not leader traffic);
      // our own vote is counted then too, by advance().
      this.selfVotePending = true;
    }
    for (const p of this.members.current().voters) {
      if (p.id === this.id) continue;
      this.send({ type, to: p.id, term, lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm(), transfer: transferTick !== undefined, transferTick: transferTick ?? 0 });
    }
  }

  /** Counts votes; wins or loses the (pre-)election when decided. Returns true when decided. */
  private tallyAndAct(): boolean {
    const voters = this.members.current().voters;
    let granted = 0;
    let rejected = 0;
    for (const p of voters) {
      const v = this.votes.get(p.id);
      if (v === true) granted++;
      else if (v === false) rejected++;
    }
    const quorum = majority(voters.length);
    if (granted >= quorum) {
      if (this.role === 'pre-candidate') {
        this.becomeCandidate();
        this.requestVotes('vote', this.term, undefined);
      } else {
        this.becomeLeader();
      }
      return true;
    }
    if (rejected >= quorum || voters.length - rejected < quorum) {
      this.becomeFollower(this.term, '');
      return true;
    }
    return false;
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.install !== undefined) return;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.campaign(undefined);
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.leadTransferee !== '') {
      this.transferElapsed++;
      if (this.transferElapsed >= this.cfg.electionTicks) {
        // Abandoned. A TimeoutNow still in flight cannot let the target win inside our lease: lease
        // reads count only heartbeats sent an election timeout after it (sendTimeoutNow), which
        // voters then hold against it (transferMayBypassLease).
        this.leadTransferee = '';
        this.transferElapsed = 0;
      }
    }
    if (this.electionElapsed >= this.cfg.electionTicks) {
      this.electionElapsed = 0;
      if (this.cfg.checkQuorum && !this.quorumActive()) {
        this.becomeFollower(this.term, '');
        return;
      }
      for (const [id, pr] of this.progress) if (id !== this.id) pr.recentActive = false;
    }
    for (const id of [...this.departing.keys()]) {
      const pr = this.progress.get(id);
      if (pr === undefined || !this.heardRecently(pr)) this.stopTelling(id);
    }
    if (this.heartbeatElapsed >= this.cfg.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.broadcastHeartbeat(true);
      // Promotion is also re-evaluated on the clock: a member that caught up while nothing was
      // written (so no append answer moved its match) must not wait for the next write.
      this.maybeAutoPromote();
    }
  }

  private quorumActive(): boolean {
    const voters = this.members.current().voters;
    let active = 0;
    for (const p of voters) {
      if (p.id === this.id || this.progress.get(p.id)?.recentActive === true) active++;
    }
    return active >= majority(voters.length);
  }

  // ---------------------------------------------------------------- message handling

  private handleVoteRequest(m: VoteMessage): void {
    const isPre = m.type === 'pre-vote';
    const canVote =
      this.votedFor === m.from ||
      (this.votedFor === '' && this.lead === '') ||
      (isPre && m.term > this.term);
    if (canVote && this.log.isUpToDate(m.lastIndex, m.lastTerm)) {
      // Granted pre-votes answer in the asked term; a granted vote is persisted before it is sent.
      this.send({ type: isPre ? 'pre-vote-response' : 'vote-response', to: m.from, term: m.term, reject: false });
      if (!isPre) {
        this.electionElapsed = 0;
        this.votedFor = m.from;
      } else {
        this.makeWayFor(m);
      }
    } else {
      this.send({ type: isPre ? 'pre-vote-response' : 'vote-response', to: m.from, reject: true });
    }
  }

  /**
   * We granted `m`'s pre-vote. Two voters whose election timers fire within a message delay of each
   * other (a dead leader's last append reset both at once) would each win the other's pre-vote,
   * both stand for the same term, vote for themselves and split it: nobody leads until another
   * whole election timeout has passed. So one of them makes way. A pre-candidate gives up its
   * pre-vote round for one whose log is more up to date, or as up to date and whose id sorts first
   * (so exactly one of two equal ones does); a follower whose own timer is about to fire waits a
   * little longer (the random part of the timeout, once per timer cycle), long enough for the round
   * it just granted to finish. Neither touches term or vote: pre-votes change nothing durable, and a
   * yielding node that hears of no leader campaigns again after its timeout.
   */
  private makeWayFor(m: VoteMessage): void {
    // Only for a voter of our configuration: a removed server can never win, and must not hold us up.
    if (!isVoter(this.members.current(), m.from)) return;
    if (this.role === 'pre-candidate') {
      const theirsIsLonger = m.lastTerm > this.log.lastTerm() || (m.lastTerm === this.log.lastTerm() && m.lastIndex > this.log.lastIndex());
      const same = m.lastTerm === this.log.lastTerm() && m.lastIndex === this.log.lastIndex();
      if (theirsIsLonger || (same && m.from < this.id)) this.becomeFollower(this.term, '');
      return;
    }
    if (this.role === 'follower' && !this.electionTimerExtended) {
      // Once per timer cycle and for less than the fixed timeout: a voter that keeps pre-voting and
      // never wins (it cannot hear the answers) must not keep pushing our campaign away for good.
      const wait = Math.min(this.cfg.electionJitterTicks ?? this.cfg.electionTicks, this.cfg.electionTicks - 1);
      this.randomizedElectionTimeout = Math.max(this.randomizedElectionTimeout, this.electionElapsed + wait);
      this.electionTimerExtended = true;
    }
  }

  private stepLeader(m: Message): void {
    const pr = this.progress.get(m.from);
    switch (m.type) {
      case 'append-response':
        if (pr !== undefined) this.handleAppendResponse(m, pr);
        break;
      case 'heartbeat-response':
        if (pr !== undefined) this.handleHeartbeatResponse(m, pr);
        break;
      case 'snapshot-status':
        if (pr !== undefined) this.handleSnapshotStatus(m, pr);
        break;
      case 'append':
      case 'heartbeat':
      case 'snapshot-notify':
        // Same term, another leader: impossible unless two leaders were elected in one term.
        throw new Error(`raft invariant violated: leader ${this.id} got ${m.type} from ${m.from} in its own term ${m.term}`);
      default:
        break; // stale votes and TimeoutNow are irrelevant to a leader
    }
  }

  private stepCandidate(m: Message): void {
    switch (m.type) {
      case 'append':
      case 'heartbeat':
      case 'snapshot-notify':
        this.becomeFollower(m.term, m.from);
        this.stepFollower(m);
        return;
      case 'vote-response':
        if (this.role === 'candidate' && m.term === this.term) {
          this.votes.set(m.from, !m.reject);
          this.tallyAndAct();
        }
        return;
      case 'pre-vote-response':
        if (this.role === 'pre-candidate' && (m.term === this.term + 1 || m.reject)) {
          this.votes.set(m.from, !m.reject);
          this.tallyAndAct();
        }
        return;
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case 'append':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleAppend(m);
        return;
      case 'heartbeat':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleHeartbeat(m);
        return;
      case 'snapshot-notify':
        this.electionElapsed = 0;
        this.lead = m.from;
        this.handleSnapshotNotify(m);
        return;
      case 'timeout-now':
        // Leadership transfer: campaign at once, skipping pre-vote (and, at voters that allow it,
        // the lease check). Only our current leader may ask.
        if (m.from !== this.lead) return;
        if (this.promotable() && this.install === undefined) this.campaign(m.sentTick);
        return;
      default:
        return;
    }
  }

  private handleAppend(append: AppendMessage): void {
    let m = append;
    if (this.install !== undefined) {
      // Only a leader that has not asked us (a new one) sends appends now; it ignores this status
      // (no notice of its own is answered) and probes again once we are done.
      this.sendSnapshotStatus(m.from, 'in-progress', this.install.answerTo === m.from ? this.install.noticeId : 0, 0);
      return;
    }
    const committed = this.log.committed;
    const atCommit = m.prevIndex === committed && m.prevIndex > 0;
    if (m.prevIndex < committed || (atCommit && (m.prevTerm === 0 || this.log.term(committed) === undefined))) {
      // Everything up to our commit index matches any current leader's log, so what lies beyond it
      // continues our log whatever prevTerm says. (A leader that restarted after purging does not
      // know the term just below its first entry: it sends prevTerm 0 to a follower that holds that
      // point committed. A follower that restarted after purging may not know the term at its own
      // commit index, just below its first entry: it cannot check prevTerm there, and rejecting
      // sent the leader into notices answered "already installed", round after round.)
      const beyond = m.entries.filter((e) => e.index > committed);
      if (beyond.length === 0) {
        this.send({ type: 'append-response', to: m.from, reject: false, index: committed, hintIndex: 0, hintTerm: 0 });
        return;
      }
      m = { ...m, prevIndex: committed, prevTerm: this.log.term(committed) as number, entries: beyond };
    }
    if (this.log.matchTerm(m.prevIndex, m.prevTerm)) {
      const lastNew = m.prevIndex + m.entries.length;
      const conflict = this.log.findConflict(m.entries);
      if (conflict !== 0) {
        invariant(conflict > committed, `entry ${conflict} conflicts with the committed log (commit ${committed})`);
        const fresh = m.entries.slice(conflict - (m.prevIndex + 1));
        if (conflict <= this.log.lastIndex()) this.members.truncatedFrom(conflict);
        this.log.append(fresh);
        for (const e of fresh) {
          if (e.payload.kind === 'config') this.members.appended(e.index, membershipFromPayload(e.payload));
        }
        this.updateRoleForMembership();
      }
      this.commitTo(Math.min(m.commit, mutant('follower-commit-bound') ? this.log.lastIndex() : lastNew));
      this.send({ type: 'append-response', to: m.from, reject: false, index: lastNew, hintIndex: 0, hintTerm: 0 });
      return;
    }
    // Reject, telling the leader where our log may match so it can skip a whole term at once.
    const hint = this.log.findConflictByTerm(Math.min(m.prevIndex, this.log.lastIndex()), m.prevTerm);
    this.send({ type: 'append-response', to: m.from, reject: true, index: m.prevIndex, hintIndex: hint.index, hintTerm: hint.term });
  }

  private handleHeartbeat(m: HeartbeatMessage): void {
    if (m.sentTick > this.leaderTickAcked) this.leaderTickAcked = m.sentTick;
    if (this.install === undefined) this.commitFromHeartbeat(m);
    this.send({ type: 'heartbeat-response', to: m.from, readRound: m.readRound, sentTick: m.sentTick });
  }

  /**
   * A heartbeat's commit index is min(our match, the leader's commit), but the leader's idea of our
   * match is stale if we were restored from an older copy of our directories: the copy may hold an
   * uncommitted entry of an earlier term at that index. So commit it only where our entry has the
   * leader's term (by Log Matching, our log up to there is then the leader's); otherwise we lost
   * entries the leader counts on, and a rejection makes it probe us (and say so).
   */
  private commitFromHeartbeat(m: HeartbeatMessage): void {
    if (mutant('heartbeat-commit-unchecked')) {
      this.commitTo(Math.min(m.commit, this.log.lastIndex()));
      return;
    }
    if (m.commit <= this.log.committed || m.commitTerm === 0) return;
    if (m.commit <= this.log.lastIndex() && this.log.matchTerm(m.commit, m.commitTerm)) {
      this.commitTo(m.commit);
      return;
    }
    const hint = this.log.findConflictByTerm(Math.min(m.commit, this.log.lastIndex()), m.commitTerm);
    this.send({ type: 'append-response', to: m.from, reject: true, index: m.commit, hintIndex: hint.index, hintTerm: hint.term });
  }

  private handleSnapshotNotify(m: SnapshotNotifyMessage): void {
    if (this.install !== undefined) {
      // Still installing (perhaps what an earlier leader asked for: any leader's checkpoint is
      // committed state). Answer this leader's notice; the result goes to it.
      this.install = { answerTo: m.from, noticeId: m.noticeId };
      this.sendSnapshotStatus(m.from, 'in-progress', m.noticeId, 0);
      return;
    }
    // Our log already reaches the leader's compaction point if we committed past it, or hold the
    // very entry there: the leader can go on with appends, and we keep our log. Deciding by the
    // commit index alone would wipe an up-to-date log whose commit index lags.
    const holdsPoint = !mutant('stale-snapshot-status') && this.log.matchTerm(m.firstIndex - 1, m.prevTerm);
    if (this.log.committed >= m.firstIndex - 1 || holdsPoint) {
      const index = Math.max(this.log.committed, holdsPoint ? m.firstIndex - 1 : 0);
      this.sendSnapshotStatus(m.from, 'already-installed', m.noticeId, index);
      return;
    }
    this.install = { answerTo: m.from, noticeId: m.noticeId };
    this.snapshotNotice = { leaderId: m.from, term: m.term, noticeId: m.noticeId, firstIndex: m.firstIndex };
    this.sendSnapshotStatus(m.from, 'in-progress', m.noticeId, 0);
  }

  /** `index`: for installed / already-installed, the point our log now holds (matching the leader's). */
  private sendSnapshotStatus(to: string, status: SnapshotStatusKind, noticeId: number, index: number): void {
    const snapshotTerm = index > 0 ? (this.log.term(index) ?? 0) : 0;
    const configIndex = index > 0 ? this.members.committed().index : 0;
    this.send({ type: 'snapshot-status', to, status, noticeId, index, snapshotTerm, configIndex });
  }

  private handleAppendResponse(m: AppendResponseMessage, pr: Progress): void {
    pr.heard(this.tickCount);
    if (m.reject) {
      if (pr.state === 'snapshot') return;
      let matchHint = m.hintIndex;
      if (m.hintTerm > 0) matchHint = this.log.findConflictByTerm(m.hintIndex, m.hintTerm).index;
      if (m.index <= pr.match && m.index > 0 && !mutant('ignore-rejection-below-match')) {
        this.followerLostEntries(m.from, pr, m.index, matchHint);
        return;
      }
      if (pr.maybeDecrTo(m.index, matchHint) && pr.state === 'replicate') pr.becomeProbe();
      return;
    }
    const updated = pr.maybeUpdate(m.index);
    if (updated || pr.match >= this.log.lastIndex()) pr.lastProgressTick = this.tickCount;
    // A probe answered at exactly the known match (e.g. right after a snapshot install set the
    // match) also proves where the logs agree: start streaming.
    if (pr.state === 'probe' && m.index >= pr.match) {
      pr.becomeReplicate();
    } else if (pr.state === 'replicate') {
      pr.inflights.freeUpTo(m.index);
    }
    if (!updated) return;
    this.maybeCommit();
    this.maybeFinishTransfer(m.from, pr);
    this.maybeAutoPromote();
  }

  private handleHeartbeatResponse(m: HeartbeatResponseMessage, pr: Progress): void {
    pr.heard(this.tickCount);
    if (pr.state !== 'snapshot' && pr.match >= this.log.lastIndex()) pr.lastProgressTick = this.tickCount;
    if (pr.state === 'probe') pr.probeSent = false;
    if (pr.state === 'replicate' && pr.match < this.log.lastIndex()) {
      if (pr.inflights.full()) pr.inflights.freeFirstOne();
      pr.resendWanted = true;
    }
    if (m.readRound > pr.readRoundAcked) pr.readRoundAcked = m.readRound;
    if (m.sentTick > pr.leaseTickAcked) pr.leaseTickAcked = m.sentTick;
    // A removed member that answers a heartbeat sent after the first one that told it its removal is
    // committed has that commit index (heartbeats sent at the same tick, before it, did not carry it).
    const departure = this.departing.get(m.from);
    if (departure?.toldTick !== undefined && m.sentTick > departure.toldTick) this.stopTelling(m.from);
    this.confirmReads();
  }

  /**
   * The follower rejected an append at `rejected`, at or below the match it had acknowledged: it no
   * longer holds entries it promised (restored from an older copy of its disk, or this is a late
   * duplicate of an old rejection). Count only what it provably holds and probe it again; ignoring
   * the rejection would leave it stuck until leadership moved.
   */
  private followerLostEntries(id: string, pr: Progress, rejected: number, matchHint: number): void {
    const acknowledged = pr.match;
    pr.match = Math.max(0, Math.min(acknowledged, matchHint, rejected - 1));
    pr.becomeProbe();
    // A removed member told its removal's commit may have lost it with the entries: tell it again.
    const departure = this.departing.get(id);
    if (departure !== undefined) departure.toldTick = undefined;
    this.cfg.onWarning?.(`follower ${id} rejected entry ${rejected} after acknowledging up to ${acknowledged}: it lost entries ${pr.match + 1}..${acknowledged}; probing it again from ${pr.next}`, {
      follower: id,
      acknowledged,
      rejected,
      lostFrom: pr.match + 1,
      lostTo: acknowledged,
    });
  }

  private handleSnapshotStatus(m: SnapshotStatusMessage, pr: Progress): void {
    pr.heard(this.tickCount);
    if (mutant('stale-snapshot-status')) {
      this.believeAnySnapshotStatus(m, pr);
      return;
    }
    // Only an answer to the current round of notices counts: a late or duplicated status must not
    // move a follower that has since caught up (or been asked again) anywhere.
    if (pr.state !== 'snapshot' || m.noticeId !== pr.noticeId) return;
    switch (m.status) {
      case 'in-progress':
      case 'unavailable':
        // Stay paused; the notice is repeated with every heartbeat round.
        return;
      case 'installed':
      case 'already-installed': {
        if (m.index > this.log.lastIndex()) return; // cannot hold what we never had: malformed
        // Exactly what the follower holds now, never more: a match it no longer holds must not count.
        pr.match = m.index;
        pr.lastProgressTick = this.tickCount;
        pr.becomeProbe();
        // A joining member that caught up through the install is promoted now, not at the next write.
        this.maybeAutoPromote();
        // From here appends carry everything newer, configurations included; if we purged past its
        // point meanwhile, sendAppends starts a new round of notices.
        return;
      }
    }
  }

  /** The 'stale-snapshot-status' mutant: how statuses were handled before notice rounds existed. */
  private believeAnySnapshotStatus(m: SnapshotStatusMessage, pr: Progress): void {
    if (m.status === 'in-progress' || m.status === 'unavailable') {
      if (pr.state !== 'snapshot') pr.becomeSnapshot(pr.noticeId, this.log.firstIndex());
      return;
    }
    if (m.index > pr.match) pr.match = m.index;
    pr.becomeProbe();
    this.maybeCommit();
  }

  // ---------------------------------------------------------------- leader: replication

  private appendAsLeader(payload: LogEntry['payload']): LogEntry {
    invariant(this.role === 'leader', 'only a leader appends new entries');
    const entry: LogEntry = { term: this.term, index: this.log.lastIndex() + 1, payload };
    this.log.append([entry]);
    if (payload.kind === 'config') {
      const before = this.members.current();
      this.members.appended(entry.index, membershipFromPayload(payload));
      this.syncProgressWithMembership(before, entry.index);
    }
    return entry;
  }

  private proposeMembership(next: Membership): ChangeResult {
    if (this.role !== 'leader') return { ok: false, error: 'not-leader', leaderHint: this.lead };
    if (this.leadTransferee !== '') return { ok: false, error: 'leadership transfer in progress', leaderHint: this.lead };
    if (this.members.hasUncommitted()) {
      return { ok: false, error: 'a configuration change is already in progress', leaderHint: this.lead };
    }
    validateMembership(next, 'new membership');
    const entry = this.appendAsLeader(payloadFromMembership(next));
    return { ok: true, index: entry.index, term: entry.term };
  }

  /**
   * Progress exists for the members of the current configuration (plus the leader), and for the
   * members `configIndex` removed from `before` while they are told so (a member added back is a
   * member again, its progress kept).
   *
   * A removed member must be told: the configuration without it takes effect on the leader as soon
   * as it is appended, and a leader that stopped sending to it there would leave it holding a
   * configuration with itself, committed: it would never apply its removal, and would campaign
   * (unanswered) for good. So it is sent appends and heartbeats until it acknowledges a heartbeat
   * carrying a commit index at or past its removal (tickLeader, handleHeartbeatResponse), or stays
   * silent for two election timeouts, or would need a checkpoint (sendAppends).
   */
  private syncProgressWithMembership(before: Membership, configIndex: number): void {
    const current = this.members.current();
    const last = this.log.lastIndex();
    for (const id of memberIds(current)) {
      if (this.departing.delete(id)) this.departuresChanged++;
      if (!this.progress.has(id)) this.addProgress(id, last);
    }
    for (const [id, pr] of [...this.progress]) {
      if (id === this.id || isMember(current, id) || this.departing.has(id)) continue;
      const peer = [...before.voters, ...before.nonVoters].find((p) => p.id === id);
      this.progress.delete(id);
      if (peer !== undefined && pr.state !== 'snapshot') this.startTelling(peer, configIndex, pr);
    }
  }

  /**
   * Starts telling `peer` it was removed by the configuration at `removedAt` (or a later one), with
   * the progress it has, or a new one probing from our last entry.
   */
  private startTelling(peer: RaftPeer, removedAt: number, pr?: Progress): void {
    if (pr === undefined) this.addProgress(peer.id, this.log.lastIndex() + 1);
    else this.progress.set(peer.id, pr);
    this.departing.set(peer.id, { peer, removedAt, toldTick: undefined });
    this.departuresChanged++;
  }

  /**
   * Leader: a server outside the configuration asks for votes, so it counts itself a voter: it was
   * removed and never learned it (it was down or cut off while it was told, restarted before the
   * commit index it was told reached its disk, or was removed under an earlier leader). It is told
   * as a member just removed is; one that would need a checkpoint is dropped again (sendAppends).
   * The node accepts such messages only from the servers its configuration file names and the
   * members of its latest and committed configurations (raft-inbound.ts), so a stranger cannot make
   * the leader track it; a removed server added at run time and named in no file is not heard.
   */
  private tellIfRemoved(m: VoteMessage): void {
    const id = m.from;
    if (id === this.id || this.departing.has(id) || isMember(this.members.current(), id)) return;
    // A candidate of a higher term than ours would reject what we send it (a pre-vote asks about
    // the term after the candidate's own).
    if (m.term - (m.type === 'pre-vote' ? 1 : 0) > this.term) return;
    const known = this.members.serversSinceCommitted().find((p) => p.id === id);
    // Our latest configuration leaves it out; any earlier one may still hold it (even above our
    // commit index, after a restart), so only committing the latest tells it.
    this.startTelling(known ?? { id, address: '', priority: 0 }, this.members.currentIndex());
  }

  /**
   * Servers of the committed configuration, or of an uncommitted one after it, that the latest
   * configuration leaves out. (After a restart the commit index can lag far behind the log: an add
   * and a removal may both sit above it.)
   */
  private removedSinceCommitted(): RaftPeer[] {
    const current = this.members.current();
    return this.members.serversSinceCommitted().filter((p) => p.id !== this.id && !isMember(current, p.id));
  }

  /** A removed member is told, or will never hear: no more appends or heartbeats for it. */
  private stopTelling(id: string): void {
    if (this.departing.delete(id)) this.departuresChanged++;
    this.progress.delete(id);
  }

  private committedInCurrentTerm(): boolean {
    return this.log.term(this.log.committed) === this.term;
  }

  private maybeCommit(): void {
    const voters = this.members.current().voters;
    if (voters.length === 0) return;
    const quorumMatch = quorumValue(voters.map((p) => this.progress.get(p.id)?.match ?? 0), 0);
    // Raft §5.4.2: only entries of the current term are committed by counting replicas.
    if (quorumMatch > this.log.committed && (this.log.term(quorumMatch) === this.term || mutant('figure8-commit'))) {
      this.commitTo(quorumMatch);
    }
  }

  private commitTo(index: number): void {
    const wasCommittedInTerm = this.role === 'leader' && this.committedInCurrentTerm();
    if (!this.log.commitTo(index)) return;
    this.members.committedTo(index);
    if (this.role !== 'leader') {
      // The committed configuration decides too whether we may campaign: a member whose removal
      // just committed here stops (a non-voter from now on).
      this.updateRoleForMembership();
      return;
    }
    if (!wasCommittedInTerm && this.committedInCurrentTerm()) {
      const waiting = this.readsAwaitingCommit;
      this.readsAwaitingCommit = [];
      for (const id of waiting) this.registerRead(id);
    }
    if (!isVoter(this.members.committed().membership, this.id) && !isVoter(this.members.current(), this.id)) {
      // The configuration that removed us is committed: hand over to the most caught-up voter.
      let best: string | undefined;
      let bestMatch = -1;
      for (const p of this.members.current().voters) {
        const pr = this.progress.get(p.id);
        if (pr !== undefined && pr.match > bestMatch) {
          best = p.id;
          bestMatch = pr.match;
        }
      }
      if (best !== undefined && bestMatch === this.log.lastIndex()) this.sendTimeoutNow(best);
      this.becomeFollower(this.term, '');
      return;
    }
    this.maybeAutoPromote();
  }

  private maybeAutoPromote(): void {
    if (this.role !== 'leader' || this.autoPromote.size === 0 || this.members.hasUncommitted()) return;
    const gap = this.cfg.promotionCatchUpGap ?? DEFAULT_PROMOTION_CATCH_UP_GAP;
    for (const [id, mustHold] of this.autoPromote) {
      const pr = this.progress.get(id);
      if (pr === undefined || pr.match < mustHold) continue;
      // Holding everything committed; or streaming from our log (nothing it needs is purged), close
      // behind and moving: its answers must be arriving, or every commit would wait on it once it
      // votes (with one voter before it, the group would commit nothing at all).
      const caughtUp =
        pr.match >= this.log.committed ||
        (pr.state === 'replicate' && pr.match + 1 >= this.log.firstIndex() && this.madeProgressRecently(pr) && pr.match + gap >= this.log.committed);
      if (caughtUp) {
        this.promote(id);
        return;
      }
    }
  }

  private maybeFinishTransfer(from: string, pr: Progress): void {
    if (from === this.leadTransferee && pr.match === this.log.lastIndex()) this.sendTimeoutNow(from);
  }

  private sendTimeoutNow(to: string): void {
    this.send({ type: 'timeout-now', to, sentTick: this.tickCount });
    // Voters let a TimeoutNow bypass their lease until they acknowledge heartbeats sent an election
    // timeout after it: our own lease counts only such acknowledgements from now on.
    if (!mutant('lease-after-abandoned-transfer')) this.leaseFloorTick = Math.max(this.leaseFloorTick, this.tickCount + this.cfg.electionTicks);
  }

  /** Sends every follower what it is missing, as far as its inflight window allows (batched). */
  private flushAppends(): void {
    if (this.role !== 'leader') return;
    if (this.readBroadcastNeeded) {
      this.readBroadcastNeeded = false;
      this.broadcastHeartbeat(false);
    }
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      this.sendAppends(id, pr);
    }
    this.commitForwardDue = false;
  }

  private sendAppends(to: string, pr: Progress): void {
    const last = this.log.lastIndex();
    for (;;) {
      if (pr.isPaused()) return;
      const prevIndex = pr.next - 1;
      // After a restart that followed a purge the term just below our first entry is unknown. A
      // follower that told us it holds that point (as committed) can still take appends from there:
      // it accepts them on its commit index (prevTerm 0 says "unknown").
      const prevTerm = this.log.term(prevIndex) ?? (prevIndex === this.log.firstIndex() - 1 && pr.match >= prevIndex && prevIndex > 0 ? 0 : undefined);
      if (prevTerm === undefined || pr.next < this.log.firstIndex()) {
        if (this.departing.has(to)) {
          // Not worth a checkpoint: it would learn its removal only from one taken after it.
          this.stopTelling(to);
          return;
        }
        pr.becomeSnapshot(++this.lastNoticeId, this.log.firstIndex());
        this.sendSnapshotNotify(to, pr);
        return;
      }
      const hasEntries = pr.next <= last;
      // An empty append is still useful to probe, or to forward a commit index advance (when due:
      // otherwise the next append or heartbeat carries it).
      if (!hasEntries && pr.state === 'replicate' && (pr.sentCommit >= this.log.committed || !this.commitForwardDue) && !pr.resendWanted) return;
      const entries = hasEntries ? this.log.slice(pr.next, last + 1, this.cfg.maxBytesPerMsg) : [];
      this.send({ type: 'append', to, prevIndex, prevTerm, entries, commit: this.log.committed });
      pr.sentCommit = this.log.committed;
      pr.resendWanted = false;
      if (pr.state === 'probe') {
        pr.probeSent = true;
        return;
      }
      if (entries.length === 0) return;
      let bytes = 0;
      for (const e of entries) bytes += entrySize(e);
      const lastSent = (entries[entries.length - 1] as LogEntry).index;
      pr.inflights.add(lastSent, bytes);
      pr.next = lastSent + 1;
    }
  }

  private sendSnapshotNotify(to: string, pr: Progress): void {
    const first = this.log.firstIndex();
    this.send({ type: 'snapshot-notify', to, firstIndex: first, prevTerm: this.log.term(first - 1) ?? 0, noticeId: pr.noticeId });
  }

  private broadcastHeartbeat(renotifySnapshots: boolean): void {
    for (const [id, pr] of this.progress) {
      if (id === this.id) continue;
      if (renotifySnapshots && pr.state === 'snapshot') this.sendSnapshotNotify(id, pr);
      const commit = Math.min(pr.match, this.log.committed);
      if (commit > pr.sentCommit) pr.sentCommit = commit;
      const commitTerm = this.log.term(commit);
      // Only a commit index the follower can check tells it anything (it ignores one of unknown term).
      const departure = this.departing.get(id);
      if (departure !== undefined && departure.toldTick === undefined && commit >= departure.removedAt && commitTerm !== undefined) departure.toldTick = this.tickCount;
      this.send({
        type: 'heartbeat',
        to: id,
        commit,
        commitTerm: commitTerm ?? 0,
        readRound: this.readRound,
        sentTick: this.tickCount,
      });
    }
  }

  // ---------------------------------------------------------------- leader: reads

  private registerRead(requestId: string): void {
    const index = this.log.committed;
    if (this.cfg.leaseRead && this.leaseValid()) {
      this.confirmedReads.push({ requestId, index });
      return;
    }
    this.readRound++;
    this.pendingReads.push({ requestId, index, round: this.readRound });
    this.confirmReads();
    // One heartbeat round confirms every read registered before it: send it with the next Ready.
    if (this.pendingReads.length > 0) this.readBroadcastNeeded = true;
  }

  /** Releases reads whose heartbeat round a quorum of voters has acknowledged. */
  private confirmReads(): void {
    if (this.pendingReads.length === 0) return;
    const voters = this.members.current().voters;
    const confirmed = quorumValue(
      voters.map((p) => (p.id === this.id ? Number.MAX_SAFE_INTEGER : (this.progress.get(p.id)?.readRoundAcked ?? 0))),
      0,
    );
    while (this.pendingReads.length > 0 && (this.pendingReads[0] as PendingRead).round <= confirmed) {
      const r = this.pendingReads.shift() as PendingRead;
      this.confirmedReads.push({ requestId: r.requestId, index: r.index });
    }
  }

  /**
   * A lease holds while a quorum acknowledged heartbeats sent less than electionTicks-1 ticks ago:
   * those voters ignore candidates until electionTicks pass (check-quorum), so no other leader can
   * exist yet. One tick of margin absorbs tick skew. Never during a transfer (TimeoutNow bypasses it).
   */
  private leaseValid(): boolean {
    if (this.leadTransferee !== '') return false;
    const voters = this.members.current().voters;
    const quorumTick = quorumValue(
      voters.map((p) => (p.id === this.id ? this.tickCount : (this.progress.get(p.id)?.leaseTickAcked ?? Number.NEGATIVE_INFINITY))),
      Number.NEGATIVE_INFINITY,
    );
    return quorumTick >= this.leaseFloorTick && this.tickCount - quorumTick < this.cfg.electionTicks - 1;
  }

  // ---------------------------------------------------------------- helpers

  private updateRoleForMembership(): void {
    if (this.role === 'follower' || this.role === 'non-voter') {
      this.role = this.promotable() ? 'follower' : 'non-voter';
    }
  }

  /**
   * Queues an outgoing message stamped with our id and term (unless it names its own term, as a
   * granted pre-vote does). Leader traffic may leave before the local fsync; anything else
   * (votes, acknowledgements) only after the hard state and entries it vouches for are durable.
   */
  private send(m: DistributiveOmit<Message, 'from' | 'term'> & { term?: number }): void {
    const full = { ...m, from: this.id, term: m.term ?? this.term } as Message;
    const early =
      this.role === 'leader' &&
      (full.type === 'append' || full.type === 'heartbeat' || full.type === 'snapshot-notify' || full.type === 'timeout-now');
    if (early) this.msgs.push(full);
    else this.msgsAfterPersist.push(full);
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

function validateConfig(c: RaftConfig): void {
  if (typeof c.id !== 'string' || c.id.length === 0) throw new Error('raft config: id must be a non-empty string');
  const positive = (v: number, name: string): void => {
    if (!Number.isSafeInteger(v) || v <= 0) throw new Error(`raft config: ${name} must be a positive integer, got ${v}`);
  };
  positive(c.electionTicks, 'electionTicks');
  positive(c.heartbeatTicks, 'heartbeatTicks');
  if (c.electionJitterTicks !== undefined) positive(c.electionJitterTicks, 'electionJitterTicks');
  positive(c.maxInflightMsgs, 'maxInflightMsgs');
  positive(c.maxInflightBytes, 'maxInflightBytes');
  positive(c.maxBytesPerMsg, 'maxBytesPerMsg');
  if (c.maxCommittedBytesPerReady !== undefined) positive(c.maxCommittedBytesPerReady, 'maxCommittedBytesPerReady');
  if (c.promotionCatchUpGap !== undefined && !(Number.isSafeInteger(c.promotionCatchUpGap) && c.promotionCatchUpGap >= 0)) {
    throw new Error(`raft config: promotionCatchUpGap must be a whole number, got ${c.promotionCatchUpGap}`);
  }
  if (c.heartbeatTicks >= c.electionTicks) {
    throw new Error(`raft config: heartbeatTicks (${c.heartbeatTicks}) must be less than electionTicks (${c.electionTicks})`);
  }
  if (c.leaseRead && !c.checkQuorum) throw new Error('raft config: leaseRead requires checkQuorum');
  if (typeof c.random?.nextInt !== 'function') throw new Error('raft config: random must provide nextInt(bound)');
}

const MESSAGE_TYPES = new Set<string>([
  'append', 'append-response', 'heartbeat', 'heartbeat-response', 'vote', 'pre-vote', 'vote-response',
  'pre-vote-response', 'timeout-now', 'snapshot-notify', 'snapshot-status',
]);

function validateMessage(m: Message, self: string): void {
  if (!MESSAGE_TYPES.has(m.type)) throw new Error(`raft step: unknown message type ${JSON.stringify(m.type)}`);
  if (m.to !== self) throw new Error(`raft step: message addressed to ${JSON.stringify(m.to)} delivered to ${JSON.stringify(self)}`);
  if (typeof m.from !== 'string' || m.from.length === 0) throw new Error('raft step: message has no sender');
  if (m.from === self) throw new Error(`raft step: ${m.type} claims to come from this node (${JSON.stringify(self)})`);
  // Every number a message carries is a term, an index, a tick or a round: a non-negative safe integer.
  for (const [field, value] of Object.entries(m)) {
    if (typeof value === 'number') assertIndex(value, `${field} of ${m.type} from ${m.from}`);
  }
  switch (m.type) {
    case 'append':
      for (let k = 0; k < m.entries.length; k++) {
        const e = m.entries[k] as LogEntry;
        if (e.index !== m.prevIndex + 1 + k) throw new Error(`raft step: append from ${m.from} has non-contiguous entry ${e.index}`);
        if (e.term > m.term) throw new Error(`raft step: append from ${m.from} carries entry of future term ${e.term}`);
        const before = k === 0 ? m.prevTerm : (m.entries[k - 1] as LogEntry).term;
        if (e.term < before) throw new Error(`raft step: append from ${m.from} carries entry ${e.index} of term ${e.term} after one of term ${before}`);
        if (e.payload.kind === 'config') validateMembership(membershipFromPayload(e.payload), `configuration entry ${e.index} from ${m.from}`);
      }
      if (m.prevTerm > m.term) throw new Error(`raft step: append from ${m.from} has prevTerm ${m.prevTerm} above its term ${m.term}`);
      break;
    case 'snapshot-notify':
      if (m.firstIndex < 1) throw new Error(`raft step: snapshot notice from ${m.from} has firstIndex ${m.firstIndex}`);
      if (m.prevTerm > m.term) throw new Error(`raft step: snapshot notice from ${m.from} has prevTerm ${m.prevTerm} above its term ${m.term}`);
      break;
    case 'heartbeat':
      if (m.commitTerm > m.term) throw new Error(`raft step: heartbeat from ${m.from} has commitTerm ${m.commitTerm} above its term ${m.term}`);
      break;
    case 'snapshot-status':
      if (m.configIndex > m.index) throw new Error(`raft step: snapshot status from ${m.from} has configuration index ${m.configIndex} above its index ${m.index}`);
      break;
    default:
      break;
  }
}
