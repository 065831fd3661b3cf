// Deterministic simulation, 5-node clusters: 1,000 seeds of faults with safety checked after every
// event, liveness after healing, and a linearizability check of the register workload.
import { test } from 'node:test';
import { runSeed } from './simulator.js';

const SEEDS = 1000;
const CHUNK = 100;

for (let from = 1; from <= SEEDS; from += CHUNK) {
  test(`5-node cluster, seeds ${from}..${from + CHUNK - 1}`, () => {
    // A failure throws SimulationFailure naming the seed and the last events before it.
    for (let seed = from; seed < from + CHUNK; seed++) runSeed(seed, 5);
  });
}
