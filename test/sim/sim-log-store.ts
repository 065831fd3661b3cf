// The simulator's Raft storage: the production driver's RaftLogStore (plus what start-up reads),
// in memory. Every write takes effect in the in-memory view at once and becomes durable only when
// the simulated fsync completes; a crash keeps what was durable, plus possibly a torn prefix of
// the writes in flight (as a real crash at the fsync point may).
import { entrySize, type HardState, type LogEntry } from '../../src/raft/index.js';
import type { DurableRaftState } from '../../src/server/raft-boot.js';

/** The part of the storage that survives a crash. */
export interface DiskImage {
  /** entries[k] has index first + k. */
  entries: LogEntry[];
  first: number;
  /** term(first - 1), when known. */
  prevTerm: number | undefined;
  meta: HardState;
  conf: LogEntry | undefined;
}

type Write =
  | { readonly kind: 'append'; readonly entries: readonly LogEntry[] }
  | { readonly kind: 'truncate'; readonly from: number }
  | { readonly kind: 'purge'; readonly below: number }
  | { readonly kind: 'reset'; readonly next: number; readonly prevTerm: number }
  | { readonly kind: 'meta'; readonly meta: HardState }
  | { readonly kind: 'conf'; readonly entry: LogEntry };

interface PendingWrite {
  readonly write: Write;
  readonly resolve: () => void;
}

export function emptyDisk(conf?: LogEntry): DiskImage {
  return { entries: [], first: 1, prevTerm: 0, meta: { term: 0, votedFor: '' }, conf };
}

export function cloneDisk(d: DiskImage): DiskImage {
  return { entries: d.entries.slice(), first: d.first, prevTerm: d.prevTerm, meta: d.meta, conf: d.conf };
}

function applyWrite(d: DiskImage, w: Write): void {
  switch (w.kind) {
    case 'append': {
      if (w.entries.length === 0) return;
      const start = (w.entries[0] as LogEntry).index;
      if (start < d.first || start > d.first + d.entries.length) throw new Error(`sim store: append at ${start} outside ${d.first}..${d.first + d.entries.length}`);
      d.entries.length = start - d.first;
      for (const e of w.entries) d.entries.push(e);
      return;
    }
    case 'truncate':
      if (w.from < d.first + d.entries.length) d.entries.length = Math.max(0, w.from - d.first);
      return;
    case 'purge': {
      // As the segmented log: whole stretches below `below` go, never the last entry.
      const upTo = Math.min(w.below - 1, d.first + d.entries.length - 2);
      if (upTo < d.first) return;
      d.prevTerm = (d.entries[upTo - d.first] as LogEntry).term;
      d.entries = d.entries.slice(upTo - d.first + 1);
      d.first = upTo + 1;
      return;
    }
    case 'reset':
      d.entries = [];
      d.first = w.next;
      d.prevTerm = w.prevTerm;
      return;
    case 'meta':
      d.meta = w.meta;
      return;
    case 'conf':
      d.conf = w.entry;
      return;
  }
}

export interface SimLogStoreHooks {
  /** A write is waiting for its fsync: schedule the flush (after the disk latency). */
  readonly onWritePending: () => void;
}

export class SimLogStore implements DurableRaftState {
  /** What the running process sees. */
  private readonly view: DiskImage;
  private pending: PendingWrite[] = [];

  constructor(
    /** What survives a crash; shared with the simulator, which owns the node's disk. */
    readonly disk: DiskImage,
    private readonly hooks: SimLogStoreHooks,
  ) {
    // As RaftStorage reopening its segments: the term before the first segment is not recorded
    // anywhere, so after a purge it is unknown; a log without segments starts at index 1 (start-up
    // then restarts it after what scm.db has applied).
    this.view = cloneDisk(disk);
    if (disk.entries.length > 0) this.view.prevTerm = disk.first === 1 ? 0 : undefined;
    else {
      this.view.first = 1;
      this.view.prevTerm = 0;
    }
  }

  get pendingWrites(): number {
    return this.pending.length;
  }

  /** The simulated fsync completes: every write issued so far is durable. */
  flush(): void {
    const done = this.pending;
    this.pending = [];
    for (const p of done) applyWrite(this.disk, p.write);
    for (const p of done) p.resolve();
  }

  /**
   * The process dies with writes in flight: `keep` of them (in order) reached the disk, the last of
   * those possibly only in part (a torn append keeps a prefix of its entries).
   */
  crash(keep: number, tornEntries: number | undefined): void {
    const done = this.pending.slice(0, keep);
    this.pending = [];
    done.forEach((p, k) => {
      const w = p.write;
      if (k === done.length - 1 && w.kind === 'append' && tornEntries !== undefined) {
        applyWrite(this.disk, { kind: 'append', entries: w.entries.slice(0, tornEntries) });
      } else {
        applyWrite(this.disk, w);
      }
    });
  }

  private write(w: Write): Promise<void> {
    applyWrite(this.view, w);
    return new Promise((resolve) => {
      this.pending.push({ write: w, resolve });
      if (this.pending.length === 1) this.hooks.onWritePending();
    });
  }

  // ---- LogReader
  firstIndex(): number {
    return this.view.first;
  }
  lastIndex(): number {
    return this.view.first + this.view.entries.length - 1;
  }
  term(index: number): number | undefined {
    if (index === this.view.first - 1) return this.view.prevTerm;
    return this.view.entries[index - this.view.first]?.term;
  }
  entries(lo: number, hi: number, maxBytes: number): LogEntry[] {
    if (lo < this.view.first || hi > this.lastIndex() + 1) throw new Error(`sim store: entries [${lo}, ${hi}) outside ${this.view.first}..${this.lastIndex()}`);
    const out: LogEntry[] = [];
    let bytes = 0;
    for (let i = lo; i < hi; i++) {
      const e = this.view.entries[i - this.view.first] as LogEntry;
      if (out.length > 0 && bytes + entrySize(e) > maxBytes) break;
      out.push(e);
      bytes += entrySize(e);
    }
    return out;
  }

  // ---- writes
  append(entries: readonly LogEntry[]): Promise<void> {
    return this.write({ kind: 'append', entries: entries.slice() });
  }
  truncateFrom(index: number): Promise<void> {
    return this.write({ kind: 'truncate', from: index });
  }
  purgeBelow(index: number): Promise<void> {
    return this.write({ kind: 'purge', below: index });
  }
  reset(nextIndex: number, prevTerm: number): Promise<void> {
    return this.write({ kind: 'reset', next: nextIndex, prevTerm });
  }
  saveMeta(term: number, votedFor: string): Promise<void> {
    return this.write({ kind: 'meta', meta: { term, votedFor } });
  }
  saveConf(entry: LogEntry): Promise<void> {
    return this.write({ kind: 'conf', entry });
  }

  // ---- start-up reads
  readMeta(): HardState {
    return this.view.meta;
  }
  readConf(): LogEntry | undefined {
    return this.view.conf;
  }
}
