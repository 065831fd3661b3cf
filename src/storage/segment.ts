// A segment as the log sees it (logical, updated synchronously by append/truncate/purge) and the
// file behind it (physical, changed only by the SegmentWriter, in order).

import type { FileHandle } from 'node:fs/promises';
import { GrowableFloat64Array } from './growable-array.js';
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
  /** Byte offset of each entry's frame within the file. */
  readonly offsets = new GrowableFloat64Array();
  /** Term of each entry. */
  readonly terms = new GrowableFloat64Array();
  /** Bytes of header plus frames: where the next frame goes. */
  size = SEGMENT_HEADER_SIZE;

  constructor(
    readonly startIndex: number,
    public closed: boolean,
    readonly file: SegmentFile,
  ) {}

  get count(): number {
    return this.offsets.length;
  }

  /** Last index held; startIndex - 1 when empty. */
  get endIndex(): number {
    return this.startIndex + this.offsets.length - 1;
  }

  contains(index: number): boolean {
    return index >= this.startIndex && index <= this.endIndex;
  }

  add(offset: number, size: number, term: number): void {
    if (offset !== this.size) throw new Error(`segment ${this.startIndex}: frame at ${offset}, expected ${this.size}`);
    this.offsets.push(offset);
    this.terms.push(term);
    this.size = offset + size;
  }

  termAt(index: number): number {
    return this.terms.at(index - this.startIndex);
  }

  /** [offset, size] of the frame holding `index`. */
  frameOf(index: number): [number, number] {
    const i = index - this.startIndex;
    const offset = this.offsets.at(i);
    const end = i + 1 < this.offsets.length ? this.offsets.at(i + 1) : this.size;
    return [offset, end - offset];
  }

  /** Drops `index` and everything after it from this segment. */
  truncateFrom(index: number): void {
    const keep = index - this.startIndex;
    if (keep < 0 || keep > this.count) throw new RangeError(`segment ${this.startIndex}: cannot truncate from ${index}`);
    this.size = keep === this.count ? this.size : this.offsets.at(keep);
    this.offsets.truncate(keep);
    this.terms.truncate(keep);
  }
}
