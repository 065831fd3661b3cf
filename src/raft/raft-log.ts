// The core's view of the log: the caller's durable log (read through LogReader) plus the entries
// appended here that the caller has not yet acknowledged as durable ("unstable", as in etcd).
// Indices below `unstableOffset` are read from the caller; the rest from the unstable buffer.
import type { LogEntry, LogReader } from './types.js';
import { assertIndex, invariant } from './assert.js';
import type { TermIndex } from '../log-entry.js';
export type { TermIndex } from '../log-entry.js';

export class RaftLog {
  private unstable: LogEntry[] = [];
  /** Index of unstable[0]; meaningful only while unstable is non-empty. */
  private unstableOffset: number;
  /** Highest unstable index already handed to the caller in a Ready. */
  private handedUpTo: number;
  /** Lowest index the caller must truncate from, since the last Ready (conflict resolution). */
  private truncatedFrom: number | undefined;
  /** The compaction/snapshot point, so its term is known even if the reader has forgotten it. */
  private snapshotPoint: { readonly index: number; readonly term: number | undefined };
  committed: number;
  applied: number;

  constructor(
    private readonly reader: LogReader,
    applied: number,
    committed: number,
    snapshotPoint: { readonly index: number; readonly term: number | undefined },
  ) {
    assertIndex(applied, 'applied index');
    assertIndex(committed, 'commit index');
    const last = reader.lastIndex();
    invariant(applied <= committed, `applied index ${applied} is above the commit index ${committed}`);
    invariant(committed <= Math.max(last, snapshotPoint.index), `commit index ${committed} is beyond the last log index ${last}`);
    this.applied = applied;
    this.committed = committed;
    this.unstableOffset = last + 1;
    this.handedUpTo = last;
    this.snapshotPoint = snapshotPoint;
  }

  firstIndex(): number {
    return Math.max(this.reader.firstIndex(), this.snapshotPoint.index + 1);
  }

  lastIndex(): number {
    if (this.unstable.length > 0) return this.unstableOffset + this.unstable.length - 1;
    return Math.max(this.reader.lastIndex(), this.snapshotPoint.index);
  }

  /** The last index the caller has made durable. */
  stableLastIndex(): number {
    if (this.unstable.length > 0) return this.unstableOffset - 1;
    return this.lastIndex();
  }

  lastTerm(): number {
    return this.term(this.lastIndex()) ?? 0;
  }

  term(index: number): number | undefined {
    if (index === 0) return 0;
    if (this.unstable.length > 0 && index >= this.unstableOffset) {
      return this.unstable[index - this.unstableOffset]?.term;
    }
    if (index === this.snapshotPoint.index && this.snapshotPoint.term !== undefined) return this.snapshotPoint.term;
    if (index > this.lastIndex() || index < this.snapshotPoint.index) return undefined;
    return this.reader.term(index);
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /** Raft §5.4.1: is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    const ourTerm = this.lastTerm();
    return lastTerm > ourTerm || (lastTerm === ourTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The configuration entries in [lo, hi), in index order. The durable part comes from the
   * reader's configurationIndexes when it has one (each entry named is read and must hold a
   * configuration), else from reading every entry; the unstable part is in memory.
   */
  configurationEntries(lo: number, hi: number): LogEntry[] {
    const from = Math.max(lo, this.firstIndex());
    const to = Math.min(hi, this.lastIndex() + 1);
    const out: LogEntry[] = [];
    if (from >= to) return out;
    const stableEnd = this.unstable.length > 0 ? Math.min(to, this.unstableOffset) : to;
    if (from < stableEnd) {
      if (this.reader.configurationIndexes !== undefined) {
        for (const index of this.reader.configurationIndexes(from, stableEnd)) {
          const e = this.reader.entries(index, index + 1, 0)[0];
          invariant(e !== undefined && e.index === index && e.payload.kind === 'config', `log reader named entry ${index} as a configuration, but it is not one`);
          out.push(e);
        }
      } else {
        for (let i = from; i < stableEnd; ) {
          const batch = this.slice(i, stableEnd, 4 * 1024 * 1024);
          for (const e of batch) if (e.payload.kind === 'config') out.push(e);
          i += batch.length;
        }
      }
    }
    for (let i = Math.max(from, this.unstableOffset); i < to && this.unstable.length > 0; i++) {
      const e = this.unstable[i - this.unstableOffset] as LogEntry;
      if (e.payload.kind === 'config') out.push(e);
    }
    return out;
  }

  /** Entries in [lo, hi) up to maxBytes (at least one). Throws if some are no longer available. */
  slice(lo: number, hi: number, maxBytes: number): LogEntry[] {
    if (lo >= hi) return [];
    invariant(lo >= this.firstIndex(), `entries from ${lo} requested but the log starts at ${this.firstIndex()}`);
    invariant(hi <= this.lastIndex() + 1, `entries up to ${hi - 1} requested but the log ends at ${this.lastIndex()}`);
    const out: LogEntry[] = [];
    let bytes = 0;
    const stableEnd = this.unstable.length > 0 ? Math.min(hi, this.unstableOffset) : hi;
    if (lo < stableEnd) {
      const fromReader = this.reader.entries(lo, stableEnd, maxBytes);
      invariant(fromReader.length > 0, `log reader returned no entries for [${lo}, ${stableEnd})`);
      for (const e of fromReader) {
        out.push(e);
        bytes += entrySize(e);
      }
      if (out.length < stableEnd - lo) return out; // the reader stopped at maxBytes
    }
    for (let i = Math.max(lo, this.unstableOffset); i < hi && this.unstable.length > 0; i++) {
      const e = this.unstable[i - this.unstableOffset] as LogEntry;
      const size = entrySize(e);
      if (out.length > 0 && bytes + size > maxBytes) break;
      out.push(e);
      bytes += size;
    }
    return out;
  }

  /**
   * Appends entries (contiguous, starting at or below lastIndex + 1), replacing any conflicting
   * suffix. Entries at or below the commit index are never replaced.
   */
  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as LogEntry).index;
    const last = this.lastIndex();
    invariant(first <= last + 1, `append at ${first} leaves a gap after the last index ${last}`);
    invariant(first > this.committed, `append at ${first} would overwrite committed entries (commit ${this.committed})`);
    for (let k = 1; k < entries.length; k++) {
      invariant((entries[k] as LogEntry).index === first + k, 'appended entries are not contiguous');
    }
    if (first <= last) this.truncatedFrom = Math.min(this.truncatedFrom ?? first, first);
    if (this.unstable.length === 0 || first < this.unstableOffset) {
      // The new entries replace everything from `first`, which may reach into the durable log.
      this.unstable = entries.slice();
      this.unstableOffset = first;
      this.handedUpTo = Math.min(this.handedUpTo, first - 1);
      return;
    }
    if (first <= last) {
      this.unstable.length = first - this.unstableOffset;
      this.handedUpTo = Math.min(this.handedUpTo, first - 1);
    }
    for (const e of entries) this.unstable.push(e);
  }

  /** Index of the first entry that is not already in our log with the same term (0 if none). */
  findConflict(entries: readonly LogEntry[]): number {
    for (const e of entries) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0;
  }

  /**
   * The largest index ≤ `index` whose term is ≤ `term`, with that term; used to skip whole terms
   * when a follower's log diverges. Stops (term 0) where our log no longer knows terms.
   */
  findConflictByTerm(index: number, term: number): TermIndex {
    let i = index;
    for (;;) {
      const t = this.term(i);
      if (t === undefined) return { index: i, term: 0 };
      if (t <= term) return { index: i, term: t };
      i--;
    }
  }

  commitTo(index: number): boolean {
    if (index <= this.committed) return false;
    invariant(index <= this.lastIndex(), `commit index ${index} is beyond the last log index ${this.lastIndex()}`);
    this.committed = index;
    return true;
  }

  appliedTo(index: number): void {
    invariant(index >= this.applied, `applied index goes backwards from ${this.applied} to ${index}`);
    invariant(index <= this.committed, `applied index ${index} is above the commit index ${this.committed}`);
    this.applied = index;
  }

  /** Unstable entries not yet handed to the caller, and the truncation point they imply. */
  takeUnhanded(): { entries: LogEntry[]; truncateFrom: number | undefined } {
    const start = this.handedUpTo + 1;
    const entries = this.unstable.length > 0 && start >= this.unstableOffset
      ? this.unstable.slice(start - this.unstableOffset)
      : [];
    const truncateFrom = this.truncatedFrom;
    this.truncatedFrom = undefined;
    if (entries.length > 0) this.handedUpTo = (entries[entries.length - 1] as LogEntry).index;
    return { entries, truncateFrom };
  }

  hasUnhanded(): boolean {
    return this.unstable.length > 0 && this.handedUpTo < this.lastIndex();
  }

  /** The caller made entries up to (index, term) durable: they are read through the reader from now on. */
  stableTo(index: number, term: number): void {
    if (this.unstable.length === 0 || index < this.unstableOffset || index > this.handedUpTo) return;
    // A conflicting append may have replaced the entries since they were handed out.
    if (this.term(index) !== term) return;
    this.unstable = this.unstable.slice(index - this.unstableOffset + 1);
    this.unstableOffset = index + 1;
  }

  /** Committed, durable entries not yet applied, up to maxBytes (at least one). */
  committedToApply(maxBytes: number): LogEntry[] {
    const hi = Math.min(this.committed, this.stableLastIndex());
    if (hi <= this.applied) return [];
    return this.slice(this.applied + 1, hi + 1, maxBytes);
  }

  hasCommittedToApply(): boolean {
    return Math.min(this.committed, this.stableLastIndex()) > this.applied;
  }

  /** The caller compacted its log below `index`; remember the compaction point. */
  compacted(index: number, term: number): void {
    invariant(index <= this.applied, `cannot compact to ${index}: only ${this.applied} is applied`);
    if (index > this.snapshotPoint.index) this.snapshotPoint = { index, term };
  }

  /**
   * The caller replaced its state with a snapshot at (index, term). With `keepSuffix` the log holds
   * that very entry, so the entries after it are kept (they may be acknowledged already); without,
   * the caller's log was reset to start right after the snapshot.
   */
  restoreSnapshot(index: number, term: number, keepSuffix: boolean): void {
    invariant(index >= this.committed, `snapshot ${index} is below the commit index ${this.committed}`);
    if (keepSuffix) {
      invariant(this.term(index) === term, `snapshot ${term}#${index} does not match the log kept after it (term ${this.term(index)})`);
      if (this.unstable.length > 0 && index >= this.unstableOffset) {
        this.unstable = this.unstable.slice(index - this.unstableOffset + 1);
        this.unstableOffset = index + 1;
      }
      // Nothing at or below the snapshot is ever handed out again (the caller may have reset its
      // log to start right after it, which also "keeps" an empty suffix).
      this.handedUpTo = Math.max(this.handedUpTo, index);
    } else {
      invariant(this.reader.lastIndex() <= index, `snapshot at ${index} installed without resetting the log, which ends at ${this.reader.lastIndex()}`);
      this.unstable = [];
      this.unstableOffset = index + 1;
      this.handedUpTo = index;
      this.truncatedFrom = undefined;
    }
    this.snapshotPoint = { index, term };
    this.committed = index;
    this.applied = index;
  }
}

/** Approximate encoded size of an entry, used for message and apply batching limits. */
export function entrySize(e: LogEntry): number {
  const p = e.payload;
  switch (p.kind) {
    case 'data':
      return 24 + p.data.byteLength;
    case 'config':
      return 24 + 48 * (p.peers.length + p.listeners.length);
    case 'metadata':
      return 32;
  }
}
