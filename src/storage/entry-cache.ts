// The recent tail of the log, kept in memory within a byte bound. It always covers
// [startIndex, lastIndex] contiguously; an entry is evicted only once it is durable on disk,
// so entries that are still queued for writing are always served from here.

import type { LogEntry } from '../log-entry.js';

export class EntryCache {
  private entries: (LogEntry | undefined)[] = [];
  private sizes: number[] = [];
  private head = 0;
  private bytes = 0;
  /** Index of entries[head]. */
  private start: number;

  constructor(
    private readonly maxBytes: number,
    startIndex: number,
  ) {
    this.start = startIndex;
  }

  get startIndex(): number {
    return this.start;
  }

  get byteSize(): number {
    return this.bytes;
  }

  get count(): number {
    return this.entries.length - this.head;
  }

  /** The next index the cache expects. */
  get nextIndex(): number {
    return this.start + this.count;
  }

  get(index: number): LogEntry | undefined {
    if (index < this.start || index >= this.nextIndex) return undefined;
    return this.entries[this.head + index - this.start];
  }

  add(entry: LogEntry, size: number): void {
    if (entry.index !== this.nextIndex) {
      throw new Error(`entry cache expects index ${this.nextIndex}, got ${entry.index}`);
    }
    this.entries.push(entry);
    this.sizes.push(size);
    this.bytes += size;
  }

  /** Evicts the oldest entries while over the bound, never past `durableIndex`. */
  evict(durableIndex: number): void {
    while (this.bytes > this.maxBytes && this.start <= durableIndex && this.count > 0) this.dropFirst();
    this.compact();
  }

  /** Removes `index` and everything after it; the cache then expects `index` next. */
  truncateFrom(index: number): void {
    if (index <= this.start) {
      this.clear(index);
      return;
    }
    while (this.nextIndex > index) {
      this.entries.pop();
      this.bytes -= this.sizes.pop()!;
    }
  }

  /** Removes entries below `index` (purged from the log). */
  dropBelow(index: number): void {
    if (index >= this.nextIndex) {
      this.clear(index);
      return;
    }
    while (this.start < index) this.dropFirst();
    this.compact();
  }

  clear(nextIndex: number): void {
    this.entries = [];
    this.sizes = [];
    this.head = 0;
    this.bytes = 0;
    this.start = nextIndex;
  }

  private dropFirst(): void {
    this.entries[this.head] = undefined;
    this.bytes -= this.sizes[this.head]!;
    this.head++;
    this.start++;
  }

  /** Reclaims the dropped prefix once it dominates, keeping eviction amortised O(1). */
  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.sizes = this.sizes.slice(this.head);
      this.head = 0;
    }
  }
}
