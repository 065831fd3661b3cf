// Deterministic simulation of 5 servers running the production driver, state machine and
// catch-up: 1,000 seeds of faults with safety checked after every event, liveness and convergence
// after healing, and a linearizability check of the register workload.
import { test } from 'node:test';
import { runSeed } from './simulator.js';

const SEEDS = 1000;
const CHUNK = 100;

for (let from = 1; from <= SEEDS; from += CHUNK) {
  test(`5-node group, seeds ${from}..${from + CHUNK - 1}`, async () => {
    // A failure rejects with SimulationFailure naming the seed and the last events before it.
    for (let seed = from; seed < from + CHUNK; seed++) await runSeed(seed, 5);
  });
}
