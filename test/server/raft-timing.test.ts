// The core's tick period and tick counts, derived from Ozone's millisecond timeouts: an election
// waits a random time in [min, max] as Ratis' does (ozone.scm.ha.ratis.leader.election.timeout and
// that plus 200 ms), and the tick is fine enough that two followers rarely draw the same tick of it
// (a tie costs another whole election timeout).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { raftTiming } from '../../src/server/scm-node.js';
import type { ScmConfig } from '../../src/server/config.js';

function timing(minMs: number) {
  const raft = { electionTimeoutMinMs: minMs, electionTimeoutMaxMs: minMs + 200, heartbeatIntervalMs: Math.floor(minMs / 2) };
  return raftTiming({ raft } as unknown as ScmConfig);
}

test('an election waits between the minimum and the maximum timeout, in ticks of a tenth of the spread', () => {
  assert.deepEqual(timing(1000), { tickMs: 20, electionTicks: 50, electionJitterTicks: 10, heartbeatTicks: 25 });
  assert.deepEqual(timing(5000), { tickMs: 20, electionTicks: 250, electionJitterTicks: 10, heartbeatTicks: 125 });
  // Short timeouts keep at least 5 ms ticks, and a heartbeat still fits several times in a timeout.
  const short = timing(20);
  assert.equal(short.tickMs, 5);
  assert.ok(short.heartbeatTicks < short.electionTicks);
  assert.ok(short.electionJitterTicks >= 1);
});
