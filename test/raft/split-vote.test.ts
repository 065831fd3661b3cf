// Two followers whose election timers fire within a message delay of each other (the leader died,
// so both heard its last append at the same moment) must not split the vote: a split costs a whole
// second election timeout, the failover bench's slowest kills (2.1–2.4 s against ~1.2 s).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, makeConfig, membership } from './cluster.js';
import { only, outbox, solo } from './helpers.js';
import { MemoryLog, RaftNode, type Message } from '../../src/raft/index.js';
import type { SeededRandom } from '../../src/raft/random.js';

/** Ticks `id` until its election timer fires (it becomes a pre-candidate), delivering nothing. */
function fireElectionTimer(c: TestCluster, id: string): void {
  const raft = c.node(id).raft;
  for (let k = 0; k < 1000 && raft.status().role === 'follower'; k++) c.tick(id);
  assert.equal(raft.status().role, 'pre-candidate', `${id}'s election timer fired`);
}

/** Delivers the queued messages matching `pick` (and nothing else), in order. */
function deliver(c: TestCluster, pick: (m: Message) => boolean): void {
  const now = c.queue.filter(pick);
  c.queue = c.queue.filter((m) => !pick(m));
  for (const m of now) c.node(m.to).raft.step(m);
  c.processReadies();
}

/** A 3-voter cluster whose leader a wrote `extraOnC` entries only c got, then died. */
function leaderDied(extraOnC = 0): { c: TestCluster; term: number } {
  const c = new TestCluster(['a', 'b', 'c'], { preVote: true, checkQuorum: true });
  c.elect('a');
  c.propose('a', 'x');
  if (extraOnC > 0) {
    c.filter = (m) => m.to !== 'b';
    for (let k = 0; k < extraOnC; k++) c.propose('a', `only-c-${k}`);
  }
  c.filter = (m) => m.from !== 'a' && m.to !== 'a';
  c.queue = [];
  return { c, term: c.node('a').raft.currentTerm };
}

/** How many ticks after the leader died `id`'s election timer fires (the cluster is deterministic). */
function ticksToFire(id: string, extraOnC?: number): number {
  const { c } = leaderDied(extraOnC);
  let n = 1;
  for (; n < 1000; n++) {
    c.tick(id);
    if (c.node(id).raft.status().role !== 'follower') return n;
  }
  throw new Error(`${id} never timed out`);
}

/**
 * `first` times out; its pre-vote reaches `second` (a follower, which grants it) one tick before
 * `second`'s own timer is due; then `second`'s pre-vote overtakes its grant on the way to `first`.
 */
function timerDueAfterGranting(c: TestCluster, first: string, second: string): void {
  c.tick(second, ticksToFire(second) - 1);
  assert.equal(c.node(second).raft.status().role, 'follower');
  fireElectionTimer(c, first);
  deliver(c, (m) => m.type === 'pre-vote' && m.to === second);
  c.tick(second);
  deliver(c, (m) => m.type === 'pre-vote' && m.to === first);
}

const interleavings: { why: string; extraOnC?: number; run: (c: TestCluster) => void }[] = [
  {
    why: 'both time out at once: the pre-vote requests cross',
    run: (c) => {
      fireElectionTimer(c, 'b');
      fireElectionTimer(c, 'c');
    },
  },
  {
    why: "c's timer is due just after it granted b's pre-vote as a follower",
    run: (c) => timerDueAfterGranting(c, 'b', 'c'),
  },
  {
    why: "b's timer is due just after it granted c's pre-vote as a follower",
    run: (c) => timerDueAfterGranting(c, 'c', 'b'),
  },
  {
    why: 'both time out at once, c has the longer log',
    extraOnC: 2,
    run: (c) => {
      fireElectionTimer(c, 'b');
      fireElectionTimer(c, 'c');
    },
  },
];

for (const { why, extraOnC, run } of interleavings) {
  test(`two followers timing out together elect a leader in the next term without a second timeout: ${why}`, () => {
    const { c, term } = leaderDied(extraOnC);
    run(c);
    c.stabilize();
    const leaders = ['b', 'c'].filter((id) => c.node(id).raft.status().role === 'leader');
    assert.equal(leaders.length, 1, `one leader elected (roles: b ${c.node('b').raft.status().role}, c ${c.node('c').raft.status().role})`);
    const leader = c.node(leaders[0] as string).raft;
    assert.equal(leader.currentTerm, term + 1, 'in the first term after the dead leader');
    if (extraOnC !== undefined) assert.equal(leaders[0], 'c', 'the node with the longer log leads');
  });
}

test('a pre-candidate that yielded to another still campaigns if that one never wins', () => {
  const { c, term } = leaderDied(2);
  fireElectionTimer(c, 'b');
  fireElectionTimer(c, 'c');
  // c's pre-vote reaches b (c's log is longer: b yields), then c is cut off from everyone.
  deliver(c, (m) => m.type === 'pre-vote' && m.to === 'b');
  assert.equal(c.node('b').raft.status().role, 'follower', 'b yielded to c');
  c.filter = (m) => m.from === 'b' && m.to === 'b';
  c.queue = [];
  let ticks = 0;
  for (; ticks < 100 && c.node('b').raft.status().role !== 'pre-candidate'; ticks++) c.tick('b');
  assert.equal(c.node('b').raft.status().role, 'pre-candidate', 'b campaigns again after its own timeout');
  assert.ok(ticks <= 20, `within an election timeout (${ticks} ticks)`);
  assert.equal(c.node('b').raft.currentTerm, term, 'and has not inflated its term meanwhile');
});

test('a pre-candidate makes way only for a voter of its configuration whose log is at least as good', () => {
  const cases = [
    { from: 'a', lastIndex: 5, lastTerm: 2, yields: true, why: 'a voter with a longer log' },
    { from: 'a', lastIndex: 3, lastTerm: 1, yields: true, why: 'a voter with an equal log whose id sorts first' },
    { from: 'c', lastIndex: 3, lastTerm: 1, yields: false, why: 'a voter with an equal log whose id sorts after ours' },
    { from: 'x', lastIndex: 9, lastTerm: 2, yields: false, why: 'a server not in the configuration (removed), however long its log' },
    { from: 'a', lastIndex: 2, lastTerm: 1, yields: false, why: 'a voter with a shorter log (its pre-vote is refused)' },
  ];
  for (const c of cases) {
    const { raft, log } = solo('b', { logTerms: [1, 1, 1], term: 1 });
    for (let k = 0; k < 1000 && raft.status().role === 'follower'; k++) raft.tick();
    assert.equal(raft.status().role, 'pre-candidate', c.why);
    outbox(raft, log);
    raft.step({ type: 'pre-vote', from: c.from, to: 'b', term: 2, lastIndex: c.lastIndex, lastTerm: c.lastTerm, transfer: false, transferTick: 0 });
    const granted = only(outbox(raft, log), 'pre-vote-response')[0]?.reject === false;
    assert.equal(granted, c.lastIndex >= 3 || c.lastTerm > 1, c.why);
    assert.equal(raft.status().role, c.yields ? 'follower' : 'pre-candidate', c.why);
    assert.equal(raft.currentTerm, 1, `${c.why}: the term does not move`);
  }
});

/**
 * Five voters with timer draws fixed per node: `a` always draws the shortest timeout, the others
 * distinct longer ones. Ticks everyone together and delivers every message at once.
 */
function fixedDrawCluster(electionTicks: number, jitter: number | undefined) {
  const ids = ['a', 'b', 'c', 'd', 'e'];
  const draws: Record<string, number> = { a: 0, b: 9, c: 8, d: 7, e: 5 };
  const nodes = new Map<string, { raft: RaftNode; log: MemoryLog }>();
  for (const id of ids) {
    const log = new MemoryLog();
    const random = { nextInt: (bound: number) => Math.min(bound - 1, draws[id] ?? 0) } as unknown as SeededRandom;
    const overrides = { electionTicks, heartbeatTicks: 1, ...(jitter !== undefined ? { electionJitterTicks: jitter } : {}) };
    const raft = new RaftNode({ ...makeConfig(id, 1, overrides), random }, log, {
      hardState: { term: 0, votedFor: '' },
      membership: membership(ids),
      membershipIndex: 0,
      applied: 0,
    });
    nodes.set(id, { raft, log });
  }
  return nodes;
}

for (const [electionTicks, jitter] of [[10, undefined], [10, 20], [4, 40]] as const) {
  // [10, 20] and [4, 40] are what raftTiming gives for 100 ms and 20 ms election timeouts.
  test(`a voter that keeps pre-voting and never hears an answer does not keep the others from electing (electionTicks ${electionTicks}, jitter ${jitter ?? 'default'})`, () => {
    const nodes = fixedDrawCluster(electionTicks, jitter);
    const c = new TestCluster([]);
    for (const [id, n] of nodes) c.nodes.set(id, { id, raft: n.raft, log: n.log, applied: [], readStates: [], dropped: [], snapshotNotices: [] });
    c.elect('e');
    c.propose('e', 'x');
    // e dies; a can still send but hears nothing, so it pre-votes every timeout and never wins.
    c.filter = (m) => m.from !== 'e' && m.to !== 'e' && m.to !== 'a';
    let ticks = 0;
    const voters = ['b', 'c', 'd'];
    for (; ticks < 500 && !voters.some((id) => c.node(id).raft.status().role === 'leader'); ticks++) {
      for (const id of ['a', ...voters]) c.node(id).raft.tick();
      c.stabilize();
    }
    assert.ok(ticks < 10 * (electionTicks + (jitter ?? electionTicks)), `a leader among b, c, d within a few timeouts (after ${ticks} ticks)`);
  });
}
