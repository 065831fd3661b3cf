// A Float64Array that grows by doubling: the per-entry index (offsets, terms) without one JS
// object per entry. Float64 holds every safe integer exactly.

export class GrowableFloat64Array {
  private data: Float64Array;
  private count = 0;

  constructor(initialCapacity = 64) {
    this.data = new Float64Array(Math.max(1, initialCapacity));
  }

  get length(): number {
    return this.count;
  }

  push(value: number): void {
    if (this.count === this.data.length) {
      const bigger = new Float64Array(this.data.length * 2);
      bigger.set(this.data);
      this.data = bigger;
    }
    this.data[this.count++] = value;
  }

  at(i: number): number {
    if (i < 0 || i >= this.count) throw new RangeError(`index ${i} outside [0, ${this.count})`);
    return this.data[i]!;
  }

  /** Keeps the first `length` values. */
  truncate(length: number): void {
    if (length < 0 || length > this.count) throw new RangeError(`cannot truncate ${this.count} values to ${length}`);
    this.count = length;
  }

  /** Bytes held, for memory accounting. */
  get byteCapacity(): number {
    return this.data.byteLength;
  }
}
