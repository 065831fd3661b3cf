// V8 heap settings a node applies to its own process at start (ozone.scm.v8.heap.growing.percent).
//
// V8 runs a full (mark-compact) collection of its old generation only once the old generation has
// grown past a limit it sets after the previous one: what survived times a growing factor that V8
// picks between 1.1 and 4.0 from how fast it collects against how fast the program allocates; on
// a server, usually near 4. A loaded leader promotes a few KB of every client call (grpc-js and
// HTTP/2 stream objects, requests, responses) into the old generation, and that garbage holds
// native memory besides: backing stores (V8's `external`) and the HTTP/2 streams' own allocations
// in glibc's main arena, freed only when the full collection finally runs; so do the container
// table's columns after they grow (the old ones stay resident until then). Measured with 1 M
// containers at the end of 20 s of 16-caller load (bench/results/2026-12-03-rss-notes.md,
// "Round 3"): the leader at 257-280 MiB with V8's own factor, 219-226 with 100 (a factor of 2),
// 209 with 50, 189-196 with 20; 20 and 50 cost the leader GC time per operation, 100 did not
// measurably, hence the default.
//
// The flag is read by V8's heap controller at every full collection, so setting it once the
// process runs takes effect from the next one on (checked by the test). It changes only when V8
// collects, never how much it may use: a node cannot run out of heap because of it.
import { setFlagsFromString } from 'node:v8';

/** The V8 flag for ozone.scm.v8.heap.growing.percent, or undefined for 0 (V8 picks its factor). */
export function heapGrowingFlag(percent: number): string | undefined {
  if (!Number.isSafeInteger(percent) || percent < 0) throw new RangeError(`heap growing percent must be a non-negative integer, got ${percent}`);
  return percent === 0 ? undefined : `--heap-growing-percent=${percent}`;
}

/**
 * Sets V8's old-generation growing factor to 1 + percent/100 for this process (0 leaves V8's own,
 * and any --heap-growing-percent given on node's command line). Returns the flag it set.
 */
export function applyHeapGrowingPercent(percent: number, setFlags: (flags: string) => void = setFlagsFromString): string | undefined {
  const flag = heapGrowingFlag(percent);
  if (flag !== undefined) setFlags(flag);
  return flag;
}
