// Where each entry's frame sits in a segment file, and its term: the log's per-entry index, kept
// for every entry of every segment for as long as the node runs (a read of an entry not in the
// entry cache seeks to its offset; term() answers from it). At a million entries it was two
// Float64Arrays that grew by doubling, 16 to 24 MiB; here it is about 4 bytes an entry:
// - offsets in a Uint32Array (a segment rolls at ozone.scm.ha.ratis.segment.size, so offsets stay
//   far below 4 GiB; one that does not fit switches the array to Float64, which holds every safe
//   integer exactly);
// - terms as runs (position where a run starts, its term): a term changes once per election, so a
//   segment holds a handful of runs however many entries it has;
// - trim() drops the doubling slack once a segment is closed and will not grow again;
// - which frames hold a configuration entry, as a list of positions: there is one per membership
//   change, and knowing them lets the Raft core find the configurations in the log at start-up
//   without reading and decoding every entry (a million reads, and their garbage, at 1 M entries).
// Recovery fills one of these per segment while it scans, and the log adopts it as it is: no
// object per frame (a million of them took ~60 MiB of V8 heap at start-up).

const MAX_UINT32 = 0xffffffff;

export class FrameIndex {
  private offsets: Uint32Array | Float64Array;
  private count = 0;
  /** Position of the first frame of each term run, ascending; runTerms[k] is that run's term. */
  private runStarts: number[] = [];
  private runTerms: number[] = [];
  /** Positions of the frames holding a configuration entry, ascending. */
  private configurations: number[] = [];
  /** Byte offset just past the last frame (where the first frame goes while there is none). */
  private endOffset: number;

  constructor(start: number, initialCapacity = 64) {
    this.endOffset = start;
    this.offsets = new Uint32Array(Math.max(1, initialCapacity));
  }

  get length(): number {
    return this.count;
  }

  /** Byte offset just past the last frame. */
  get end(): number {
    return this.endOffset;
  }

  /** Adds the frame that starts at `end` and is `size` bytes long; `configuration`: it holds a configuration entry. */
  push(size: number, term: number, configuration = false): void {
    const offset = this.endOffset;
    if (offset > MAX_UINT32 && this.offsets instanceof Uint32Array) this.offsets = Float64Array.from(this.offsets);
    if (this.count === this.offsets.length) this.resize(this.offsets.length * 2);
    this.offsets[this.count] = offset;
    if (this.runTerms.length === 0 || this.runTerms[this.runTerms.length - 1] !== term) {
      this.runStarts.push(this.count);
      this.runTerms.push(term);
    }
    if (configuration) this.configurations.push(this.count);
    this.count++;
    this.endOffset = offset + size;
  }

  offsetAt(i: number): number {
    this.check(i);
    return this.offsets[i]!;
  }

  /** Bytes of frame i: up to the next frame, or to the end for the last. */
  sizeAt(i: number): number {
    this.check(i);
    return (i + 1 < this.count ? this.offsets[i + 1]! : this.endOffset) - this.offsets[i]!;
  }

  termAt(i: number): number {
    this.check(i);
    const starts = this.runStarts;
    let hi = starts.length - 1;
    // Nearly every lookup is in the last run (the current term).
    if (starts[hi]! <= i) return this.runTerms[hi]!;
    let lo = 0;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if (starts[mid]! <= i) lo = mid;
      else hi = mid - 1;
    }
    return this.runTerms[lo]!;
  }

  /** Positions in [from, to) of the frames that hold a configuration entry, ascending. */
  configurationsIn(from: number, to: number): number[] {
    return this.configurations.filter((i) => i >= from && i < to);
  }

  /** Keeps the first `length` frames; the end moves to where frame `length` started. */
  truncate(length: number): void {
    if (!Number.isSafeInteger(length) || length < 0 || length > this.count) throw new RangeError(`cannot truncate ${this.count} frames to ${length}`);
    if (length === this.count) return;
    this.endOffset = this.offsets[length]!;
    this.count = length;
    while (this.runStarts.length > 0 && this.runStarts[this.runStarts.length - 1]! >= length) {
      this.runStarts.pop();
      this.runTerms.pop();
    }
    while (this.configurations.length > 0 && this.configurations[this.configurations.length - 1]! >= length) this.configurations.pop();
  }

  /** Gives back the room beyond the frames held (for a segment that no longer grows). */
  trim(): void {
    if (this.offsets.length > Math.max(1, this.count)) this.resize(Math.max(1, this.count));
  }

  /** Bytes held by the offsets (the term runs are a few numbers), for memory accounting. */
  get byteCapacity(): number {
    return this.offsets.byteLength;
  }

  private resize(capacity: number): void {
    const bigger = this.offsets instanceof Uint32Array ? new Uint32Array(capacity) : new Float64Array(capacity);
    bigger.set(this.offsets.subarray(0, this.count));
    this.offsets = bigger;
  }

  private check(i: number): void {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) throw new RangeError(`frame ${i} outside [0, ${this.count})`);
  }
}
