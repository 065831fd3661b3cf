// One place where the node reports the Raft events operators care about, so each lands both in
// the metrics and in the structured log with the same fields: elections, role and leader changes,
// membership changes and snapshot transfers (start, progress, done or failed, with bytes and rate).
// Every line carries `event` so log queries do not depend on message wording.
//
// Like NodeMetrics, nothing here throws at run time: a call that makes no sense (a transfer
// reported done twice, a byte total going backwards) is logged as a warning and ignored.
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { NodeMetrics, RaftRole, SnapshotFailureReason } from './node-metrics.js';

export type SnapshotTransferKind = 'download' | 'install' | 'serve';

export interface SnapshotTransferContext {
  /** The other end: the leader for a download, the follower for a serve; omitted for install. */
  readonly peer?: string;
  readonly term: number;
  readonly index: number;
}

export interface RaftEventsOptions {
  /** Progress is logged each time the transfer crosses another multiple of this many bytes. */
  readonly progressEveryBytes?: number;
  /** Milliseconds clock for durations and rates; tests inject one. */
  readonly now?: () => number;
}

const DEFAULT_PROGRESS_EVERY_BYTES = 16 * 1024 * 1024;

export class RaftEvents {
  private readonly progressEveryBytes: number;
  private readonly now: () => number;
  /** The last leader this node knew, kept through terms without one. */
  private lastKnownLeader: string | null = null;

  constructor(
    private readonly metrics: NodeMetrics,
    private readonly log: Logger,
    options: RaftEventsOptions = {},
  ) {
    this.progressEveryBytes = options.progressEveryBytes ?? DEFAULT_PROGRESS_EVERY_BYTES;
    if (!Number.isSafeInteger(this.progressEveryBytes) || this.progressEveryBytes <= 0) {
      throw new Error(`progressEveryBytes must be a positive integer, got ${String(options.progressEveryBytes)}`);
    }
    this.now = options.now ?? (() => performance.now());
  }

  electionStarted(term: number): void {
    this.metrics.electionStarted();
    this.metrics.setTerm(term);
    this.metrics.setRole('candidate');
    this.log.info({ event: 'election_started', term }, `starting election for term ${term}`);
  }

  roleChanged(role: RaftRole, term: number): void {
    this.metrics.setRole(role);
    this.metrics.setTerm(term);
    if (role !== 'leader') this.metrics.clearFollowerLag();
    // Whom this node hears from depends on its role; the next gauge refresh reports the new set.
    this.metrics.clearPeerLastContact();
    this.log.info({ event: 'role_changed', role, term }, `became ${role} in term ${term}`);
  }

  /**
   * Reports what the node now knows about the leader. `scm_raft_has_leader` follows `leaderId`;
   * `scm_raft_leader_changes_total` counts only a leader other than the last one this node knew: as
   * in etcd, a term without a leader is no change of its own, so a transfer from scm1 to scm2
   * through one counts once; unlike etcd, losing the leader and finding the same one again counts
   * nothing. The first leader a node sees after starting counts. Every call with a change is logged.
   */
  leaderChanged(change: { term: number; leaderId: string | null; previousLeaderId: string | null }): void {
    this.metrics.setHasLeader(change.leaderId !== null);
    if (change.leaderId === change.previousLeaderId) return;
    if (change.leaderId !== null && change.leaderId !== this.lastKnownLeader) {
      this.metrics.leaderChanged();
      this.lastKnownLeader = change.leaderId;
    }
    this.log.info(
      { event: 'leader_changed', term: change.term, leaderId: change.leaderId, previousLeaderId: change.previousLeaderId },
      change.leaderId === null ? `leader ${String(change.previousLeaderId)} lost in term ${change.term}` : `leader is ${change.leaderId} in term ${change.term}`,
    );
  }

  /**
   * A configuration was committed. `voters` and `nonVoters` are the whole new configuration (this
   * node included when it is a member); a non-voter that became a voter is reported as promoted,
   * the reverse as demoted, so a promotion no longer reads `added:[] removed:[]`.
   */
  membershipChanged(change: {
    index: number;
    voters: readonly string[];
    nonVoters: readonly string[];
    previousVoters: readonly string[];
    previousNonVoters: readonly string[];
  }): void {
    const members = [...change.voters, ...change.nonVoters];
    const previous = [...change.previousVoters, ...change.previousNonVoters];
    const added = members.filter((m) => !previous.includes(m));
    const removed = previous.filter((m) => !members.includes(m));
    const promoted = change.voters.filter((m) => change.previousNonVoters.includes(m));
    const demoted = change.nonVoters.filter((m) => change.previousVoters.includes(m));
    this.metrics.setKnownPeers(members.filter((m) => m !== this.metrics.nodeId));
    const what = [
      added.length > 0 ? `added ${added.join(', ')}` : '',
      removed.length > 0 ? `removed ${removed.join(', ')}` : '',
      promoted.length > 0 ? `promoted ${promoted.join(', ')} to voter` : '',
      demoted.length > 0 ? `demoted ${demoted.join(', ')}` : '',
    ].filter((w) => w !== '');
    this.log.info(
      { event: 'membership_changed', index: change.index, voters: change.voters, nonVoters: change.nonVoters, added, removed, promoted, demoted },
      `configuration at index ${change.index}: voters [${change.voters.join(', ')}]${change.nonVoters.length > 0 ? `, non-voters [${change.nonVoters.join(', ')}]` : ''}${what.length > 0 ? ` (${what.join('; ')})` : ''}`,
    );
  }

  /** A peer this node should hear from (its leader, or a leader's follower) went quiet, or came back. */
  peerContact(change: { peer: string; reachable: boolean; silentSeconds: number }): void {
    if (change.reachable) {
      this.log.info({ event: 'peer_reachable', peer: change.peer }, `peer ${change.peer} is reachable again`);
    } else {
      this.log.warn(
        { event: 'peer_unreachable', peer: change.peer, silentSeconds: change.silentSeconds },
        `peer ${change.peer} unreachable: nothing heard from it for ${change.silentSeconds.toFixed(1)} s (longer than an election timeout)`,
      );
    }
  }

  /** The leader hears from fewer voters than a majority (or again from enough). */
  quorumContact(change: { hasQuorum: boolean; heard: readonly string[]; voters: readonly string[] }): void {
    if (change.hasQuorum) {
      this.log.info({ event: 'quorum_regained', heard: change.heard, voters: change.voters }, `hearing from a majority of voters again (${change.heard.join(', ')})`);
    } else {
      this.log.warn(
        { event: 'no_quorum', heard: change.heard, voters: change.voters },
        `no quorum: hearing from only ${change.heard.length} of ${change.voters.length} voters (${change.heard.join(', ') || 'none'}) within an election timeout`,
      );
    }
  }

  snapshotNotification(direction: 'sent' | 'received', context: SnapshotTransferContext): void {
    this.metrics.snapshotNotification(direction);
    this.log.info(
      { event: 'snapshot_notification', direction, ...context },
      `install-snapshot notification ${direction} (${direction === 'sent' ? 'to' : 'from'} ${context.peer ?? '?'}, first available ${context.term}#${context.index})`,
    );
  }

  /** Starts timing a transfer and logs its start; report bytes as they move, then done or failed. */
  snapshotTransfer(kind: SnapshotTransferKind, context: SnapshotTransferContext): SnapshotTransfer {
    return new SnapshotTransfer(kind, context, this.metrics, this.log, this.now, this.progressEveryBytes);
  }
}

export class SnapshotTransfer {
  private readonly started: number;
  private bytes = 0;
  private nextProgressAt: number;
  private finished = false;

  constructor(
    readonly kind: SnapshotTransferKind,
    private readonly context: SnapshotTransferContext,
    private readonly metrics: NodeMetrics,
    private readonly log: Logger,
    private readonly now: () => number,
    private readonly progressEveryBytes: number,
  ) {
    this.started = now();
    this.nextProgressAt = progressEveryBytes;
    this.log.info({ event: `snapshot_${kind}_started`, ...context }, `snapshot ${kind} started`);
  }

  /** Reports the total bytes moved so far (monotonic). */
  progress(totalBytes: number): void {
    if (!this.acceptTotal('progress', totalBytes)) return;
    this.bytes = totalBytes;
    if (totalBytes >= this.nextProgressAt) {
      this.nextProgressAt = (Math.floor(totalBytes / this.progressEveryBytes) + 1) * this.progressEveryBytes;
      this.log.info({ event: `snapshot_${this.kind}_progress`, ...this.context, ...this.rate() }, `snapshot ${this.kind} progress`);
    }
  }

  /** `detail` adds fields to the done line (a download says where it resumed from). */
  done(totalBytes: number = this.bytes, detail: Readonly<Record<string, number | string>> = {}): void {
    if (!this.acceptTotal('done', totalBytes)) return;
    this.bytes = totalBytes;
    this.finished = true;
    const rate = this.rate();
    if (this.kind === 'download') this.metrics.downloadCompleted({ bytes: rate.bytes, seconds: rate.seconds });
    else if (this.kind === 'install') this.metrics.installCompleted({ bytes: rate.bytes, seconds: rate.seconds });
    else this.metrics.checkpointServed(rate.bytes);
    this.log.info({ event: `snapshot_${this.kind}_done`, ...this.context, ...rate, ...detail }, `snapshot ${this.kind} done`);
  }

  failed(reason: SnapshotFailureReason, error: unknown): void {
    if (!this.acceptCall('failed')) return;
    this.finished = true;
    if (this.kind === 'download') this.metrics.downloadFailed(reason);
    else if (this.kind === 'install') this.metrics.installFailed(reason);
    this.log.warn(
      { event: `snapshot_${this.kind}_failed`, ...this.context, ...this.rate(), reason, err: error },
      `snapshot ${this.kind} failed: ${reason}`,
    );
  }

  /** False (with a warning) once the transfer has finished. */
  private acceptCall(call: string): boolean {
    if (!this.finished) return true;
    this.log.warn({ event: 'metrics_warning', kind: this.kind, call }, `snapshot ${this.kind} already finished: ${call} ignored`);
    return false;
  }

  /** False (with a warning) for a byte total that is not an integer at or above the last one. */
  private acceptTotal(call: string, totalBytes: number): boolean {
    if (!this.acceptCall(call)) return false;
    if (Number.isSafeInteger(totalBytes) && totalBytes >= this.bytes) return true;
    this.log.warn(
      { event: 'metrics_warning', kind: this.kind, call, totalBytes, previousBytes: this.bytes },
      `snapshot ${this.kind} ${call}: byte total ${String(totalBytes)} is not an integer at or above ${this.bytes}; ignored`,
    );
    return false;
  }

  private rate(): { bytes: number; seconds: number; bytesPerSecond: number } {
    const seconds = Math.max(0, (this.now() - this.started) / 1000);
    return { bytes: this.bytes, seconds, bytesPerSecond: seconds > 0 ? Math.round(this.bytes / seconds) : 0 };
  }
}
