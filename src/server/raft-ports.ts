// The small interfaces the Raft driver runs on. The node passes the real ones (RaftStorage,
// ScmStateMachine, the gRPC peer transport, Node's timers); the simulator passes in-memory ones
// with seeded faults, and so runs the very driver the node runs (hashicorp/raft's approach:
// the driver only sees what it needs).
import type { LogEntry, LogReader, Message } from '../raft/index.js';
import type { AppliedConfiguration, ApplyOptions, ApplyResult, OnComputed, TermIndex } from '../statemachine/index.js';

/**
 * The durable Raft log, raft-meta and raft-meta.conf. Writes take effect in the in-memory view at
 * once and resolve, in order, once durable (fsynced).
 */
export interface RaftLogStore extends LogReader {
  append(entries: readonly LogEntry[]): Promise<void>;
  /** Deletes every entry at or above `index`. */
  truncateFrom(index: number): Promise<void>;
  /** Deletes whole stretches of entries below `index` (a purge may keep some of them). */
  purgeBelow(index: number): Promise<void>;
  /** Empties the log so that it starts at `nextIndex`, with term(nextIndex - 1) = prevTerm. */
  reset(nextIndex: number, prevTerm: number): Promise<void>;
  saveMeta(term: number, votedFor: string): Promise<void>;
  /** raft-meta.conf: the configuration entry last committed. */
  saveConf(entry: LogEntry): Promise<void>;
}

/** The replicated state machine as the driver uses it. */
export interface ReplicatedStateMachine {
  /**
   * One atomic batch; returns a result per applied data entry. May call `onComputed` with those
   * results earlier, once they are computed and visible but before the batch is written (the
   * entries are committed, so a crash only means applying them again, to the same results). A
   * promise `onComputed` returns holds the write back until it settles.
   */
  applyBatch(entries: readonly LogEntry[], onComputed?: OnComputed, options?: ApplyOptions): Promise<ApplyResult[]>;
  /** Writes what applies with `deferWrite` left unwritten, as one batch; resolves to whether there was any. */
  writeApplied(): Promise<boolean>;
  /** The last entry applied (in memory: what answers and reads see), written or not. */
  lastApplied(): TermIndex;
  snapshotPoint(): TermIndex;
  /** Records lastApplied as the snapshot point, durably (the log may be purged below it next). */
  recordSnapshotPoint(): Promise<TermIndex>;
  /** The configuration in force as of lastApplied, if any configuration entry was applied. */
  configuration(): AppliedConfiguration | undefined;
}

/** A timer the scheduler handed out, to cancel it. */
export interface TimerHandle {
  cancel(): void;
}

/** Time and deferral. The driver never touches Node's timers or clock directly. */
export interface Scheduler {
  now(): number;
  /** Runs `fn` once after `ms`. Real timers do not keep the process alive. */
  after(ms: number, fn: () => void): TimerHandle;
  /** Runs `fn` every `ms`. */
  every(ms: number, fn: () => void): TimerHandle;
  /** Runs `fn` soon, after the current event (a macrotask: I/O callbacks that are due run first). */
  soon(fn: () => void): void;
}

/** Node's timers and wall clock. */
export const realScheduler: Scheduler = {
  now: () => Date.now(),
  after(ms, fn) {
    const t = setTimeout(fn, ms);
    t.unref();
    return { cancel: () => clearTimeout(t) };
  },
  every(ms, fn) {
    const t = setInterval(fn, ms);
    t.unref();
    return { cancel: () => clearInterval(t) };
  },
  soon(fn) {
    setImmediate(fn);
  },
};

/** Where Raft messages go (the node encodes them for the peer transport). */
export interface RaftMessageSink {
  send(message: Message): void;
  /**
   * Writes what send() has queued now, for a transport that would otherwise write on a later turn.
   * The driver calls it once a Ready's messages are all queued: one batch per peer either way, but
   * the leader's appends leave before its own disk write starts, not after it (a follower's fsync
   * is on the path of every commit; the leader's runs beside it).
   */
  flush?(): void;
}
