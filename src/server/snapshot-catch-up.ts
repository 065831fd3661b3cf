// A follower's snapshot catch-up, in one place: the ordering rules of an install that keep it safe
// whatever crashes in between. The node runs it with the InterSCM download and the crash-safe
// scm.db installer; the simulator runs the same class with in-memory checkpoints.
//
// 1. fetch (the Raft loop keeps running meanwhile, so heartbeats are answered): download and verify
//    a checkpoint at or above the leader's first available index. Nothing live is touched.
// 2. between Readies, with nothing else touching the log or scm.db:
//    a. refuse a checkpoint that is not ahead of what is applied: an install never moves the state
//       machine backwards;
//    b. swap the checkpoint in as scm.db (the state machine reloads from it);
//    c. persist the checkpoint's configuration as raft-meta.conf, before the log can lose the
//       entries that held the older ones;
//    d. keep the log if it holds the checkpoint's own entry (the entries after it may be
//       acknowledged already), otherwise reset it to start right after the checkpoint;
//    e. tell the core: it adopts exactly the checkpoint's configuration and reports to the leader.
// A crash after (b) is repaired at start-up (raft-boot.ts): the log is kept or reset by the same
// rule as (d), and the configuration is taken from scm.db when raft-meta.conf is older.
import type { IndexedMembership, LogEntry, RaftNode, SnapshotNotice } from '../raft/index.js';
import type { AppliedConfiguration, TermIndex } from '../statemachine/index.js';
import type { RaftLogStore, ReplicatedStateMachine } from './raft-ports.js';

/** A downloaded, verified checkpoint, ready to be swapped in. */
export interface FetchedCheckpoint {
  /** Its own #TRANSACTIONINFO. */
  readonly termIndex: TermIndex;
  /** The configuration it holds (in force at its index). */
  readonly configuration: AppliedConfiguration;
  readonly bytes: number;
  /** Replaces scm.db with the checkpoint, crash-safely; the state machine is reloaded from it. */
  swap(): Promise<void>;
  /** Removes the checkpoint's files when it is not installed. */
  discard(): Promise<void>;
}

/** Where checkpoints come from (the leader's InterSCM service, or the simulator's nodes). */
export interface CheckpointSource {
  /** Downloads and verifies a checkpoint at or above `notice.firstIndex`. */
  fetch(notice: SnapshotNotice, signal: AbortSignal): Promise<FetchedCheckpoint>;
}

/** Nothing was changed: the install can be asked for again. */
export class InstallRefusedError extends Error {
  override readonly name = 'InstallRefusedError';
}

/**
 * The node must stop: scm.db could not be written before the swap (as after any failed scm.db
 * write), or it was replaced but the Raft log could not be brought in line (start-up repairs it).
 */
export class FatalInstallError extends Error {
  override readonly name = 'FatalInstallError';
}

/** Points where tests and the simulator may crash an install (between the steps above). */
export type CatchUpFailpoint = 'after-swap' | 'after-conf' | 'after-log';

export interface SnapshotCatchUpParts {
  readonly core: RaftNode;
  readonly log: RaftLogStore;
  readonly sm: ReplicatedStateMachine;
  readonly source: CheckpointSource;
  /** Test and simulator hook, called between the steps of an install; production passes none. */
  readonly failpoint?: (name: CatchUpFailpoint) => void;
}

export function membershipOf(c: AppliedConfiguration): IndexedMembership {
  return { index: c.index, membership: { voters: c.voters, nonVoters: c.nonVoters } };
}

/** raft-meta.conf holds a configuration as its log entry. */
export function confEntryOf(c: AppliedConfiguration): LogEntry {
  return { term: c.term, index: c.index, payload: { kind: 'config', peers: c.voters, listeners: c.nonVoters } };
}

export class SnapshotCatchUp {
  constructor(private readonly parts: SnapshotCatchUpParts) {}

  /** Step 1: download and verify (runs while the Raft loop goes on). */
  fetch(notice: SnapshotNotice, signal: AbortSignal): Promise<FetchedCheckpoint> {
    return this.parts.source.fetch(notice, signal);
  }

  /** Step 2: run between Readies. Returns the installed point. */
  async install(checkpoint: FetchedCheckpoint, notice: SnapshotNotice): Promise<TermIndex> {
    const { core, log, sm } = this.parts;
    const point = checkpoint.termIndex;
    const applied = sm.lastApplied();
    if (point.index <= applied.index) {
      await checkpoint.discard();
      throw new InstallRefusedError(`checkpoint at ${point.term}#${point.index} is not ahead of what is applied (${applied.term}#${applied.index}); not installed`);
    }
    if (point.index < notice.firstIndex) {
      await checkpoint.discard();
      throw new InstallRefusedError(`checkpoint at ${point.term}#${point.index} is below the leader's first index ${notice.firstIndex}; not installed`);
    }
    const config = checkpoint.configuration;
    if (config.index > point.index) {
      await checkpoint.discard();
      throw new InstallRefusedError(`checkpoint at ${point.index} holds a configuration from index ${config.index}, after it; not installed`);
    }
    // The swap closes scm.db, and closing writes what applies left unwritten; a failure there
    // would leave scm.db closed under a running node. Written here instead, a failure is what a
    // failed apply is: the node stops, scm.db and the log as they were.
    try {
      await sm.writeApplied();
    } catch (err) {
      await checkpoint.discard();
      throw new FatalInstallError(`scm.db could not be written before installing the checkpoint at ${point.term}#${point.index}: ${(err as Error).message}`, { cause: err });
    }
    await checkpoint.swap();
    this.parts.failpoint?.('after-swap');
    try {
      const now = sm.lastApplied();
      if (now.index !== point.index || now.term !== point.term) {
        throw new Error(`after the swap scm.db is at ${now.term}#${now.index}, not the checkpoint's ${point.term}#${point.index}`);
      }
      await log.saveConf(confEntryOf(config));
      this.parts.failpoint?.('after-conf');
      if (!core.keepsLogOnInstall(point.term, point.index)) await log.reset(point.index + 1, point.term);
      this.parts.failpoint?.('after-log');
    } catch (err) {
      throw new FatalInstallError(`scm.db now holds ${point.term}#${point.index} but the Raft log could not follow: ${(err as Error).message}`, { cause: err });
    }
    core.snapshotInstalled(point.term, point.index, membershipOf(config));
    return point;
  }
}
