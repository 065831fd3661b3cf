// A segment as the log sees it (logical, updated synchronously by append/truncate/purge) and the
// file behind it (physical, changed only by the SegmentWriter, in order).

import type { FileHandle } from 'node:fs/promises';
import { FrameIndex } from './frame-index.js';
import { SEGMENT_HEADER_SIZE } from './segment-format.js';

/** The on-disk file of a segment. Its path changes when the writer renames it. */
export class SegmentFile {
  /** Write handle, opened by the writer; undefined while the file is not being written. */
  handle: FileHandle | undefined;
  /** Physical file length including preallocated zeros, as the writer last left it. */
  allocatedSize = 0;

  constructor(public path: string) {}
}

export class Segment {
  /** Offset and term of each entry's frame; its end is where the next frame goes. */
  readonly frames: FrameIndex;

  constructor(
    readonly startIndex: number,
    public closed: boolean,
    readonly file: SegmentFile,
    /** The index recovery built for this file (adopted as it is); a new segment starts empty. */
    frames?: FrameIndex,
  ) {
    this.frames = frames ?? new FrameIndex(SEGMENT_HEADER_SIZE);
    if (closed) this.frames.trim();
  }

  get count(): number {
    return this.frames.length;
  }

  /** Bytes of header plus frames: where the next frame goes. */
  get size(): number {
    return this.frames.end;
  }

  /** Last index held; startIndex - 1 when empty. */
  get endIndex(): number {
    return this.startIndex + this.frames.length - 1;
  }

  contains(index: number): boolean {
    return index >= this.startIndex && index <= this.endIndex;
  }

  add(offset: number, size: number, term: number, configuration: boolean): void {
    if (offset !== this.size) throw new Error(`segment ${this.startIndex}: frame at ${offset}, expected ${this.size}`);
    this.frames.push(size, term, configuration);
  }

  /** Indexes in [lo, hiExclusive) of the entries holding a configuration, ascending. */
  configurationIndexes(lo: number, hiExclusive: number): number[] {
    return this.frames.configurationsIn(lo - this.startIndex, hiExclusive - this.startIndex).map((i) => this.startIndex + i);
  }

  /** Marks the segment closed: it will not grow again, so its index gives back its spare room. */
  close(): void {
    this.closed = true;
    this.frames.trim();
  }

  termAt(index: number): number {
    return this.frames.termAt(index - this.startIndex);
  }

  /** [offset, size] of the frame holding `index`. */
  frameOf(index: number): [number, number] {
    const i = index - this.startIndex;
    return [this.frames.offsetAt(i), this.frames.sizeAt(i)];
  }

  /** Drops `index` and everything after it from this segment. */
  truncateFrom(index: number): void {
    const keep = index - this.startIndex;
    if (keep < 0 || keep > this.count) throw new RangeError(`segment ${this.startIndex}: cannot truncate from ${index}`);
    this.frames.truncate(keep);
  }
}
