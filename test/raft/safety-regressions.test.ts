// Regression tests for the Raft safety and liveness bugs an independent review found (issue
// "Raft safety: fix seven protocol bugs"). Each scenario runs twice: as the code is, where it must
// hold, and with the bug switched back on (src/raft/mutants.ts), where it must break. A scenario
// that cannot tell the two apart is not a test.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RaftNode, type Message } from '../../src/raft/index.js';
import { withMutant, type MutantName } from '../../src/raft/mutants.js';
import { TestCluster, makeConfig, membership } from './cluster.js';
import { dataEntry, drain, only, outbox, solo } from './helpers.js';

/**
 * Runs `scenario` as the code is (it must not throw) and with `bug` back on (it must throw: a failed
 * assertion, or a cluster that never settles).
 */
function regression(bug: MutantName, scenario: () => void): void {
  scenario();
  let failed = false;
  try {
    withMutant(bug, scenario);
  } catch (err) {
    if (process.env['SHOW_MUTANT_FAILURES'] !== undefined) console.log(`${bug}: ${(err as Error).message.split('\n')[0]}`);
    failed = true;
  }
  assert.ok(failed, `the scenario does not notice the ${bug} bug`);
}

test('bug 1: installing a checkpoint adopts exactly the configuration the checkpoint holds', () => {
  regression('install-keeps-old-config', () => {
    // b knows {a, b, c}; the group has since removed b and added d (both committed, purged on the
    // leader). The checkpoint at 50 holds the configuration of index 40.
    const { raft, log } = solo('b', { logTerms: [1, 1, 1], term: 2, commit: 3, applied: 3 });
    raft.step({ type: 'snapshot-notify', from: 'a', to: 'b', term: 2, firstIndex: 45, prevTerm: 2, noticeId: 1 });
    assert.equal(drain(raft, log)?.snapshotNotice?.noticeId, 1);
    log.resetToSnapshot(50, 2);
    raft.snapshotInstalled(2, 50, { index: 40, membership: membership(['a', 'c', 'd']) });
    assert.deepEqual(raft.status().membership.voters.map((p) => p.id), ['a', 'c', 'd']);
    assert.equal(raft.committedMembership().index, 40);
    assert.equal(raft.currentRole, 'non-voter', 'b was removed: it must not campaign');
    const status = only(outbox(raft, log), 'snapshot-status')[0];
    assert.deepEqual([status?.status, status?.index, status?.configIndex, status?.noticeId], ['installed', 50, 40, 1]);
  });
});

test('bug 2: a follower whose log holds the leader\'s compaction point keeps it instead of installing', () => {
  regression('stale-snapshot-status', () => {
    // b has entries 1..30 (all term 1) but its commit index lags at 15; the leader purged below 20.
    const terms = Array.from({ length: 30 }, () => 1);
    const { raft, log } = solo('b', { logTerms: terms, term: 1, commit: 15, applied: 15 });
    raft.step({ type: 'snapshot-notify', from: 'a', to: 'b', term: 1, firstIndex: 20, prevTerm: 1, noticeId: 7 });
    const rd = drain(raft, log);
    assert.equal(rd?.snapshotNotice, undefined, 'no install: the log already reaches the leader\'s first index');
    const status = only([...(rd?.messages ?? []), ...(rd?.messagesAfterPersist ?? [])], 'snapshot-status')[0];
    assert.deepEqual([status?.status, status?.index, status?.noticeId], ['already-installed', 19, 7]);
    assert.equal(log.lastIndex(), 30);
  });
});

test('bug 2: an install keeps the log after the checkpoint when the log holds the checkpoint\'s entry', () => {
  regression('stale-snapshot-status', () => {
    const terms = Array.from({ length: 30 }, () => 1);
    const { raft, log } = solo('b', { logTerms: terms, term: 1, commit: 5, applied: 5 });
    // The leader does not know the term at its compaction point (prevTerm 0), so b must install.
    raft.step({ type: 'snapshot-notify', from: 'a', to: 'b', term: 1, firstIndex: 12, prevTerm: 0, noticeId: 1 });
    assert.ok(drain(raft, log)?.snapshotNotice !== undefined);
    // The checkpoint the leader served is at 20, older than b's log (30): normal in production.
    if (!raft.keepsLogOnInstall(1, 20)) log.resetToSnapshot(20, 1);
    raft.snapshotInstalled(1, 20, { index: 0, membership: membership(['a', 'b', 'c']) });
    assert.equal(raft.lastIndex, 30, 'entries 21..30, which b may have acknowledged, are still there');
    assert.equal(log.lastIndex(), 30);
  });
});

/** A leader `a` of {a, b, c} that has replicated entries 2..30 to b, b in replicate state. */
function leaderWithUpToDateFollower(): TestCluster {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  for (let i = 0; i < 29; i++) c.propose('a', `v${i}`);
  c.tickAll(2);
  return c;
}

test('bug 2: a late snapshot status from an old round does not move an up-to-date follower', () => {
  regression('stale-snapshot-status', () => {
    const c = leaderWithUpToDateFollower();
    const a = c.node('a').raft;
    const before = a.status().progress.find((p) => p.id === 'b');
    assert.equal(before?.state, 'replicate');
    // An 'in-progress' answer to a notice round long over arrives (reordered or duplicated).
    a.step({ type: 'snapshot-status', from: 'b', to: 'a', term: a.currentTerm, status: 'in-progress', noticeId: 1, index: 0, snapshotTerm: 0, configIndex: 0 });
    c.stabilize();
    assert.equal(a.status().progress.find((p) => p.id === 'b')?.state, 'replicate');
    // A late 'installed' does not raise or lower anything either.
    a.step({ type: 'snapshot-status', from: 'b', to: 'a', term: a.currentTerm, status: 'installed', noticeId: 1, index: 3, snapshotTerm: 1, configIndex: 1 });
    assert.equal(a.status().progress.find((p) => p.id === 'b')?.match, before?.match);
  });
});

test('bug 2: a late status and an install by commit index do not lose an acknowledged entry', () => {
  regression('stale-snapshot-status', () => {
    const c = leaderWithUpToDateFollower();
    const a = c.node('a');
    const b = c.node('b');
    // c is cut off. a appends ten entries in one batch: b acknowledges them, a commits them with b,
    // but b never learns that commit.
    const base = a.raft.lastIndex;
    const last = base + 10;
    const toB = (m: Message): boolean => m.to !== 'b' || (m.type === 'append' && m.entries.length > 0);
    c.filter = (m) => m.to !== 'c' && m.from !== 'c' && toB(m);
    for (let i = 0; i < 10; i++) assert.ok(a.raft.propose(new TextEncoder().encode(`w${i}`)).ok);
    c.stabilize();
    assert.equal(a.raft.commitIndex, last);
    assert.equal(b.raft.lastIndex, last);
    assert.ok(b.raft.commitIndex <= base);
    // a compacts (everything is applied); a late 'in-progress' from an old round arrives.
    a.log.compact(base + 5);
    a.raft.compacted(base + 5, a.log.term(base + 5) as number);
    c.filter = (m) => m.to !== 'c' && m.from !== 'c' && (m.to !== 'b' || m.type === 'snapshot-notify');
    a.raft.step({ type: 'snapshot-status', from: 'b', to: 'a', term: a.raft.currentTerm, status: 'in-progress', noticeId: 0, index: 0, snapshotTerm: 0, configIndex: 0 });
    c.tick('a');
    c.stabilize();
    for (const notice of b.snapshotNotices.splice(0)) {
      // b installs the checkpoint the leader serves: at base + 6, older than b's log. As the driver
      // does: keep the log if it holds the checkpoint's entry, else reset it.
      const at = base + 6;
      assert.ok(notice.firstIndex <= at);
      const term = a.log.term(at) as number;
      if (!b.raft.keepsLogOnInstall(term, at)) b.log.resetToSnapshot(at, term);
      b.raft.snapshotInstalled(term, at, a.raft.committedMembership());
      c.stabilize();
    }
    // a is lost; c comes back. Whoever leads now must hold the entries a and b committed.
    c.nodes.delete('a');
    c.filter = () => true;
    c.tickAll(60);
    const leader = c.leader();
    assert.ok(leader !== undefined);
    assert.ok(leader.raft.lastIndex >= last, `${leader.id} leads with last index ${leader.raft.lastIndex}: committed entries up to ${last} are gone`);
  });
});

test('bug 3: a lone voter sends nothing of a new term, and does not win it, before the term is durable', () => {
  regression('self-vote-before-durable', () => {
    // The primordial SCM alone, a second one joining as a non-voter.
    const { raft, log } = solo('a', { voters: ['a'], nonVoters: ['n'] });
    let rd = null;
    for (let i = 0; i < 30 && rd === null; i++) {
      raft.tick();
      rd = raft.ready();
    }
    assert.ok(rd !== null && rd.hardState !== undefined, 'the campaign produced a new hard state');
    const term = rd.hardState.term;
    assert.deepEqual(rd.messages.filter((m) => m.term >= term), [], 'nothing of the new term may leave before it is durable');
    assert.notEqual(raft.currentRole, 'leader', 'not a leader before its own vote is durable');
    log.append(rd.entries);
    raft.advance();
    assert.equal(raft.currentRole, 'leader', 'the vote counts once durable');
    const next = raft.ready();
    assert.ok(next !== null && only([...next.messages], 'append').length > 0, 'then it replicates to the non-voter');
  });
});

/**
 * Leader a starts a transfer to b whose TimeoutNow is held in the network; `ticksAfter` ticks later
 * (the transfer is abandoned after 10) a is cut off and the TimeoutNow lands. Whatever b manages,
 * a must not answer a linearizable read at an index below what another leader has committed.
 */
function abandonedTransferScenario(ticksAfter: number): void {
  const c = new TestCluster(['a', 'b', 'c'], { leaseRead: true });
  // With lease reads a node votes only an election timeout after it started.
  for (const id of ['b', 'c']) for (let i = 0; i < 10; i++) c.node(id).raft.tick();
  c.elect('a');
  c.propose('a', 'x');
  const held: Message[] = [];
  c.filter = (m) => {
    if (m.type !== 'timeout-now') return true;
    held.push(m);
    return false;
  };
  assert.ok(c.node('a').raft.transferLeadership('b').ok);
  c.stabilize();
  assert.equal(held.length, 1, 'the TimeoutNow went out (and is delayed in the network)');
  c.tickAll(ticksAfter);
  assert.equal(c.node('a').raft.status().leadTransferee, '', 'the transfer was given up');
  // a is cut off; the delayed TimeoutNow reaches b, which campaigns (voters in lease may accept).
  c.filter = (m) => m.from !== 'a' && m.to !== 'a';
  c.node('b').raft.step(held[0] as Message);
  c.stabilize();
  c.node('b').raft.tick();
  c.stabilize();
  const b = c.node('b').raft;
  const a = c.node('a');
  let committedElsewhere = 0;
  if (b.currentRole === 'leader') {
    const y = c.propose('b', 'y');
    if (b.commitIndex >= y) committedElsewhere = y;
  }
  // a still believes it leads; a linearizable read there must not be served at a stale index.
  a.raft.readIndex('r1');
  c.processReadies();
  const served = a.readStates.filter((r) => r.requestId === 'r1' && r.index < committedElsewhere);
  assert.deepEqual(served, [], `a served a read at ${served[0]?.index} while b had committed ${committedElsewhere}`);
}

test('bug 4: no stale lease read when a TimeoutNow lands just after its transfer was abandoned', () => {
  regression('lease-after-abandoned-transfer', () => abandonedTransferScenario(10));
});

test('bug 4: no stale lease read when a TimeoutNow lands long after its transfer was abandoned', () => {
  // a has renewed its lease since; voters must not let the old TimeoutNow past it.
  regression('lease-after-abandoned-transfer', () => abandonedTransferScenario(25));
});

test('a TimeoutNow from anyone but the current leader, or a transfer vote from a non-voter, changes nothing', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const term = c.node('a').raft.currentTerm;
  c.node('b').raft.step({ type: 'timeout-now', from: 'c', to: 'b', term, sentTick: 0 });
  c.processReadies();
  assert.equal(c.node('b').raft.currentRole, 'follower');
  assert.equal(c.node('b').raft.currentTerm, term);
  c.node('b').raft.step({ type: 'vote', from: 'z', to: 'b', term: term + 1, lastIndex: 99, lastTerm: term, transfer: true, transferTick: 1_000_000 });
  assert.equal(c.node('b').raft.currentTerm, term, 'a stranger\'s transfer vote does not get past the lease');
});

test('bug 5: a removed leader of two voters still campaigns until its removal commits', () => {
  regression('removed-voter-stops-campaigning', () => {
    const c = new TestCluster(['a', 'b']);
    c.elect('a');
    // a proposes its own removal; b never receives it, and a loses leadership (check-quorum).
    c.filter = (m) => !(m.from === 'a' && m.to === 'b') && !(m.from === 'b' && m.to === 'a');
    assert.ok(c.node('a').raft.removeServer('a').ok);
    c.stabilize();
    c.tickAll(25);
    assert.notEqual(c.node('a').raft.currentRole, 'leader');
    c.filter = () => true;
    // b needs a's vote (its configuration is {a, b}) and a's log is ahead of b's: only a can win.
    c.tickAll(120);
    const leader = c.leader();
    assert.ok(leader !== undefined, 'a leader exists again');
    c.tickAll(30);
    assert.equal(c.leader()?.id, 'b', 'a committed the change and handed over to b');
    assert.deepEqual(c.node('b').raft.status().membership.voters.map((p) => p.id), ['b']);
  });
});

test('bug 6: a follower that lost acknowledged entries is probed again, with a warning', () => {
  const warnings: string[] = [];
  regression('ignore-rejection-below-match', () => {
    warnings.length = 0;
    const c = new TestCluster(['a', 'b', 'c'], { onWarning: (message) => warnings.push(message) });
    c.elect('a');
    c.propose('a', 'v1');
    const old = c.node('b').log.clone(); // an older copy of b's directories
    for (let i = 2; i <= 6; i++) c.propose('a', `v${i}`);
    const a = c.node('a');
    assert.equal(a.raft.status().progress.find((p) => p.id === 'b')?.match, a.raft.lastIndex);
    // b is restored from the older copy (its term and vote survive, its entries do not).
    const b = c.node('b');
    b.log = old;
    b.raft = new RaftNode(makeConfig('b', 5), old, {
      hardState: { term: a.raft.currentTerm, votedFor: '' },
      membership: membership(['a', 'b', 'c']),
      membershipIndex: 0,
      applied: 0,
    });
    c.propose('a', 'v7');
    c.tickAll(5);
    assert.equal(b.log.lastIndex(), a.log.lastIndex(), 'b caught up again without a leader change');
    assert.equal(c.leader()?.id, 'a');
    assert.ok(warnings.some((w) => /follower b rejected entry \d+ after acknowledging up to \d+: it lost entries/.test(w)), warnings.join('\n'));
  });
});

test('a heartbeat commits only what matches the leader: a follower restored from an older copy holds other entries there', () => {
  regression('heartbeat-commit-unchecked', () => {
    // b's restored log ends with a term-1 entry at 3; the leader's entry 3 (term 2) is committed,
    // and its record of b's match (3) predates the restore.
    const { raft, log } = solo('b', { logTerms: [1, 1, 1], term: 2, commit: 2, applied: 2 });
    raft.step({ type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 3, commitTerm: 2, readRound: 0, sentTick: 1 });
    outbox(raft, log);
    assert.equal(raft.commitIndex, 2, "b committed its own entry 3, which is not the leader's");
    // Where b's entry has the leader's term, the heartbeat's commit is taken as before.
    const same = solo('c', { logTerms: [1, 1, 2], term: 2, commit: 2, applied: 2 });
    same.raft.step({ type: 'heartbeat', from: 'a', to: 'c', term: 2, commit: 3, commitTerm: 2, readRound: 0, sentTick: 1 });
    outbox(same.raft, same.log);
    assert.equal(same.raft.commitIndex, 3);
  });
});

test('Figure 8 and the follower commit bound (mutants the simulation must catch too)', () => {
  regression('follower-commit-bound', () => {
    const { raft, log } = solo('b', { logTerms: [1, 1, 2, 2], term: 3 });
    raft.step({ type: 'append', from: 'a', to: 'b', term: 3, prevIndex: 2, prevTerm: 1, entries: [], commit: 4 });
    outbox(raft, log);
    assert.equal(raft.commitIndex, 2);
  });
  regression('figure8-commit', () => {
    const { raft, log } = solo('s1', { voters: ['s1', 's2', 's3'], logTerms: [1, 2], term: 3, overrides: { preVote: false } });
    for (let i = 0; i < 30 && raft.currentRole !== 'candidate'; i++) raft.tick();
    drain(raft, log);
    raft.step({ type: 'vote-response', from: 's2', to: 's1', term: raft.currentTerm, reject: false });
    outbox(raft, log);
    raft.step({ type: 'append-response', from: 's2', to: 's1', term: raft.currentTerm, reject: false, index: 2, hintIndex: 0, hintTerm: 0 });
    outbox(raft, log);
    assert.equal(raft.commitIndex, 0, 'an entry of an earlier term is not committed by counting replicas');
  });
});

test('messages that break the protocol\'s own rules are refused before they change anything', () => {
  const { raft } = solo('b', { logTerms: [1, 1], term: 2 });
  const bad: Message[] = [
    { type: 'heartbeat', from: 'b', to: 'b', term: 3, commit: 0, commitTerm: 0, readRound: 0, sentTick: 0 },
    { type: 'snapshot-notify', from: 'a', to: 'b', term: 2, firstIndex: 0, prevTerm: 0, noticeId: 1 },
    { type: 'snapshot-status', from: 'a', to: 'b', term: 2, status: 'installed', noticeId: 1, index: 3, snapshotTerm: 1, configIndex: 9 },
    { type: 'append', from: 'a', to: 'b', term: 2, prevIndex: 2, prevTerm: 3, entries: [], commit: 0 },
    { type: 'append', from: 'a', to: 'b', term: 2, prevIndex: 2, prevTerm: 1, entries: [dataEntry(3, 2), dataEntry(4, 1)], commit: 0 },
    { type: 'heartbeat', from: 'a', to: 'b', term: 2 ** 53, commit: 0, commitTerm: 0, readRound: 0, sentTick: 0 },
    { type: 'heartbeat', from: 'a', to: 'b', term: 2, commit: 2, commitTerm: 3, readRound: 0, sentTick: 0 },
  ];
  for (const m of bad) {
    assert.throws(() => raft.step(m), /raft/, JSON.stringify(m));
    assert.equal(raft.currentTerm, 2);
  }
});

test('an answer to a request never sent does not move the term', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const b = c.node('b').raft;
  const term = b.currentTerm;
  const unsolicited: Message[] = [
    { type: 'heartbeat-response', from: 'c', to: 'b', term: term + 50, readRound: 0, sentTick: 0 },
    { type: 'append-response', from: 'c', to: 'b', term: term + 50, reject: true, index: 0, hintIndex: 0, hintTerm: 0 },
    { type: 'vote-response', from: 'c', to: 'b', term: term + 50, reject: false },
    { type: 'snapshot-status', from: 'c', to: 'b', term: term + 50, status: 'installed', noticeId: 1, index: 1, snapshotTerm: 1, configIndex: 0 },
  ];
  for (const m of unsolicited) b.step(m);
  assert.equal(b.currentTerm, term);
  assert.equal(b.leaderId, 'a');
});
