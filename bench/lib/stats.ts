// Latency summaries and the gaps between acknowledged operations (failover). Pure functions.

export interface LatencySummary {
  readonly count: number;
  readonly meanMs: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly p999Ms: number;
  readonly maxMs: number;
}

/** Nearest-rank percentile (p in 0..100) of an ascending array; 0 for an empty one. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}

export function summarize(latenciesMs: ArrayLike<number>): LatencySummary {
  const sorted = Float64Array.from(latenciesMs).sort();
  let sum = 0;
  for (const v of sorted) sum += v;
  return {
    count: sorted.length,
    meanMs: sorted.length === 0 ? 0 : sum / sorted.length,
    p50Ms: percentile(sorted, 50),
    p90Ms: percentile(sorted, 90),
    p99Ms: percentile(sorted, 99),
    p999Ms: percentile(sorted, 99.9),
    maxMs: sorted.length === 0 ? 0 : (sorted[sorted.length - 1] as number),
  };
}

export interface GapAround {
  /** Longest time between two consecutive acknowledgements, the later one after `from`, the earlier before `to`. */
  readonly longestGapMs: number;
  /** Where that gap started, relative to `from` (negative: it started before). */
  readonly longestGapStartMs: number;
  /** From `from` to the first acknowledgement after it; undefined when there is none before `to`. */
  readonly firstAckAfterMs: number | undefined;
  /** Acknowledgements in [from, to). */
  readonly acks: number;
}

/**
 * The availability gap of one failover round: `acks` are acknowledgement times (ms, ascending),
 * `from` the moment of the kill, `to` the end of the round (the next kill, or the end of the run).
 * The gap that spans the kill counts: it is the time clients saw no acknowledgement at all.
 */
export function gapAround(acks: ArrayLike<number>, from: number, to: number): GapAround {
  let lo = 0;
  let hi = acks.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((acks[mid] as number) < from) lo = mid + 1;
    else hi = mid;
  }
  // acks[lo] is the first acknowledgement at or after `from`. The sequence measured is: the last
  // acknowledgement before `from` (or `from` itself), every one in [from, to), then `to`, so a
  // round in which nothing was acknowledged any more reports the whole rest of the round.
  let previous = lo > 0 ? (acks[lo - 1] as number) : from;
  let longest = 0;
  let longestStart = 0;
  let count = 0;
  const step = (t: number): void => {
    if (t - previous > longest) {
      longest = t - previous;
      longestStart = previous - from;
    }
    previous = t;
  };
  for (let i = lo; i < acks.length && (acks[i] as number) < to; i++) {
    step(acks[i] as number);
    count++;
  }
  step(to);
  const first = count > 0 ? (acks[lo] as number) - from : undefined;
  return { longestGapMs: longest, longestGapStartMs: longestStart, firstAckAfterMs: first, acks: count };
}

/** Longest gap between consecutive acknowledgements in [from, to): the steady-state reference. */
export function longestGapWithin(acks: ArrayLike<number>, from: number, to: number): number {
  let longest = 0;
  let previous: number | undefined;
  for (let i = 0; i < acks.length; i++) {
    const t = acks[i] as number;
    if (t < from) continue;
    if (t >= to) break;
    if (previous !== undefined) longest = Math.max(longest, t - previous);
    previous = t;
  }
  return longest;
}
