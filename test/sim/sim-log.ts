// The simulator's storage log: a MemoryLog plus a cumulative hash per index, so Log Matching can be
// checked in O(1) per entry (equal index and term ⇒ equal hash ⇒ identical prefixes).
import { MemoryLog, type LogEntry, type LogReader } from '../../src/raft/index.js';

export class SimLog implements LogReader {
  private readonly mem: MemoryLog;
  /** hashes[i]: hash of the whole log prefix up to index i (known from the snapshot point on). */
  private hashes: number[];

  constructor(mem = new MemoryLog(), hashes: number[] = [0]) {
    this.mem = mem;
    this.hashes = hashes;
  }

  firstIndex(): number {
    return this.mem.firstIndex();
  }
  lastIndex(): number {
    return this.mem.lastIndex();
  }
  term(index: number): number | undefined {
    return this.mem.term(index);
  }
  entries(lo: number, hi: number, maxBytes: number): LogEntry[] {
    return this.mem.entries(lo, hi, maxBytes);
  }
  entry(index: number): LogEntry | undefined {
    return this.mem.entry(index);
  }

  hash(index: number): number | undefined {
    // Hashes of compacted entries stay valid (they describe a prefix that was never rewritten).
    if (index > this.mem.lastIndex()) return undefined;
    return this.hashes[index];
  }

  append(entries: readonly LogEntry[]): void {
    if (entries.length === 0) return;
    this.mem.append(entries);
    const first = (entries[0] as LogEntry).index;
    this.hashes.length = first;
    let h = this.hashes[first - 1];
    if (h === undefined) throw new Error(`sim log: no prefix hash at ${first - 1}`);
    for (const e of entries) {
      h = chainHash(h, e);
      this.hashes[e.index] = h;
    }
  }

  truncateAfter(lastIndex: number): void {
    this.mem.truncateAfter(lastIndex);
    if (this.hashes.length > lastIndex + 1) this.hashes.length = lastIndex + 1;
  }

  compact(index: number): void {
    this.mem.compact(index);
  }

  resetToSnapshot(index: number, term: number, hash: number): void {
    this.mem.resetToSnapshot(index, term);
    this.hashes = [];
    this.hashes[index] = hash;
  }

  clone(): SimLog {
    return new SimLog(this.mem.clone(), this.hashes.slice());
  }
}

export function chainHash(prev: number, e: LogEntry): number {
  let h = Math.imul(prev ^ 0x9e3779b9, 0x85ebca6b) >>> 0;
  h = Math.imul(h ^ e.term, 0xc2b2ae35) >>> 0;
  h = Math.imul(h ^ e.index, 0x27d4eb2f) >>> 0;
  const p = e.payload;
  if (p.kind === 'data') {
    for (let i = 0; i < p.data.length; i++) h = Math.imul(h ^ (p.data[i] as number), 0x01000193) >>> 0;
  } else if (p.kind === 'config') {
    const text = `${p.peers.map((x) => x.id).join(',')}/${p.listeners.map((x) => x.id).join(',')}`;
    for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  } else {
    h = Math.imul(h ^ p.commitIndex, 0x01000193) >>> 0;
  }
  return (h ^ (h >>> 15)) >>> 0;
}
