// The recent tail of the log, kept in memory within a byte bound. It always covers
// [startIndex, lastIndex] contiguously; an entry is evicted only once it is durable on disk,
// so entries that are still queued for writing are always served from here.
//
// Memory: the cache keeps each entry as the frame append already encoded for the segment file,
// packed one after another in one buffer, and decodes an entry when it is read (a read hands out a
// fresh entry whose data is its own copy, as a read from disk does). So the bound is what the cache
// holds, give or take the buffer's spare room. Holding the LogEntry objects instead cost 3.7 times
// the frame bytes on a follower (the entry, its payload and a Uint8Array with its own backing
// store) and 7.7 times on the leader (the proposal's data pinned a larger buffer); a cache full of
// them was 120 to 250 MiB where the bound said 32.

import type { LogEntry } from '../log-entry.js';
import { decodeLogEntry } from './log-entry-codec.js';
import { ProtoReader } from './protobuf-wire.js';

const MIN_ARENA_BYTES = 4_096;
/** The offsets array drops its dead head once it is this long and half of it. */
const COMPACT_AFTER = 1_024;
const CRC_SIZE = 4;

export class EntryCache {
  /** Frames of entries [start, nextIndex), from arenaStart to arenaEnd. */
  private arena: Buffer = Buffer.alloc(0);
  private arenaStart = 0;
  private arenaEnd = 0;
  /** Where each entry's frame starts in the arena; positions before `head` are gone. */
  private offsets: number[] = [];
  private head = 0;
  /** Index of offsets[head]. */
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

  /** Frame bytes held (what the bound applies to). */
  get byteSize(): number {
    return this.arenaEnd - this.arenaStart;
  }

  /** Bytes of the buffer the frames are packed in, spare room included. */
  get byteCapacity(): number {
    return this.arena.length;
  }

  get count(): number {
    return this.offsets.length - this.head;
  }

  /** The next index the cache expects. */
  get nextIndex(): number {
    return this.start + this.count;
  }

  get(index: number): LogEntry | undefined {
    if (index < this.start || index >= this.nextIndex) return undefined;
    const k = this.head + index - this.start;
    const from = this.offsets[k]!;
    const to = k + 1 < this.offsets.length ? this.offsets[k + 1]! : this.arenaEnd;
    // The frame's length prefix, then the LogEntryProto, then its CRC (checked when it was
    // encoded from the entry; these bytes never left memory).
    const r = new ProtoReader(this.arena, from, to, 'cached log entry');
    const length = r.varint();
    if (r.pos + length + CRC_SIZE !== to) throw new Error(`entry cache: frame of entry ${index} is ${to - from} bytes, its length prefix says ${length}`);
    return decodeLogEntry(this.arena, r.pos, r.pos + length);
  }

  /** Adds the next entry as its encoded frame (copied in; the caller may reuse the bytes). */
  add(index: number, frame: Uint8Array): void {
    if (index !== this.nextIndex) {
      throw new Error(`entry cache expects index ${this.nextIndex}, got ${index}`);
    }
    this.reserve(frame.length);
    this.arena.set(frame, this.arenaEnd);
    this.offsets.push(this.arenaEnd);
    this.arenaEnd += frame.length;
  }

  /** Evicts the oldest entries while over the bound, never past `durableIndex`. */
  evict(durableIndex: number): void {
    while (this.byteSize > this.maxBytes && this.start <= durableIndex && this.count > 0) this.dropFirst();
    this.compact();
  }

  /** Removes `index` and everything after it; the cache then expects `index` next. */
  truncateFrom(index: number): void {
    if (index <= this.start) {
      this.clear(index);
      return;
    }
    if (index >= this.nextIndex) return;
    const k = this.head + index - this.start;
    this.arenaEnd = this.offsets[k]!;
    this.offsets.length = k;
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
    this.arena = Buffer.alloc(0);
    this.arenaStart = this.arenaEnd = 0;
    this.offsets = [];
    this.head = 0;
    this.start = nextIndex;
  }

  private dropFirst(): void {
    this.head++;
    this.start++;
    this.arenaStart = this.head < this.offsets.length ? this.offsets[this.head]! : this.arenaEnd;
    if (this.count === 0) {
      this.arenaStart = this.arenaEnd = 0;
      this.offsets = [];
      this.head = 0;
      // An empty cache under a bound of 0 (every read from disk) holds no buffer either.
      if (this.maxBytes === 0) this.arena = Buffer.alloc(0);
    }
  }

  /** Reclaims the dropped prefix of the offsets once it dominates, keeping eviction amortised O(1). */
  private compact(): void {
    if (this.head > COMPACT_AFTER && this.head * 2 > this.offsets.length) {
      this.offsets = this.offsets.slice(this.head);
      this.head = 0;
    }
  }

  /**
   * Room for `n` more bytes at the arena's end: the live frames move to the front, into a new
   * buffer when they would fill more than 2/3 of this one or less than 1/3 (so the buffer
   * follows the bound down as well as up).
   */
  private reserve(n: number): void {
    if (this.arenaEnd + n <= this.arena.length) return;
    const live = this.arenaEnd - this.arenaStart;
    const need = live + n;
    const fits = need * 3 <= this.arena.length * 2 && need * 3 >= this.arena.length;
    const target = fits ? this.arena : Buffer.allocUnsafe(Math.max(MIN_ARENA_BYTES, Math.ceil(need * 1.5)));
    this.arena.copy(target, 0, this.arenaStart, this.arenaEnd);
    this.arena = target;
    const shift = this.arenaStart;
    for (let k = this.head; k < this.offsets.length; k++) this.offsets[k] = this.offsets[k]! - shift;
    this.arenaStart = 0;
    this.arenaEnd = live;
  }
}
