// The simulator itself: deterministic replay, and its checkers really detect violations.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, SimulationFailure, runSeed } from './simulator.js';

test('the same seed replays to the same result', () => {
  assert.deepEqual(runSeed(12345, 5), runSeed(12345, 5));
  assert.notDeepEqual(runSeed(12345, 5), runSeed(12346, 5));
});

test('the fault schedule actually exercises crashes, snapshots, transfers and membership changes', () => {
  const total = { crashes: 0, snapshotsInstalled: 0, transfers: 0, membershipChanges: 0, leaders: 0, historyOps: 0 };
  for (let seed = 1; seed <= 40; seed++) {
    const r = runSeed(seed, 3);
    for (const k of Object.keys(total) as (keyof typeof total)[]) total[k] += r[k];
  }
  for (const [k, v] of Object.entries(total)) assert.ok(v > 0, `${k} never happened`);
});

test('a liveness failure reports its seed and a trace', () => {
  // A zero liveness bound cannot be met: the failure must name the seed and show events.
  assert.throws(
    () => new Simulation({ seed: 77, nodes: 3, faultMs: 200, livenessBoundMs: 0 }).run(),
    (err: unknown) => err instanceof SimulationFailure && err.seed === 77 && /seed 77/.test(err.message) && /ms /.test(err.trace),
  );
});
