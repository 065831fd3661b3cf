// Plain data shapes shared by the Raft core and its callers. Everything here is structural data
// (no classes, no functions) so the server can encode it to protobuf and the simulator can pass it
// between in-process nodes unchanged.

import type { LogEntry, RaftPeer } from '../log-entry.js';

// The log entry is defined once, in src/log-entry.ts, for every folder.
export type { EntryPayload, LogEntry, RaftPeer } from '../log-entry.js';

/** The durable part of the node's state besides the log (Ratis' raft-meta: term and votedFor). */
export interface HardState {
  readonly term: number;
  /** Empty string when the node has not voted in `term`. */
  readonly votedFor: string;
}

/** A group configuration: voters take part in elections and quorums, non-voters only replicate. */
export interface Membership {
  readonly voters: readonly RaftPeer[];
  readonly nonVoters: readonly RaftPeer[];
}

/**
 * Synchronous read access to the caller's durable log. `term(firstIndex() - 1)` may return the term
 * of the snapshot/compaction point or undefined. An empty log has lastIndex() === firstIndex() - 1.
 */
export interface LogReader {
  firstIndex(): number;
  lastIndex(): number;
  term(index: number): number | undefined;
  /** Entries in [lo, hi), at least one (if lo < hi) even when it alone exceeds maxBytes. */
  entries(lo: number, hi: number, maxBytes: number): LogEntry[];
  /**
   * Optional: the indexes in [lo, hi) of the entries that hold a configuration, ascending, known
   * without reading the others. Without it, finding the configurations in the log at start-up (and
   * after an install that keeps the log) reads every entry of the range.
   */
  configurationIndexes?(lo: number, hi: number): number[];
}

/** A source of randomness: returns an integer uniformly in [0, bound). */
export interface RandomSource {
  nextInt(bound: number): number;
}

export type Role = 'leader' | 'follower' | 'candidate' | 'pre-candidate' | 'non-voter';

export type SnapshotStatusKind = 'in-progress' | 'installed' | 'already-installed' | 'unavailable';

/** A configuration together with the index of the log entry that holds it (0: the bootstrap one). */
export interface IndexedMembership {
  readonly index: number;
  readonly membership: Membership;
}

interface MessageBase {
  readonly from: string;
  readonly to: string;
  readonly term: number;
}

/** Leader → follower: entries after (prevIndex, prevTerm), and the leader's commit index. */
export interface AppendMessage extends MessageBase {
  readonly type: 'append';
  readonly prevIndex: number;
  readonly prevTerm: number;
  readonly entries: readonly LogEntry[];
  readonly commit: number;
}

/**
 * Follower → leader. On success `index` is the last index now known to match the leader. On reject
 * `index` echoes the rejected prevIndex and (hintIndex, hintTerm) let the leader skip whole terms.
 */
export interface AppendResponseMessage extends MessageBase {
  readonly type: 'append-response';
  readonly reject: boolean;
  readonly index: number;
  readonly hintIndex: number;
  readonly hintTerm: number;
}

/** Leader → follower liveness and ReadIndex confirmation round. */
export interface HeartbeatMessage extends MessageBase {
  readonly type: 'heartbeat';
  /** min(the follower's match, the leader's commit index). */
  readonly commit: number;
  /**
   * The leader's term of the entry at `commit` (0 when it no longer knows it). The follower commits
   * `commit` only if its own entry there has this term: the leader's match can be stale (a follower
   * restored from an older copy of its disk), and then the follower's entry there may be another.
   */
  readonly commitTerm: number;
  /** ReadIndex round the leader wants confirmed (0 when none). */
  readonly readRound: number;
  /** The leader's tick counter when sent; echoed back for lease reads. */
  readonly sentTick: number;
}

export interface HeartbeatResponseMessage extends MessageBase {
  readonly type: 'heartbeat-response';
  readonly readRound: number;
  readonly sentTick: number;
}

/** (Pre-)vote request. For pre-vote, `term` is the term the candidate would campaign in. */
export interface VoteMessage extends MessageBase {
  readonly type: 'vote' | 'pre-vote';
  readonly lastIndex: number;
  readonly lastTerm: number;
  /** Set when campaigning because of a leadership transfer: may bypass the leader-lease check. */
  readonly transfer: boolean;
  /** With `transfer`: the leader's tick when it sent the TimeoutNow (its sentTick). */
  readonly transferTick: number;
}

export interface VoteResponseMessage extends MessageBase {
  readonly type: 'vote-response' | 'pre-vote-response';
  readonly reject: boolean;
}

/**
 * Leader → transfer target: start an election now. `sentTick` is the leader's tick counter when it
 * sent it; voters compare it with the heartbeats they acknowledged, so a TimeoutNow that arrives
 * after the leader gave the transfer up (and may hold a lease again) cannot bypass that lease.
 */
export interface TimeoutNowMessage extends MessageBase {
  readonly type: 'timeout-now';
  readonly sentTick: number;
}

/**
 * Leader → follower: the entries you need are purged; install a snapshot from me. Carries the
 * leader's first available index and the term of the entry just below it (the leader's compaction
 * point), so a follower whose log already holds that point keeps its log instead of installing.
 * It carries no configuration: a follower adopts one only from its log or from the checkpoint it
 * installs. `noticeId` names this round of notices; the follower's statuses echo it.
 */
export interface SnapshotNotifyMessage extends MessageBase {
  readonly type: 'snapshot-notify';
  readonly firstIndex: number;
  readonly prevTerm: number;
  readonly noticeId: number;
}

/**
 * Follower → leader: progress of a snapshot installation, answering the notice `noticeId`. For
 * `installed` and `already-installed`, (snapshotTerm, index) is the point the follower now holds
 * (everything at or below it matches the leader's log) and `configIndex` the index of the
 * configuration it adopted with it.
 */
export interface SnapshotStatusMessage extends MessageBase {
  readonly type: 'snapshot-status';
  readonly status: SnapshotStatusKind;
  readonly noticeId: number;
  readonly index: number;
  readonly snapshotTerm: number;
  readonly configIndex: number;
}

export type Message =
  | AppendMessage
  | AppendResponseMessage
  | HeartbeatMessage
  | HeartbeatResponseMessage
  | VoteMessage
  | VoteResponseMessage
  | TimeoutNowMessage
  | SnapshotNotifyMessage
  | SnapshotStatusMessage;

export type MessageType = Message['type'];
