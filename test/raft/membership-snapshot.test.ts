// One-server-at-a-time membership changes and snapshot-notification install/resume.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, dataTexts, followerBehindLeaderCompaction, membership, peer } from './cluster.js';
import { only, outbox, solo } from './helpers.js';
import type { Message } from '../../src/raft/index.js';

test('a new server joins as a non-voter and is promoted automatically once caught up', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.propose('a', 'before-d');
  const d = c.addNode('d', membership([]));
  const r = c.node('a').raft.addNonVoter(peer('d'), true);
  assert.ok(r.ok);
  c.stabilize();
  c.tickAll(3);
  const m = c.node('a').raft.status().membership;
  assert.deepEqual(m.voters.map((p) => p.id).sort(), ['a', 'b', 'c', 'd']);
  assert.deepEqual(m.nonVoters, []);
  assert.deepEqual(dataTexts(d.applied), ['before-d']);
  assert.equal(d.raft.currentRole, 'follower');
});

test('a joining member slower than the others is promoted once within the catch-up gap, not only at the commit index', () => {
  // d joins; its acknowledgements lag: the one for the entry that added it arrives only after a,
  // b and c have committed LAG more entries (the later ones never arrive in this test). d is live,
  // streaming, holds its own configuration entry, and LAG behind as far as the leader knows.
  const LAG = 10;
  for (const { gap, promoted } of [
    { gap: undefined, promoted: true }, // the default, 1000
    { gap: LAG, promoted: true },
    { gap: LAG - 1, promoted: false },
    { gap: 0, promoted: false }, // the exact rule
  ]) {
    const c = new TestCluster(['a', 'b', 'c'], { maxBytesPerMsg: 1, ...(gap === undefined ? {} : { promotionCatchUpGap: gap }) });
    c.elect('a');
    c.propose('a', 'before-d');
    c.addNode('d', membership([]));
    const held: Message[] = [];
    c.filter = (m) => {
      if (m.from === 'd' && m.type === 'append-response' && !m.reject && m.index >= 2) {
        held.push(m);
        return false;
      }
      return true;
    };
    const add = c.node('a').raft.addNonVoter(peer('d'), true);
    assert.ok(add.ok);
    for (let i = 0; i < LAG; i++) c.propose('a', `w${i}`);
    const a = c.node('a').raft;
    const late = held.find((m) => m.type === 'append-response' && m.index === add.index);
    assert.ok(late !== undefined, `gap ${gap}: d acknowledged the entry that added it`);
    a.step(late);
    c.stabilize();
    const progress = a.status().progress.find((p) => p.id === 'd');
    assert.equal(progress?.state, 'replicate', `gap ${gap}: d streams appends`);
    c.tickAll(2);
    const voters = a.status().membership.voters.map((p) => p.id);
    assert.equal(voters.includes('d'), promoted, `gap ${gap}: voters ${voters.join()}`);
    // (Once promoted, the promotion itself is one more entry d has not acknowledged.)
    const behind = a.commitIndex - (a.status().progress.find((p) => p.id === 'd')?.match ?? 0);
    assert.equal(behind, promoted ? LAG + 1 : LAG, `gap ${gap}: how far d is behind the commit index`);
  }
});

test('at most one uncommitted configuration change', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.filter = (m) => m.type !== 'append-response';
  const first = c.node('a').raft.addNonVoter(peer('d'));
  assert.ok(first.ok);
  const second = c.node('a').raft.removeServer('b');
  assert.equal(second.ok, false);
  assert.match(second.ok ? '' : second.error, /already in progress/);
  c.filter = () => true;
  c.tickAll(2);
  assert.ok(c.node('a').raft.removeServer('b').ok);
});

test('configuration rules: bad changes are refused with a reason', () => {
  const c = new TestCluster(['a']);
  c.elect('a');
  const a = c.node('a').raft;
  assert.match(String(a.removeServer('a').ok === false && (a.removeServer('a') as { error: string }).error), /no voters/);
  assert.equal(a.promote('a').ok, false);
  assert.equal(a.removeServer('zz').ok, false);
  assert.throws(() => a.addNonVoter({ id: '', address: 'x', priority: 0 }), /empty id/);
  const follower = new TestCluster(['a', 'b', 'c']).node('b').raft;
  assert.equal(follower.addNonVoter(peer('d')).ok, false);
});

test('a non-voter replicates but does not count toward commit', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.addNode('d', membership([]));
  assert.ok(c.node('a').raft.addNonVoter(peer('d')).ok);
  c.stabilize();
  c.filter = (m) => !(m.type === 'append' && (m.to === 'b' || m.to === 'c'));
  const r = c.node('a').raft.propose(new TextEncoder().encode('needs-voters'));
  assert.ok(r.ok);
  c.stabilize();
  assert.equal(c.node('d').log.lastIndex(), r.index, 'the non-voter has the entry');
  assert.ok(c.node('a').raft.commitIndex < r.index, 'leader + non-voter is not a quorum');
});

test('removing the leader: it steps down once the change commits and hands over', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  assert.ok(c.node('a').raft.removeServer('a').ok);
  c.stabilize();
  c.tickAll(3);
  assert.notEqual(c.node('a').raft.currentRole, 'leader');
  const leader = c.leader();
  assert.ok(leader !== undefined && leader.id !== 'a');
  assert.deepEqual(leader.raft.status().membership.voters.map((p) => p.id).sort(), ['b', 'c']);
  // The removed node never campaigns again.
  for (let i = 0; i < 50; i++) c.tick('a');
  assert.equal(c.node('a').raft.currentRole, 'non-voter');
  c.propose(leader.id, 'after-removal');
  assert.deepEqual(dataTexts(c.node('b').applied), ['after-removal']);
});

test('a follower rolls back to the previous configuration when a config entry is truncated', () => {
  const { raft, log } = solo('b', { term: 2 });
  const cfg = { kind: 'config' as const, peers: [peer('a'), peer('b'), peer('c'), peer('d')], listeners: [] };
  raft.step({ type: 'append', from: 'a', to: 'b', term: 2, prevIndex: 0, prevTerm: 0, entries: [{ index: 1, term: 2, payload: cfg }], commit: 0 });
  outbox(raft, log);
  assert.equal(raft.status().membership.voters.length, 4);
  raft.step({ type: 'append', from: 'c', to: 'b', term: 3, prevIndex: 0, prevTerm: 0, entries: [{ index: 1, term: 3, payload: { kind: 'data', data: new Uint8Array([1]) } }], commit: 0 });
  outbox(raft, log);
  assert.equal(raft.status().membership.voters.length, 3);
});

test('snapshot notification: leader pauses appends, follower installs, leader resumes after it', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.filter = (m) => m.to !== 'c' && m.from !== 'c';
  for (let i = 0; i < 10; i++) c.propose('a', `v${i}`);
  // a and b compact their logs below 8 (everything up to 11 is applied).
  for (const id of ['a', 'b']) c.compact(id, 8);
  c.filter = () => true;
  c.tickAll(2);
  const cNode = c.node('c');
  assert.equal(cNode.snapshotNotices.length, 1);
  assert.equal(cNode.snapshotNotices[0]?.leaderId, 'a');
  assert.equal(cNode.snapshotNotices[0]?.firstIndex, 9);
  const pr = c.node('a').raft.status().progress.find((p) => p.id === 'c');
  assert.equal(pr?.state, 'snapshot');
  // While installing, c answers in-progress and gets no appends.
  c.propose('a', 'during-install');
  assert.equal(cNode.log.lastIndex(), 1);
  // c "downloads" a's state machine at a's applied index and resets its log there.
  const a = c.node('a');
  const at = a.raft.appliedIndex;
  cNode.log.resetToSnapshot(at, a.log.term(at) as number);
  cNode.raft.snapshotInstalled(a.log.term(at) as number, at, a.raft.committedMembership());
  c.stabilize();
  c.tickAll(2);
  assert.equal(c.node('a').raft.status().progress.find((p) => p.id === 'c')?.state, 'replicate');
  assert.equal(cNode.log.lastIndex(), a.log.lastIndex());
  assert.equal(cNode.raft.commitIndex, a.raft.commitIndex);
});

test('snapshot notification: already-installed and failed installs', () => {
  // Already installed: the follower's commit index covers everything the leader purged.
  const { raft, log } = solo('b', { logTerms: [1, 1, 1, 1], term: 1, commit: 4 });
  raft.step({ type: 'snapshot-notify', from: 'a', to: 'b', term: 1, firstIndex: 4, prevTerm: 1, noticeId: 3 });
  const st = only(outbox(raft, log), 'snapshot-status');
  assert.deepEqual([st[0]?.status, st[0]?.index, st[0]?.noticeId], ['already-installed', 4, 3]);
  // Failed: the follower reports unavailable and takes the next notification again.
  const f = solo('c', { logTerms: [1], term: 1 });
  f.raft.step({ type: 'snapshot-notify', from: 'a', to: 'c', term: 1, firstIndex: 10, prevTerm: 1, noticeId: 5 });
  const rd = f.raft.ready();
  assert.equal(rd?.snapshotNotice?.firstIndex, 10);
  f.raft.advance();
  f.raft.snapshotInstallFailed();
  const failed = only(outbox(f.raft, f.log), 'snapshot-status')[0];
  assert.deepEqual([failed?.status, failed?.noticeId], ['unavailable', 5]);
  f.raft.step({ type: 'snapshot-notify', from: 'a', to: 'c', term: 1, firstIndex: 10, prevTerm: 1, noticeId: 5 });
  assert.equal(f.raft.ready()?.snapshotNotice?.firstIndex, 10);
});

test('installing a snapshot older than what is applied is refused', () => {
  const { raft } = solo('b', { logTerms: [1, 1, 1], term: 1, commit: 3, applied: 3 });
  assert.throws(() => raft.snapshotInstalled(1, 2, { index: 0, membership: membership(['a', 'b', 'c']) }), /below the applied index/);
});

test('after an install the follower hands out the entries that follow, whether it kept or reset its log', () => {
  for (const keep of [true, false]) {
    // b applied 3 of 20 entries; it installs a checkpoint at 17 (the simulator found a follower that
    // then never handed its next entries to the caller: the install left a stale hand-out mark).
    const { raft, log } = solo('b', { logTerms: Array.from({ length: keep ? 20 : 3 }, () => 1), term: 1, commit: 3, applied: 3 });
    raft.step({ type: 'snapshot-notify', from: 'a', to: 'b', term: 1, firstIndex: 12, prevTerm: 0, noticeId: 1 });
    outbox(raft, log);
    assert.equal(raft.keepsLogOnInstall(1, 17), keep);
    if (!keep) log.resetToSnapshot(17, 1);
    raft.snapshotInstalled(1, 17, { index: 0, membership: membership(['a', 'b', 'c']) });
    outbox(raft, log);
    const next = keep ? 21 : 18;
    const entries = [{ index: next, term: 1, payload: { kind: 'data' as const, data: new Uint8Array([7]) } }];
    raft.step({ type: 'append', from: 'a', to: 'b', term: 1, prevIndex: next - 1, prevTerm: 1, entries, commit: next });
    const rd = raft.ready();
    assert.deepEqual(rd?.entries.map((e) => e.index), [next], keep ? 'kept log' : 'reset log');
  }
});

test('a joining member that catches up by an install is promoted without waiting for a write', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  for (let i = 0; i < 10; i++) c.propose('a', `v${i}`);
  const a = c.node('a');
  c.compact('a', 8);
  const d = c.addNode('d', membership([]));
  assert.ok(a.raft.addNonVoter(peer('d'), true).ok);
  c.stabilize();
  const notice = d.snapshotNotices.at(-1);
  assert.ok(notice !== undefined, 'd was asked to install');
  // d installs a's state; nothing is written afterwards.
  const at = a.raft.appliedIndex;
  d.log.resetToSnapshot(at, a.log.term(at) as number);
  d.raft.snapshotInstalled(a.log.term(at) as number, at, a.raft.committedMembership());
  c.stabilize();
  c.tickAll(3);
  assert.deepEqual(a.raft.status().membership.voters.map((p) => p.id).sort(), ['a', 'b', 'c', 'd']);
});

test('the leader holds purging back while a follower installs, and stops holding when it goes quiet', () => {
  const { c, a } = followerBehindLeaderCompaction();
  assert.equal(a.raft.status().progress.find((p) => p.id === 'c')?.state, 'snapshot');
  for (const holdForLiveFollowers of [true, false]) {
    assert.equal(a.raft.purgeFloor(holdForLiveFollowers), 9, 'c will resume at or after the first index it was told about');
  }
  // c goes quiet (crashed while installing): after check-quorum rounds without it, no hold for it.
  c.filter = (m) => m.to !== 'c' && m.from !== 'c';
  c.tickAll(25);
  assert.equal(a.raft.purgeFloor(false), undefined);
  assert.equal(a.raft.purgeFloor(true), a.raft.lastIndex + 1, 'only b (caught up) holds anything');
});

test('a follower silent while it swaps its checkpoint in holds what it resumes from past a check-quorum round, for two election timeouts', () => {
  // The node's install swaps scm.db in between Readies: the follower answers nothing meanwhile (1.4 s
  // once in a chaos run, against an election timeout of 1 s), and the leader, writing on, purged past
  // it and sent it to install again, over and over.
  const { c, a } = followerBehindLeaderCompaction();
  assert.equal(a.raft.status().progress.find((p) => p.id === 'c')?.state, 'snapshot');
  c.filter = (m) => m.to !== 'c' && m.from !== 'c';
  c.tickAll(12); // one check-quorum round (10 ticks) has passed without c
  assert.equal(a.raft.status().progress.find((p) => p.id === 'c')?.recentActive, false);
  for (const holdForLiveFollowers of [true, false]) {
    assert.equal(a.raft.purgeFloor(holdForLiveFollowers), 9, 'c, silent for 1.2 election timeouts, still holds what it resumes from');
  }
  c.tickAll(9); // 21 ticks of silence: past two election timeouts
  assert.equal(a.raft.purgeFloor(false), undefined, 'a follower silent for longer (crashed) holds nothing');
});

test('the leader keeps what a live follower still needs, so catching up never turns into another install', () => {
  // c answers heartbeats but its appends are lost for a while: live, and behind.
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.propose('a', 'v0');
  const a = c.node('a');
  const caughtUpTo = a.raft.lastIndex;
  c.filter = (m) => !(m.to === 'c' && m.type === 'append');
  for (let i = 1; i < 10; i++) c.propose('a', `v${i}`);
  c.tickAll(3);
  const cMatch = a.raft.status().progress.find((p) => p.id === 'c')?.match;
  assert.equal(cMatch, caughtUpTo);
  assert.equal(a.raft.purgeFloor(true), caughtUpTo + 1, 'c still needs everything after its match');
  assert.equal(a.raft.purgeFloor(false), undefined, 'purging up to the snapshot index: nobody is installing');
  // Once its appends get through it catches up, and holds only what it does not have yet.
  c.filter = () => true;
  c.tickAll(3);
  assert.equal(a.raft.status().progress.find((p) => p.id === 'c')?.match, a.raft.lastIndex);
  assert.equal(a.raft.purgeFloor(true), a.raft.lastIndex + 1);
  // A follower that goes quiet (crashed, cut off) holds nothing after a check-quorum round: it
  // installs a checkpoint when it comes back rather than pinning the leader's log meanwhile.
  c.filter = (m) => m.to !== 'c' && m.from !== 'c';
  for (let i = 10; i < 15; i++) c.propose('a', `v${i}`);
  c.tickAll(25);
  assert.equal(a.raft.purgeFloor(true), a.raft.lastIndex + 1, 'b is caught up; quiet c holds nothing');
});

test('an installed member catching up under writes keeps its entries until it has them', () => {
  const { c, a } = followerBehindLeaderCompaction();
  const cNode = c.node('c');
  const notice = cNode.snapshotNotices.at(-1);
  assert.ok(notice !== undefined, 'c was asked to install');
  // c installs a's state at 11; meanwhile (and after) the leader goes on writing, and c's first
  // appends after the install are slow to arrive.
  const at = a.raft.appliedIndex;
  c.filter = (m) => !(m.to === 'c' && m.type === 'append');
  cNode.log.resetToSnapshot(at, a.log.term(at) as number);
  cNode.raft.snapshotInstalled(a.log.term(at) as number, at, a.raft.committedMembership());
  c.stabilize();
  for (let i = 10; i < 20; i++) c.propose('a', `w${i}`);
  assert.equal(a.raft.status().progress.find((p) => p.id === 'c')?.match, at);
  assert.equal(a.raft.purgeFloor(true), at + 1, 'what c needs next is kept');
  // The leader takes a snapshot point at its applied index and purges as the driver does.
  const below = Math.min(a.raft.appliedIndex, a.raft.purgeFloor(true) ?? Number.MAX_SAFE_INTEGER);
  a.log.compact(below - 1);
  a.raft.compacted(below - 1, a.log.term(below - 1) as number);
  c.filter = () => true;
  c.tickAll(3);
  assert.equal(a.raft.status().progress.find((p) => p.id === 'c')?.state, 'replicate', 'c caught up by appends, without another notice');
  assert.equal(cNode.snapshotNotices.length, 1);
});

test('a joining member is not promoted before it holds the entry that added it, nor while its answers do not arrive: a lone voter keeps committing', () => {
  const c = new TestCluster(['a'], { maxBytesPerMsg: 1 });
  c.elect('a');
  for (let i = 0; i < 10; i++) c.propose('a', `v${i}`);
  const d = c.addNode('d', membership([]));
  // d answers heartbeats and takes the first two entries; every later append is lost on the way
  // (a link or disk sick for data, fine for heartbeats).
  let first = true;
  c.filter = (m) => {
    if (m.to !== 'd' || m.type !== 'append') return true;
    if (first) {
      first = false;
      return true;
    }
    return m.prevIndex < 2;
  };
  const add = c.node('a').raft.addNonVoter(peer('d'), true);
  assert.ok(add.ok);
  c.stabilize();
  c.tickAll(3);
  assert.ok(d.raft.lastIndex < add.index, 'd never received the entry that added it');
  const a = c.node('a').raft;
  assert.deepEqual(a.status().membership.voters.map((p) => p.id), ['a'], 'd is not promoted');
  const write = a.propose(new TextEncoder().encode('after'));
  assert.ok(write.ok);
  c.stabilize();
  c.tickAll(30);
  assert.ok(a.commitIndex >= write.index, `a commits alone (commit ${a.commitIndex}, write at ${write.index})`);
});

test('a follower that answers heartbeats but gets no append through holds the log back only for two election timeouts', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.propose('a', 'v0');
  const heldAt = c.node('a').raft.status().progress.find((p) => p.id === 'c')!.match + 1;
  c.filter = (m) => !(m.to === 'c' && m.type === 'append');
  for (let i = 0; i < 20; i++) c.propose('a', `w${i}`);
  const a = c.node('a').raft;
  assert.equal(a.purgeFloor(true), heldAt, 'right after it fell behind, c holds what it needs');
  c.tickAll(2 * 10 + 1);
  assert.equal(a.status().progress.find((p) => p.id === 'c')?.recentActive, true, 'c still answers heartbeats');
  assert.equal(a.purgeFloor(true), a.lastIndex + 1, 'c made no progress for two election timeouts: it holds nothing (b is caught up)');
});

test('a new leader does not hold its log for a follower still installing what the previous leader asked for', () => {
  const { c } = followerBehindLeaderCompaction();
  assert.equal(c.node('c').snapshotNotices.length, 1, 'c is installing (it never finishes here)');
  c.filter = (m) => m.to !== 'a' && m.from !== 'a';
  for (let k = 0; k < 200 && c.node('b').raft.status().role !== 'leader'; k++) c.tickAll(1);
  const b = c.node('b').raft;
  assert.equal(b.status().role, 'leader');
  for (let i = 0; i < 30; i++) c.propose('b', `w${i}`);
  c.tickAll(5);
  assert.equal(b.status().progress.find((p) => p.id === 'c')?.match, 0, "b has not confirmed c's match");
  assert.equal(b.purgeFloor(true), undefined, 'c holds nothing for b');
});

test('a member added but not yet promoted when leadership moves is promoted by the next leader', () => {
  for (const promoteNonVoters of [true, false]) {
    const c = new TestCluster(['a', 'b', 'c'], { promoteNonVoters });
    c.elect('a');
    c.propose('a', 'x');
    c.addNode('d', membership([]), { promoteNonVoters });
    c.filter = (m) => m.to !== 'd' && m.from !== 'd';
    assert.ok(c.node('a').raft.addNonVoter(peer('d'), true).ok);
    c.stabilize();
    c.filter = (m) => m.to !== 'a' && m.from !== 'a' && m.to !== 'd' && m.from !== 'd';
    for (let k = 0; k < 200 && c.leader()?.id !== 'b' && c.leader()?.id !== 'c'; k++) c.tickAll(1);
    const leader = c.leader()!.id;
    assert.notEqual(leader, 'a');
    c.filter = () => true;
    for (let i = 0; i < 5; i++) c.propose(leader, `y${i}`);
    c.tickAll(20);
    const voters = c.node(leader).raft.status().membership.voters.map((p) => p.id);
    assert.equal(voters.includes('d'), promoteNonVoters, `promoteNonVoters ${promoteNonVoters}: voters ${voters.join()}`);
  }
});
