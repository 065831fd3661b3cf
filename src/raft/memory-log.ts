// An in-memory LogReader with the append/truncate/compact operations a Ready asks for. Used by the
// simulator, the benchmark and unit tests; no I/O, so it lives beside the core.
import type { LogEntry, LogReader } from './types.js';
import { entrySize } from './raft-log.js';

export class MemoryLog implements LogReader {
  /** entries[k] has index snapshotIndex + 1 + k. */
  private entriesArr: LogEntry[] = [];
  private snapshotIndex = 0;
  private snapshotTerm = 0;

  firstIndex(): number {
    return this.snapshotIndex + 1;
  }

  lastIndex(): number {
    return this.snapshotIndex + this.entriesArr.length;
  }

  term(index: number): number | undefined {
    if (index === this.snapshotIndex) return this.snapshotTerm;
    return this.entriesArr[index - this.snapshotIndex - 1]?.term;
  }

  entry(index: number): LogEntry | undefined {
    if (index <= this.snapshotIndex) return undefined;
    return this.entriesArr[index - this.snapshotIndex - 1];
  }

  entries(lo: number, hi: number, maxBytes: number): LogEntry[] {
    if (lo <= this.snapshotIndex) throw new Error(`entry ${lo} is compacted (log starts at ${this.firstIndex()})`);
    if (hi > this.lastIndex() + 1) throw new Error(`entry ${hi - 1} is beyond the last index ${this.lastIndex()}`);
    const out: LogEntry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.entriesArr[i - this.snapshotIndex - 1] as LogEntry;
      const size = entrySize(e);
      if (out.length > 0 && bytes + size > maxBytes) break;
      out.push(e);
      bytes += size;
    }
    return out;
  }

  /** Deletes entries at or above the first new one and appends (what a Ready's entries mean). */
  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    const first = (entries[0] as LogEntry).index;
    if (first <= this.snapshotIndex) throw new Error(`cannot append at ${first}: log is compacted up to ${this.snapshotIndex}`);
    if (first > this.lastIndex() + 1) throw new Error(`append at ${first} leaves a gap after ${this.lastIndex()}`);
    this.entriesArr.length = first - this.snapshotIndex - 1;
    for (const e of entries) this.entriesArr.push(e);
  }

  /** Drops every entry up to and including `index`, remembering its term. */
  compact(index: number): void {
    if (index <= this.snapshotIndex) return;
    if (index > this.lastIndex()) throw new Error(`cannot compact to ${index}: log ends at ${this.lastIndex()}`);
    const term = this.term(index) as number;
    this.entriesArr = this.entriesArr.slice(index - this.snapshotIndex);
    this.snapshotIndex = index;
    this.snapshotTerm = term;
  }

  /** Replaces the whole log with a snapshot point. */
  resetToSnapshot(index: number, term: number): void {
    this.entriesArr = [];
    this.snapshotIndex = index;
    this.snapshotTerm = term;
  }

  /** Truncates to `lastIndex` (used by the simulator to model losing unflushed writes). */
  truncateAfter(lastIndex: number): void {
    if (lastIndex < this.lastIndex()) this.entriesArr.length = Math.max(0, lastIndex - this.snapshotIndex);
  }

  clone(): MemoryLog {
    const c = new MemoryLog();
    c.entriesArr = this.entriesArr.slice();
    c.snapshotIndex = this.snapshotIndex;
    c.snapshotTerm = this.snapshotTerm;
    return c;
  }
}
