// Deterministic simulation of 5 servers running the production driver, state machine and
// catch-up, seeds 501..1000 of the 1,000 npm test runs (seed-ranges.ts): faults with safety checked
// after every event, liveness and convergence after healing, and a linearizability check of the
// register workload.
import { simulateSeeds } from './seed-ranges.js';

simulateSeeds(5, 501, 1000);
