// Raft §5.3/§5.4.2: append consistency, conflict truncation, term-skipping back-off, the Figure 8
// commit rule, leader self-counting after fsync, pipelining bounds.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemoryLog, RaftInvariantError, RaftNode } from '../../src/raft/index.js';
import { dataEntry, drain, only, outbox, solo } from './helpers.js';
import { TestCluster, dataTexts, makeConfig, membership } from './cluster.js';

test('append consistency check, conflict truncation and rejection hints', () => {
  // Follower log terms [1, 1, 2, 2]; term 3 leader 'a'.
  const cases = [
    { prev: [2, 1], entries: [[3, 3]], reject: false, index: 3, logTerms: [1, 1, 3], truncateFrom: 3 },
    { prev: [4, 2], entries: [], reject: false, index: 4, logTerms: [1, 1, 2, 2] },
    { prev: [2, 1], entries: [[3, 2], [4, 2]], reject: false, index: 4, logTerms: [1, 1, 2, 2] },
    { prev: [2, 1], entries: [[3, 2], [4, 2], [5, 3]], reject: false, index: 5, logTerms: [1, 1, 2, 2, 3] },
    { prev: [5, 2], entries: [], reject: true, hint: [4, 2], logTerms: [1, 1, 2, 2] },
    { prev: [4, 3], entries: [], reject: true, hint: [4, 2], logTerms: [1, 1, 2, 2] },
    { prev: [3, 1], entries: [], reject: true, hint: [2, 1], logTerms: [1, 1, 2, 2] },
  ] as const;
  for (const c of cases) {
    const label = JSON.stringify(c);
    const { raft, log } = solo('b', { logTerms: [1, 1, 2, 2], term: 3 });
    raft.step({
      type: 'append', from: 'a', to: 'b', term: 3, prevIndex: c.prev[0], prevTerm: c.prev[1],
      entries: c.entries.map(([i, t]) => dataEntry(i, t)), commit: 0,
    });
    const rd = raft.ready();
    assert.ok(rd !== null, label);
    assert.equal(rd.truncateFrom, 'truncateFrom' in c ? c.truncateFrom : undefined, label);
    log.append(rd.entries);
    raft.advance();
    const resp = only([...rd.messagesAfterPersist], 'append-response');
    assert.equal(resp.length, 1, `${label}: the answer waits for persistence`);
    assert.equal(only([...rd.messages], 'append-response').length, 0, label);
    assert.equal(resp[0]?.reject, c.reject, label);
    if (!c.reject) assert.equal(resp[0]?.index, c.index, label);
    if ('hint' in c) assert.deepEqual([resp[0]?.hintIndex, resp[0]?.hintTerm], c.hint, label);
    const terms: number[] = [];
    for (let i = 1; i <= log.lastIndex(); i++) terms.push(log.term(i) as number);
    assert.deepEqual(terms, c.logTerms, label);
  }
});

test('an append below the commit index is answered with the commit index and changes nothing', () => {
  const { raft, log } = solo('b', { logTerms: [1, 1, 2], term: 3, commit: 3, applied: 0 });
  raft.step({ type: 'append', from: 'a', to: 'b', term: 3, prevIndex: 1, prevTerm: 1, entries: [dataEntry(2, 3)], commit: 3 });
  const resp = only(outbox(raft, log), 'append-response');
  assert.deepEqual([resp[0]?.reject, resp[0]?.index], [false, 3]);
  assert.equal(log.term(2), 1);
});

test('the core refuses to start with a commit index beyond its log', () => {
  assert.throws(() => solo('b', { logTerms: [1], commit: 5 }), (err: unknown) => err instanceof RaftInvariantError);
});

test('follower commit is bounded by what the leader proved matches', () => {
  // Follower has a stale suffix [.., 2, 2]; the leader's append proves only up to index 2.
  const { raft, log } = solo('b', { logTerms: [1, 1, 2, 2], term: 3 });
  raft.step({ type: 'append', from: 'a', to: 'b', term: 3, prevIndex: 2, prevTerm: 1, entries: [], commit: 4 });
  outbox(raft, log);
  assert.equal(raft.commitIndex, 2);
});

function electWithLog(ids: string[], logTerms: number[], term: number): { raft: RaftNode; log: MemoryLog } {
  const [self, ...others] = ids as [string, ...string[]];
  const node = solo(self, { voters: ids, logTerms, term, overrides: { preVote: false } });
  for (let i = 0; i < 30 && node.raft.currentRole !== 'candidate'; i++) node.raft.tick();
  // The vote requests (and our own vote) count once the new term is durable.
  drain(node.raft, node.log);
  const t = node.raft.currentTerm;
  for (const o of others.slice(0, Math.floor(ids.length / 2))) {
    node.raft.step({ type: 'vote-response', from: o, to: self, term: t, reject: false });
  }
  assert.equal(node.raft.currentRole, 'leader');
  return node;
}

test('Figure 8: a leader does not commit an old-term entry by counting replicas', () => {
  // s1 has [1, 2] and becomes leader in term 4 (appending its term-4 configuration entry at 3).
  const { raft, log } = electWithLog(['s1', 's2', 's3', 's4', 's5'], [1, 2], 3);
  assert.equal(raft.currentTerm, 4);
  outbox(raft, log);
  assert.equal(log.term(3), 4);
  // s2 and s3 hold index 2 (term 2): a majority with s1, but it is not of the current term.
  for (const f of ['s2', 's3']) raft.step({ type: 'append-response', from: f, to: 's1', term: 4, reject: false, index: 2, hintIndex: 0, hintTerm: 0 });
  outbox(raft, log);
  assert.equal(raft.commitIndex, 0, 'index 2 must not be committed yet (another leader could still overwrite it)');
  // Once the term-4 entry is on a majority, everything up to it commits.
  for (const f of ['s2', 's3']) raft.step({ type: 'append-response', from: f, to: 's1', term: 4, reject: false, index: 3, hintIndex: 0, hintTerm: 0 });
  outbox(raft, log);
  assert.equal(raft.commitIndex, 3);
});

test('conflict back-off skips whole terms', () => {
  // Raft paper Figure 7: leader [1,1,1,4,4,5,5,6,6,6], follower (f) [1,1,1,2,2,2,3,3,3,3,3].
  const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
  const followerTerms = [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3];
  const leader = electWithLog(['a', 'b', 'c'], leaderTerms, 6);
  const follower = solo('b', { logTerms: followerTerms, term: 6 });
  let rejects = 0;
  let pending = outbox(leader.raft, leader.log).filter((m) => m.to === 'b');
  for (let round = 0; round < 20 && pending.length > 0; round++) {
    for (const m of pending) follower.raft.step(m);
    const answers = outbox(follower.raft, follower.log);
    rejects += only(answers, 'append-response').filter((m) => m.reject).length;
    for (const m of answers) leader.raft.step(m);
    pending = outbox(leader.raft, leader.log).filter((m) => m.to === 'b' && m.type === 'append');
  }
  const terms: number[] = [];
  for (let i = 1; i <= follower.log.lastIndex(); i++) terms.push(follower.log.term(i) as number);
  assert.deepEqual(terms, [...leaderTerms, 7]);
  // Index-by-index back-off would need 8 rejections; skipping terms needs at most 2.
  assert.ok(rejects <= 2, `took ${rejects} rejections`);
});

test('the leader replicates before its own fsync but counts itself only after it', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const a = c.node('a');
  const r = a.raft.propose(new TextEncoder().encode('x'));
  assert.ok(r.ok);
  const rd = a.raft.ready();
  assert.ok(rd !== null);
  // The append to followers is allowed out before the leader's entries are durable.
  const appends = only([...rd.messages], 'append');
  assert.equal(appends.length, 2);
  assert.ok(appends.every((m) => m.entries.some((e) => e.index === r.index)));
  // One follower acknowledges while the leader's fsync is still running: no majority yet.
  a.raft.step({ type: 'append-response', from: 'b', to: 'a', term: a.raft.currentTerm, reject: false, index: r.index, hintIndex: 0, hintTerm: 0 });
  assert.ok(a.raft.commitIndex < r.index, 'not committed before the leader persisted');
  a.log.append(rd.entries);
  a.raft.advance();
  assert.equal(a.raft.commitIndex, r.index, 'leader + b form a majority after the fsync');
});

test('a single-node cluster commits only after the Ready is persisted', () => {
  const { raft, log } = solo('a', { voters: ['a'] });
  for (let i = 0; i < 30 && raft.currentRole !== 'leader'; i++) {
    raft.tick();
    drain(raft, log);
  }
  assert.equal(raft.currentRole, 'leader');
  outbox(raft, log);
  const r = raft.propose(new TextEncoder().encode('solo'));
  assert.ok(r.ok);
  const rd = raft.ready();
  assert.ok(rd !== null);
  assert.equal(rd.committedEntries.some((e) => e.index === r.index), false);
  assert.ok(raft.commitIndex < r.index);
  log.append(rd.entries);
  raft.advance();
  assert.equal(raft.commitIndex, r.index);
  const next = drain(raft, log);
  assert.deepEqual(dataTexts(next?.committedEntries ?? []), ['solo']);
});

test('pipelining is bounded by maxInflightMsgs and batches by maxBytesPerMsg', () => {
  const c = new TestCluster(['a', 'b', 'c'], { maxInflightMsgs: 2, maxBytesPerMsg: 100 });
  c.elect('a');
  const a = c.node('a');
  for (let i = 0; i < 40; i++) assert.ok(a.raft.propose(new TextEncoder().encode(`v${i}`)).ok);
  const rd = a.raft.ready();
  assert.ok(rd !== null);
  const toB = only([...rd.messages], 'append').filter((m) => m.to === 'b');
  assert.equal(toB.length, 2, 'two messages in flight at most');
  for (const m of toB) {
    const bytes = m.entries.reduce((s, e) => s + (e.payload.kind === 'data' ? e.payload.data.byteLength + 24 : 0), 0);
    assert.ok(m.entries.length >= 1 && bytes <= 100);
    assert.ok(m.entries.length > 1, 'entries are batched');
  }
  a.log.append(rd.entries);
  c.queue.push(...rd.messages, ...rd.messagesAfterPersist);
  a.raft.advance();
  c.stabilize();
  // The last commit advance reaches the followers when the leader forwards it (or at a tick).
  c.forwardCommit();
  for (const n of c.nodes.values()) assert.equal(dataTexts(n.applied).length, 40);
});

test('a lost append in replicate state is recovered through heartbeats', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  // Every append to c is lost while the entry is proposed and committed by a and b.
  c.filter = (m) => !(m.type === 'append' && m.to === 'c');
  c.propose('a', 'lost-once');
  c.forwardCommit();
  assert.deepEqual(dataTexts(c.node('b').applied), ['lost-once']);
  assert.deepEqual(dataTexts(c.node('c').applied), []);
  c.filter = () => true;
  c.tickAll(5);
  assert.deepEqual(dataTexts(c.node('c').applied), ['lost-once']);
});

test('a leader that does not know the term below its first entry still catches up a follower holding that point', () => {
  // The leader restarted after purging entries 1..20: its storage knows entries 21..30 but not the
  // term of 20 (RaftStorage does not record it). The follower holds 1..20, committed.
  const leaderLog = new MemoryLog();
  leaderLog.append(Array.from({ length: 30 }, (_, k) => dataEntry(k + 1, 1)));
  leaderLog.compact(20);
  const forgetful = {
    firstIndex: () => leaderLog.firstIndex(),
    lastIndex: () => leaderLog.lastIndex(),
    term: (i: number) => (i === 20 ? undefined : leaderLog.term(i)),
    entries: (lo: number, hi: number, max: number) => leaderLog.entries(lo, hi, max),
  };
  const leader = new RaftNode(makeConfig('a', 3, { preVote: false }), forgetful, {
    hardState: { term: 1, votedFor: '' },
    membership: membership(['a', 'b']),
    membershipIndex: 0,
    applied: 30,
  });
  const follower = solo('b', { voters: ['a', 'b'], logTerms: Array.from({ length: 20 }, () => 1), term: 1, commit: 20, applied: 20 });
  for (let i = 0; i < 40 && leader.currentRole !== 'candidate'; i++) leader.tick();
  drain(leader, leaderLog);
  leader.step({ type: 'vote-response', from: 'b', to: 'a', term: leader.currentTerm, reject: false });
  for (let round = 0; round < 30; round++) {
    for (const m of outbox(leader, leaderLog)) follower.raft.step(m);
    for (const m of outbox(follower.raft, follower.log)) leader.step(m);
    leader.tick();
  }
  assert.equal(follower.log.lastIndex(), leader.lastIndex, 'the follower caught up without a snapshot install');
});
