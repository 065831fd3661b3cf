// Raft §5.2/§5.4.1 and thesis §9.6: vote granting, term handling, pre-vote, check-quorum.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { drain, only, outbox, solo } from './helpers.js';
import { TestCluster, makeConfig, membership } from './cluster.js';
import { MemoryLog, RaftNode } from '../../src/raft/index.js';

test('vote granting follows the up-to-date rule', () => {
  // Voter b's log: terms [1, 1, 2] → last (index 3, term 2).
  const cases = [
    { lastIndex: 3, lastTerm: 2, grant: true, why: 'equal logs' },
    { lastIndex: 4, lastTerm: 2, grant: true, why: 'longer log, same last term' },
    { lastIndex: 1, lastTerm: 3, grant: true, why: 'higher last term, shorter log' },
    { lastIndex: 2, lastTerm: 2, grant: false, why: 'shorter log, same last term' },
    { lastIndex: 9, lastTerm: 1, grant: false, why: 'lower last term, longer log' },
  ];
  for (const c of cases) {
    const { raft, log } = solo('b', { logTerms: [1, 1, 2], term: 2 });
    raft.step({ type: 'vote', from: 'a', to: 'b', term: 3, lastIndex: c.lastIndex, lastTerm: c.lastTerm, transfer: false, transferTick: 0 });
    const rd = drain(raft, log);
    assert.ok(rd !== null, c.why);
    const resp = only([...rd.messages, ...rd.messagesAfterPersist], 'vote-response');
    assert.equal(resp.length, 1, c.why);
    assert.equal(resp[0]?.reject, !c.grant, c.why);
    assert.equal(resp[0]?.term, 3, c.why);
    // A vote is a promise: it may only leave after the hard state recording it is durable.
    assert.equal(only([...rd.messages], 'vote-response').length, 0, c.why);
    assert.deepEqual(rd.hardState, { term: 3, votedFor: c.grant ? 'a' : '' }, c.why);
  }
});

test('a node votes at most once per term', () => {
  const { raft, log } = solo('b', { logTerms: [1], term: 1 });
  const ask = (from: string): boolean | undefined => {
    raft.step({ type: 'vote', from, to: 'b', term: 2, lastIndex: 1, lastTerm: 1, transfer: false, transferTick: 0 });
    return only(outbox(raft, log), 'vote-response')[0]?.reject;
  };
  assert.equal(ask('a'), false);
  assert.equal(ask('c'), true, 'second candidate in the same term is refused');
  assert.equal(ask('a'), false, 'repeating the vote for the same candidate is fine');
  assert.equal(raft.status().votedFor, 'a');
});

test('a restarted node keeps its vote (hard state is the source of truth)', () => {
  const { raft, log } = solo('b', { logTerms: [1], term: 2, votedFor: 'a' });
  raft.step({ type: 'vote', from: 'c', to: 'b', term: 2, lastIndex: 5, lastTerm: 2, transfer: false, transferTick: 0 });
  assert.equal(only(outbox(raft, log), 'vote-response')[0]?.reject, true);
});

test('term handling: higher terms are adopted, lower ones answered or ignored', () => {
  const { raft, log } = solo('b', { logTerms: [1, 1], term: 3, votedFor: 'c' });
  // A stale leader's heartbeat is answered with our term so it steps down.
  raft.step({ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 0, commitTerm: 0, readRound: 0, sentTick: 0 });
  const stale = outbox(raft, log);
  assert.equal(stale.length, 1);
  assert.equal(stale[0]?.term, 3);
  assert.equal(raft.currentTerm, 3);
  // A stale vote request is ignored entirely.
  raft.step({ type: 'vote', from: 'a', to: 'b', term: 2, lastIndex: 9, lastTerm: 2, transfer: false, transferTick: 0 });
  assert.equal(outbox(raft, log).length, 0);
  // A higher-term append makes us a follower of its sender in that term, with no vote yet.
  raft.step({ type: 'append', from: 'c', to: 'b', term: 5, prevIndex: 2, prevTerm: 1, entries: [], commit: 0 });
  const st = raft.status();
  assert.equal(st.term, 5);
  assert.equal(st.leader, 'c');
  assert.equal(st.votedFor, '');
  assert.equal(st.role, 'follower');
});

test('term never goes backwards across steps', () => {
  const { raft } = solo('b', { term: 4 });
  raft.step({ type: 'append', from: 'a', to: 'b', term: 3, prevIndex: 0, prevTerm: 0, entries: [], commit: 0 });
  assert.equal(raft.currentTerm, 4);
});

test('a candidate wins with a majority, and a leader starts its term with a configuration entry', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const a = c.node('a');
  assert.equal(a.raft.currentRole, 'leader');
  const first = a.log.entry(1);
  assert.equal(first?.payload.kind, 'config');
  assert.equal(first?.term, a.raft.currentTerm);
  // Followers learn that it committed once the leader forwards the commit index.
  c.forwardCommit();
  for (const n of c.nodes.values()) assert.equal(n.raft.commitIndex, 1);
});

test('pre-vote: a node that was partitioned does not disrupt a healthy leader', () => {
  for (const preVote of [true, false]) {
    const c = new TestCluster(['a', 'b', 'c'], { preVote, checkQuorum: false });
    c.elect('a');
    const term = c.node('a').raft.currentTerm;
    // Isolate c and let it time out repeatedly.
    c.filter = (m) => m.from !== 'c' && m.to !== 'c';
    for (let i = 0; i < 60; i++) c.tick('c');
    c.stabilize();
    c.filter = () => true;
    c.tick('c', 1);
    c.stabilize();
    c.tickAll(3);
    if (preVote) {
      assert.equal(c.node('a').raft.currentRole, 'leader', 'leader survives the rejoin');
      assert.equal(c.node('a').raft.currentTerm, term, 'no term inflation');
      assert.equal(c.node('c').raft.currentTerm, term, 'pre-candidate never bumped its term');
    } else {
      // Without pre-vote the rejoining node forces a new term: the behaviour pre-vote prevents.
      assert.ok(c.node('a').raft.currentTerm > term);
    }
  }
});

test('check-quorum: a leader that hears from no majority within an election timeout steps down', () => {
  for (const checkQuorum of [true, false]) {
    const c = new TestCluster(['a', 'b', 'c'], { checkQuorum, preVote: true });
    c.elect('a');
    c.filter = (m) => m.from === 'a' || m.to === 'a' ? false : true;
    for (let i = 0; i < 25; i++) c.tick('a');
    c.stabilize();
    assert.equal(c.node('a').raft.currentRole, checkQuorum ? 'follower' : 'leader');
  }
});

test('check-quorum lease: followers ignore vote requests while they hear from a leader', () => {
  const c = new TestCluster(['a', 'b', 'c'], { checkQuorum: true, preVote: false });
  c.elect('a');
  const term = c.node('a').raft.currentTerm;
  c.node('b').raft.step({ type: 'vote', from: 'c', to: 'b', term: term + 1, lastIndex: 50, lastTerm: term, transfer: false, transferTick: 0 });
  assert.equal(c.node('b').raft.currentTerm, term, 'the request was ignored, term unchanged');
  // A transfer-initiated campaign bypasses the lease, while its TimeoutNow is recent: b has
  // acknowledged no heartbeat sent an election timeout after it.
  c.node('b').raft.step({ type: 'vote', from: 'c', to: 'b', term: term + 1, lastIndex: 50, lastTerm: term, transfer: true, transferTick: 1_000_000 });
  assert.equal(c.node('b').raft.currentTerm, term + 1);
});

test('non-voters never campaign', () => {
  const { raft, log } = solo('d', { voters: ['a', 'b', 'c'], nonVoters: ['d'] });
  for (let i = 0; i < 100; i++) raft.tick();
  assert.equal(raft.currentRole, 'non-voter');
  assert.equal(only(outbox(raft, log), 'pre-vote').length, 0);
});

test('a follower campaigns after electionTicks plus a random part of electionJitterTicks (default: electionTicks)', () => {
  const firstCampaignTick = (seed: number, jitter: number | undefined): number => {
    const raft = new RaftNode(makeConfig('a', seed, jitter !== undefined ? { electionJitterTicks: jitter } : {}), new MemoryLog(), {
      hardState: { term: 0, votedFor: '' },
      membership: membership(['a', 'b', 'c']),
      membershipIndex: 0,
      applied: 0,
    });
    for (let t = 1; t <= 100; t++) {
      raft.tick();
      if (raft.currentRole !== 'follower') return t;
    }
    return Number.POSITIVE_INFINITY;
  };
  for (const [jitter, lo, hi] of [[undefined, 10, 19], [3, 10, 12], [1, 10, 10]] as const) {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 200; seed++) seen.add(firstCampaignTick(seed, jitter));
    assert.equal(Math.min(...seen), lo, `jitter ${jitter}`);
    assert.equal(Math.max(...seen), hi, `jitter ${jitter}`);
  }
  assert.throws(() => solo('a', { overrides: { electionJitterTicks: 0 } }), /electionJitterTicks/);
});
