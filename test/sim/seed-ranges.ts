// The simulation seeds npm test runs: 1,000 for 3 servers and 1,000 for 5, split over several test
// files (each file is its own process under node --test, so two run at once and none runs alone
// into the per-file timeout on a busy machine), 100 seeds per test so a failure names a short range.
import { test } from 'node:test';
import { runSeed } from './simulator.js';

const CHUNK = 100;

/** Registers tests for seeds [from, to] on groups of `nodes` servers. */
export function simulateSeeds(nodes: number, from: number, to: number): void {
  for (let first = from; first <= to; first += CHUNK) {
    const last = Math.min(to, first + CHUNK - 1);
    test(`${nodes}-node group, seeds ${first}..${last}`, async () => {
      // A failure rejects with SimulationFailure naming the seed and the last events before it.
      for (let seed = first; seed <= last; seed++) await runSeed(seed, nodes);
    });
  }
}
