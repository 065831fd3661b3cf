// The simulator itself: it replays exactly, its fault schedule really produces every fault it
// claims, and its checkers really report violations with a seed and a trace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Simulation, SimulationFailure, runSeed, type SimResult } from './simulator.js';

test('the same seed replays to the same result', async () => {
  assert.deepEqual(await runSeed(12345, 5), await runSeed(12345, 5));
  assert.notDeepEqual(await runSeed(12345, 5), await runSeed(12346, 5));
});

test('the fault schedule exercises every fault kind, most crashes with writes in flight', async () => {
  const counted = ['crashes', 'crashesWithWritesInFlight', 'installs', 'transfers', 'membershipChanges', 'pauses', 'restoredFromCopy', 'confLost', 'installCrashes', 'writes', 'reads'] as const;
  const total = Object.fromEntries(counted.map((k) => [k, 0])) as Record<(typeof counted)[number], number>;
  const starts = new Set<number>();
  for (let seed = 1; seed <= 60; seed++) {
    const r: SimResult = await runSeed(seed, 3);
    for (const k of counted) total[k] += r[k];
    starts.add(r.initialVoters);
  }
  for (const [k, v] of Object.entries(total)) assert.ok(v > 0, `${k} never happened`);
  assert.deepEqual([...starts].sort(), [1, 2, 3], 'groups start from one voter, two voters and all three');
  assert.ok(total.crashesWithWritesInFlight >= 0.4 * total.crashes, `only ${total.crashesWithWritesInFlight} of ${total.crashes} crashes had writes in flight`);
});

test('a liveness failure reports its seed and a trace', async () => {
  // A zero liveness bound cannot be met: the failure must name the seed and show events.
  await assert.rejects(
    new Simulation({ seed: 77, nodes: 3, faultMs: 200, livenessBoundMs: 0 }).run(),
    (err: unknown) => err instanceof SimulationFailure && err.seed === 77 && /seed 77/.test(err.message) && /ms /.test(err.trace),
  );
});
