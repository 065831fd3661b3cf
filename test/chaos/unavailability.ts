// Unavailability after a fault: the longest gap between consecutive acknowledged writes that
// overlaps the fault's window (from injection until the cluster had recovered), per fault kind.

/** `acks` ascending. The longest gap between consecutive acks with the later after `from` and the earlier before `to`. */
export function longestAckGap(acks: readonly number[], from: number, to: number): number {
  let longest = 0;
  for (let i = 1; i < acks.length; i++) {
    const earlier = acks[i - 1] as number;
    const later = acks[i] as number;
    if (later <= from) continue;
    if (earlier >= to) break;
    longest = Math.max(longest, later - earlier);
  }
  return longest;
}

export interface Spread {
  readonly count: number;
  readonly min: number;
  readonly median: number;
  readonly max: number;
}

export function spread(values: readonly number[]): Spread | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  const median = sorted.length % 2 === 1 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
  return { count: sorted.length, min: sorted[0] as number, median, max: sorted[sorted.length - 1] as number };
}
