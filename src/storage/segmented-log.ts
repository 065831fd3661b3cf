// The Raft log over segment files. Reads are synchronous (the Raft core is synchronous): recent
// entries come from a bounded in-memory cache, older ones from the segment at the offset kept in
// a per-entry index (frame-index.ts, about 4 bytes an entry). Writes update that in-memory view at
// once and are made durable by the SegmentWriter; each returned promise resolves once its change
// is fdatasync'ed.

import { closeSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { EntryCache } from './entry-cache.js';
import type { LogEntry } from '../log-entry.js';
import { assertIndexLike } from './assert-index.js';
import type { RecoveredSegment } from './log-recovery.js';
import { decodeFrame, encodeFrame, SEGMENT_HEADER_SIZE } from './segment-format.js';
import { closedSegmentName, openSegmentName } from './segment-names.js';
import { Segment, SegmentFile } from './segment.js';
import { SegmentWriter, type DiskTimings } from './segment-writer.js';

export interface SegmentedLogOptions {
  /** Roll to a new segment once the open one would exceed this many bytes (Ratis: 64 MiB). */
  readonly segmentSizeBytes: number;
  /** Zero bytes to preallocate ahead of the write position in the open segment; 0 = off. */
  readonly preallocateBytes: number;
  /** Upper bound on frame bytes of recent, durable entries kept in memory (entry-cache.ts). */
  readonly cacheBytes: number;
  /** Where an empty log starts: its first index and the term of the entry before it. */
  readonly emptyLogStart: { readonly firstIndex: number; readonly prevTerm: number | undefined };
  /** How many segment files may stay open for reading at once. */
  readonly maxOpenReadFiles: number;
  /** Per write batch: time spent writing, then syncing (for metrics). */
  readonly onDiskTimings?: (timings: DiskTimings) => void;
  /** Awaited before a segment file is created (raft-meta must exist before any segment does). */
  readonly beforeSegmentCreate?: () => Promise<void>;
}

/** A write whose completion advances durableIndex to `upTo` (lowered if the log is cut below it). */
interface PendingDurability {
  upTo: number;
}

export class SegmentedLog {
  private readonly segments: Segment[] = [];
  private first: number;
  private last: number;
  /** Term of the entry at first - 1, when known (after purge or reset, or a fresh log). */
  private prevTerm: number | undefined;
  private durable: number;
  private readonly cache: EntryCache;
  private readonly writer: SegmentWriter;
  private readonly pending = new Set<PendingDurability>();
  private readonly readFds = new Map<SegmentFile, number>();
  private closed = false;

  constructor(
    private readonly currentDir: string,
    recovered: readonly RecoveredSegment[],
    private readonly options: SegmentedLogOptions,
  ) {
    if (!Number.isSafeInteger(options.segmentSizeBytes) || options.segmentSizeBytes <= SEGMENT_HEADER_SIZE) {
      throw new RangeError(`segment size must be an integer above ${SEGMENT_HEADER_SIZE} bytes, got ${options.segmentSizeBytes}`);
    }
    if (!Number.isSafeInteger(options.preallocateBytes) || options.preallocateBytes < 0) {
      throw new RangeError(`preallocate bytes must be a non-negative integer, got ${options.preallocateBytes}`);
    }
    if (!Number.isSafeInteger(options.cacheBytes) || options.cacheBytes < 0) {
      throw new RangeError(`cache bytes must be a non-negative integer, got ${options.cacheBytes}`);
    }
    for (const r of recovered) {
      const seg = new Segment(r.startIndex, r.closed, new SegmentFile(join(currentDir, r.fileName)), r.frames);
      if (seg.size !== r.size) throw new Error(`recovered segment ${r.fileName}: size ${r.size} != frames end ${seg.size}`);
      this.segments.push(seg);
    }
    const firstSeg = this.segments[0];
    const lastSeg = this.segments[this.segments.length - 1];
    if (firstSeg && lastSeg) {
      this.first = firstSeg.startIndex;
      this.last = lastSeg.endIndex;
      this.prevTerm = undefined;
    } else {
      assertIndexLike(options.emptyLogStart.firstIndex, 'empty log first index');
      this.first = options.emptyLogStart.firstIndex;
      this.last = this.first - 1;
      this.prevTerm = options.emptyLogStart.prevTerm;
    }
    this.durable = this.last;
    this.cache = new EntryCache(options.cacheBytes, this.last + 1);
    this.writer = new SegmentWriter(currentDir, options.preallocateBytes, () => this.failPending(), options.onDiskTimings, options.beforeSegmentCreate);
  }

  firstIndex(): number {
    return this.first;
  }

  lastIndex(): number {
    return this.last;
  }

  durableIndex(): number {
    return this.durable;
  }

  /** Number of fdatasync calls made on segment files so far (group commit makes this small). */
  syncCount(): number {
    return this.writer.syncCount;
  }

  /** fdatasync on the event loop's thread (true) or on the thread pool (SegmentWriter.fsyncOnLoop). */
  setFsyncOnLoop(onLoop: boolean): void {
    this.writer.fsyncOnLoop = onLoop;
  }

  term(index: number): number | undefined {
    if (index === this.first - 1) return this.prevTerm;
    if (index < this.first || index > this.last) return undefined;
    return this.segmentOf(index).termAt(index);
  }

  entry(index: number): LogEntry {
    if (!Number.isSafeInteger(index) || index < this.first || index > this.last) {
      throw new RangeError(`log index ${index} is outside the log [${this.first}, ${this.last}]`);
    }
    return this.cache.get(index) ?? this.readFromDisk(index);
  }

  /** Entries [lo, hiExclusive), stopping once maxBytes is reached but always at least one. */
  entries(lo: number, hiExclusive: number, maxBytes: number): LogEntry[] {
    if (lo >= hiExclusive) return [];
    if (lo < this.first || hiExclusive - 1 > this.last) {
      throw new RangeError(`log range [${lo}, ${hiExclusive}) is outside the log [${this.first}, ${this.last}]`);
    }
    const out: LogEntry[] = [];
    let bytes = 0;
    for (let i = lo; i < hiExclusive; i++) {
      const size = this.segmentOf(i).frameOf(i)[1];
      if (out.length > 0 && bytes + size > maxBytes) break;
      out.push(this.entry(i));
      bytes += size;
    }
    return out;
  }

  /**
   * Indexes in [lo, hiExclusive) of the entries that hold a configuration, ascending, from the
   * frame index: nothing is read.
   */
  configurationIndexes(lo: number, hiExclusive: number): number[] {
    const from = Math.max(lo, this.first);
    const to = Math.min(hiExclusive, this.last + 1);
    const out: number[] = [];
    if (from >= to) return out;
    for (const seg of this.segments) {
      if (seg.endIndex < from || seg.startIndex >= to) continue;
      out.push(...seg.configurationIndexes(from, to));
    }
    return out;
  }

  append(entries: readonly LogEntry[]): Promise<void> {
    this.checkWritable();
    let expected = this.last + 1;
    let prevTerm = this.term(this.last);
    for (const e of entries) {
      if (e.index !== expected) throw new Error(`append: entry index ${e.index} does not continue the log (expected ${expected})`);
      assertIndexLike(e.term, `append: term of entry ${e.index}`);
      if (prevTerm !== undefined && e.term < prevTerm) {
        throw new Error(`append: entry ${e.index} has term ${e.term}, below the previous entry's term ${prevTerm}`);
      }
      prevTerm = e.term;
      expected++;
    }
    // Encode everything first so that a bad entry changes nothing.
    const frames = entries.map(encodeFrame);

    let batch: { segment: Segment; offset: number; parts: Buffer[] } | undefined;
    const flush = (): void => {
      if (batch && batch.parts.length > 0) {
        const bytes = batch.parts.length === 1 ? batch.parts[0]! : Buffer.concat(batch.parts);
        this.writer.enqueue({ kind: 'write', file: batch.segment.file, offset: batch.offset, bytes, entries: batch.parts.length });
      }
      batch = undefined;
    };
    entries.forEach((e, i) => {
      const frame = frames[i]!;
      let seg = this.openSegment();
      if (seg && seg.count > 0 && seg.size + frame.length > this.options.segmentSizeBytes) {
        flush();
        this.seal(seg);
        seg = undefined;
      }
      if (!seg) seg = this.createSegment(e.index);
      if (!batch || batch.segment !== seg) {
        flush();
        batch = { segment: seg, offset: seg.size, parts: [] };
      }
      seg.add(seg.size, frame.length, e.term, e.payload.kind === 'config');
      batch.parts.push(frame);
      this.cache.add(e.index, frame);
      this.last = e.index;
    });
    flush();
    return this.barrier(this.last);
  }

  /** Removes `index` and everything after it (a conflicting suffix). */
  truncateFrom(index: number): Promise<void> {
    this.checkWritable();
    assertIndexLike(index, 'truncateFrom index');
    if (index < this.first) {
      throw new RangeError(`truncateFrom(${index}): below the first index ${this.first}; entries before it are purged`);
    }
    if (index <= this.last) {
      this.cutFrom(index);
      this.last = index - 1;
    }
    return this.barrier(undefined);
  }

  /** Deletes whole closed segments whose last index is below `index`; the newest segment stays. */
  purgeBelow(index: number): Promise<void> {
    this.checkWritable();
    assertIndexLike(index, 'purgeBelow index');
    while (this.segments.length > 1) {
      const seg = this.segments[0]!;
      if (!seg.closed || seg.endIndex >= index) break;
      this.prevTerm = seg.termAt(seg.endIndex);
      this.segments.shift();
      this.dropSegmentFile(seg);
      this.first = seg.endIndex + 1;
    }
    this.cache.dropBelow(this.first);
    return this.barrier(undefined);
  }

  /** After a snapshot install: the log becomes empty, starting at nextIndex. */
  reset(nextIndex: number, prevTerm: number): Promise<void> {
    this.checkWritable();
    assertIndexLike(nextIndex, 'reset nextIndex');
    assertIndexLike(prevTerm, 'reset prevTerm');
    for (let i = this.segments.length - 1; i >= 0; i--) this.dropSegmentFile(this.segments[i]!);
    this.segments.length = 0;
    this.lowerPending(nextIndex - 1);
    this.durable = Math.min(this.durable, nextIndex - 1);
    this.cache.clear(nextIndex);
    this.first = nextIndex;
    this.last = nextIndex - 1;
    this.prevTerm = prevTerm;
    return this.barrier(nextIndex - 1);
  }

  /**
   * Closes the open segment (renamed to its closed name, its preallocated space cut), waits for
   * queued writes, then closes every file. The log cannot be used afterwards. After a clean close
   * every segment is closed; recovery relies on that to tell lost entries from padding.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const open = this.openSegment();
    if (open && !this.writer.failed) this.seal(open);
    await this.writer.idle();
    await this.writer.closeHandles(this.segments.map((s) => s.file));
    for (const fd of this.readFds.values()) closeSync(fd);
    this.readFds.clear();
  }

  /** The segment files as they are named now (for tests and tools). */
  segmentFiles(): string[] {
    return this.segments.map((s) => s.file.path);
  }

  private checkWritable(): void {
    if (this.closed) throw new Error(`log in ${this.currentDir} is closed`);
    const failure = this.writer.failed;
    if (failure) throw new Error(`log in ${this.currentDir} failed earlier and refuses writes: ${failure.message}`, { cause: failure });
  }

  private barrier(upTo: number | undefined): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const pending: PendingDurability | undefined = upTo === undefined ? undefined : { upTo };
      if (pending) this.pending.add(pending);
      this.writer.enqueue({
        kind: 'barrier',
        done: (error) => {
          if (pending) this.pending.delete(pending);
          if (error) {
            reject(error);
            return;
          }
          if (pending && pending.upTo > this.durable) this.durable = pending.upTo;
          this.cache.evict(this.durable);
          resolve();
        },
      });
    });
  }

  /** Writes still in flight will no longer make anything at or above `index + 1` durable. */
  private lowerPending(lastKept: number): void {
    for (const p of this.pending) if (p.upTo > lastKept) p.upTo = lastKept;
  }

  private failPending(): void {
    this.pending.clear();
  }

  private openSegment(): Segment | undefined {
    const seg = this.segments[this.segments.length - 1];
    return seg && !seg.closed ? seg : undefined;
  }

  private createSegment(startIndex: number): Segment {
    const seg = new Segment(startIndex, false, new SegmentFile(join(this.currentDir, openSegmentName(startIndex))));
    this.segments.push(seg);
    this.writer.enqueue({ kind: 'create', file: seg.file });
    return seg;
  }

  private seal(seg: Segment): void {
    seg.close();
    this.writer.enqueue({ kind: 'seal', file: seg.file, size: seg.size, newName: closedSegmentName(seg.startIndex, seg.endIndex) });
  }

  private cutFrom(index: number): void {
    this.lowerPending(index - 1);
    this.durable = Math.min(this.durable, index - 1);
    this.cache.truncateFrom(index);
    // Newest first, so that a crash part-way leaves a contiguous prefix.
    while (this.segments.length > 0) {
      const seg = this.segments[this.segments.length - 1]!;
      if (seg.startIndex < index) break;
      this.segments.pop();
      this.dropSegmentFile(seg);
    }
    const seg = this.segments[this.segments.length - 1];
    if (seg && seg.endIndex >= index) {
      seg.truncateFrom(index);
      const newName = seg.closed ? closedSegmentName(seg.startIndex, index - 1) : undefined;
      this.writer.enqueue({ kind: 'truncate', file: seg.file, size: seg.size, newName });
    }
  }

  private dropSegmentFile(seg: Segment): void {
    const fd = this.readFds.get(seg.file);
    if (fd !== undefined) {
      closeSync(fd);
      this.readFds.delete(seg.file);
    }
    this.writer.enqueue({ kind: 'delete', file: seg.file });
  }

  private segmentOf(index: number): Segment {
    const segs = this.segments;
    const lastSeg = segs[segs.length - 1];
    if (lastSeg && index >= lastSeg.startIndex) return lastSeg;
    let lo = 0;
    let hi = segs.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (segs[mid]!.startIndex <= index) lo = mid;
      else hi = mid - 1;
    }
    const seg = segs[lo];
    if (!seg || !seg.contains(index)) throw new Error(`log index ${index} is in no segment (log [${this.first}, ${this.last}])`);
    return seg;
  }

  private readFromDisk(index: number): LogEntry {
    const seg = this.segmentOf(index);
    const [offset, size] = seg.frameOf(index);
    const fd = this.readFdOf(seg.file);
    const buf = Buffer.allocUnsafe(size);
    let got = 0;
    while (got < size) {
      const n = readSync(fd, buf, got, size - got, offset + got);
      if (n === 0) throw new Error(`log segment ${seg.file.path}: end of file at byte ${offset + got} while reading entry ${index}`);
      got += n;
    }
    const where = `${seg.file.path} byte offset ${offset}`;
    const entry = decodeFrame(buf, where);
    if (entry.index !== index || entry.term !== seg.termAt(index)) {
      throw new Error(`corrupt log entry at ${where}: holds ${entry.term}/${entry.index}, index says ${seg.termAt(index)}/${index}`);
    }
    return entry;
  }

  private readFdOf(file: SegmentFile): number {
    let fd = this.readFds.get(file);
    if (fd !== undefined) {
      // Re-insert to keep the map in least-recently-used order.
      this.readFds.delete(file);
      this.readFds.set(file, fd);
      return fd;
    }
    fd = openSync(file.path, 'r');
    this.readFds.set(file, fd);
    if (this.readFds.size > this.options.maxOpenReadFiles) {
      const [oldFile, oldFd] = this.readFds.entries().next().value as [SegmentFile, number];
      closeSync(oldFd);
      this.readFds.delete(oldFile);
    }
    return fd;
  }
}
