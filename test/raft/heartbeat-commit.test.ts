// A heartbeat's commit index is believed only where the follower's log provably is the leader's.
// The leader sends commit = min(match, committed), but its match for a follower is stale when the
// follower was restored from an older copy of its directories: the copy may hold, at that index,
// an entry of an earlier term that was never committed. Committing from the heartbeat alone would
// apply it (scm.db diverges silently).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftNode, type Message } from '../../src/raft/index.js';
import { withMutant } from '../../src/raft/mutants.js';
import { TestCluster, makeConfig, membership } from './cluster.js';
import { solo } from './helpers.js';

function restoredFollowerScenario(): void {
  const warnings: string[] = [];
  const c = new TestCluster(['a', 'b', 'c', 'd', 'e'], { onWarning: (message) => warnings.push(message) });
  c.elect('a');
  c.propose('a', 'v1');
  // a appends x, which reaches b only, and is then cut off with b.
  c.filter = (m) => !(m.from === 'a' && m.to !== 'b');
  const a = c.node('a');
  assert.ok(a.raft.propose(new TextEncoder().encode('x')).ok);
  c.stabilize();
  const b = c.node('b');
  const staleIndex = b.log.lastIndex();
  const staleTerm = b.log.term(staleIndex);
  const copy = b.log.clone(); // an older copy of b's directories, holding x
  // c, d and e elect one of them, which writes its own entry at x's index; b (healed) takes its log.
  c.filter = (m) => m.from !== 'a' && m.to !== 'a' && m.from !== 'b' && m.to !== 'b';
  c.tickAll(40);
  const leader = c.leader();
  assert.ok(leader !== undefined && ['c', 'd', 'e'].includes(leader.id), `a leader among c, d, e: ${leader?.id}`);
  c.propose(leader.id, 'y');
  c.filter = (m) => m.from !== 'a' && m.to !== 'a';
  c.tickAll(3);
  assert.equal(b.log.lastIndex(), leader.log.lastIndex(), 'b caught up with the new leader');
  assert.notEqual(leader.log.term(staleIndex), staleTerm, 'the new leader holds another entry at x\'s index');
  assert.ok(leader.raft.commitIndex >= staleIndex);

  // b is restored from the copy: its term and vote survive, its entries are the copy's.
  b.log = copy;
  b.raft = new RaftNode(makeConfig('b', 5), copy, {
    hardState: { term: leader.raft.currentTerm, votedFor: '' },
    membership: membership(['a', 'b', 'c', 'd', 'e']),
    membershipIndex: 0,
    applied: 0,
  });
  b.applied = [];
  // Heartbeats only: nothing new is proposed, so the leader sends no append unless b asks for one.
  c.tickAll(5);
  for (const entry of b.applied) {
    assert.equal(entry.term, leader.log.term(entry.index), `b applied entry ${entry.index} of term ${entry.term}, not the leader's`);
  }
  assert.equal(b.log.term(staleIndex), leader.log.term(staleIndex), 'b was probed and took the leader\'s entry');
  assert.ok(b.raft.commitIndex >= staleIndex, 'b commits again once its log is the leader\'s');
  assert.ok(warnings.some((w) => /follower b rejected entry \d+ after acknowledging up to \d+: it lost entries/.test(w)), warnings.join('\n'));
}

test('a follower restored from an older copy does not commit the stale entry a heartbeat points at, and is probed back', () => {
  restoredFollowerScenario();
  // With the check switched off (src/raft/mutants.ts), the same scenario applies the stale entry.
  assert.throws(() => withMutant('heartbeat-commit-unchecked', restoredFollowerScenario), /b applied entry \d+ of term \d+, not the leader's/);
});

test('a heartbeat commits only up to an index whose term matches the leader\'s there', () => {
  const cases: { name: string; logTerms: number[]; commit: number; commitTerm: number; committed: number; rejects: boolean }[] = [
    { name: 'matching entry at the commit index', logTerms: [1, 1, 2, 2], commit: 4, commitTerm: 2, committed: 4, rejects: false },
    { name: 'commit below our last entry, matching', logTerms: [1, 1, 2, 2], commit: 3, commitTerm: 2, committed: 3, rejects: false },
    { name: 'another term at the commit index', logTerms: [1, 1, 2, 2], commit: 4, commitTerm: 3, committed: 0, rejects: true },
    { name: 'commit index beyond our log', logTerms: [1, 1], commit: 4, commitTerm: 3, committed: 0, rejects: true },
    { name: 'the leader does not know the term (0)', logTerms: [1, 1, 2, 2], commit: 4, commitTerm: 0, committed: 0, rejects: false },
  ];
  for (const k of cases) {
    const { raft, log } = solo('b', { logTerms: k.logTerms, term: 3 });
    raft.step({ type: 'heartbeat', from: 'a', to: 'b', term: 3, commit: k.commit, commitTerm: k.commitTerm, readRound: 0, sentTick: 1 });
    const out: Message[] = [];
    for (let rd = raft.ready(); rd !== null; rd = raft.ready()) {
      log.append(rd.entries);
      out.push(...rd.messages, ...rd.messagesAfterPersist);
      raft.advance();
    }
    assert.equal(raft.commitIndex, k.committed, k.name);
    const reject = out.find((m) => m.type === 'append-response' && m.reject);
    assert.equal(reject !== undefined, k.rejects, `${k.name}: ${JSON.stringify(out)}`);
    assert.ok(out.some((m) => m.type === 'heartbeat-response'), `${k.name}: the heartbeat is still answered (reads, leases)`);
  }
});
