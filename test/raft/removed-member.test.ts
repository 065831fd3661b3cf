// A member the leader removes learns it was removed: the leader goes on sending it appends and
// heartbeats until it has acknowledged a heartbeat that carried a commit index covering its
// removal (or fell silent for two election timeouts, or would need a checkpoint), so that it holds
// the configuration without itself, committed, applies it, and never campaigns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster, followerBehindLeaderCompaction, makeConfig, membership, peer, type ConfigOverrides } from './cluster.js';
import { RaftNode, memberIds, type Message } from '../../src/raft/index.js';

/** Drops everything to and from c. */
const cutOffC = (m: Message): boolean => m.to !== 'c' && m.from !== 'c';

/**
 * a, leading {a, b, c}, removes c, and the network delivers what `filter` lets through (everything
 * by default); returns the index of the configuration that removed c.
 */
function removeC(options: { filter?: (m: Message) => boolean; overrides?: ConfigOverrides } = {}): { c: TestCluster; removedAt: number } {
  const c = new TestCluster(['a', 'b', 'c'], options.overrides);
  c.elect('a');
  if (options.filter !== undefined) c.filter = options.filter;
  const r = c.node('a').raft.removeServer('c');
  assert.ok(r.ok, r.ok ? '' : r.error);
  c.stabilize();
  return { c, removedAt: r.index };
}

function departingIds(c: TestCluster, leader: string): string[] {
  return c.node(leader).raft.status().departing.map((p) => p.id);
}

/** What `id` is sent and what it sends while the cluster ticks `ticks` times. */
function trafficOf(c: TestCluster, id: string, ticks: number): { to: Message[]; from: Message[] } {
  const to: Message[] = [];
  const from: Message[] = [];
  const before = c.filter;
  c.filter = (m) => {
    if (m.to === id) to.push(m);
    if (m.from === id) from.push(m);
    return before(m);
  };
  c.tickAll(ticks);
  c.filter = before;
  return { to, from };
}

function knows(c: TestCluster, id: string): boolean {
  return !memberIds(c.node(id).raft.committedMembership().membership).includes(id);
}

function assertKnowsItWasRemoved(c: TestCluster, id: string, removedAt: number): void {
  const raft = c.node(id).raft;
  const committed = raft.committedMembership();
  assert.ok(committed.index >= removedAt, `${id} has committed the configuration at ${removedAt} (its committed one is at ${committed.index})`);
  assert.ok(!memberIds(committed.membership).includes(id), `${id}'s committed configuration leaves it out: ${memberIds(committed.membership).join(', ')}`);
  assert.ok(c.node(id).applied.some((e) => e.index === removedAt), `${id} applied the entry that removed it`);
}

test('a follower removed while it runs learns it; the leader then stops sending to it, and it never campaigns', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.propose('a', 'before');
  const r = c.node('a').raft.removeServer('c');
  assert.ok(r.ok);
  c.stabilize();
  assert.deepEqual(departingIds(c, 'a'), ['c'], 'committed, but c has not been told yet');
  c.tickAll(3);
  assertKnowsItWasRemoved(c, 'c', r.index);
  assert.equal(c.node('c').raft.currentRole, 'non-voter', 'it says it no longer stands for election');
  assert.deepEqual(departingIds(c, 'a'), [], 'told and acknowledged');
  assert.ok(!c.node('a').raft.status().progress.some((p) => p.id === 'c'), 'no progress for a non-member');

  const { to, from } = trafficOf(c, 'c', 40);
  assert.deepEqual(to.map((m) => m.type), [], 'the leader sends it nothing more');
  assert.deepEqual(from.map((m) => m.type), [], 'it does not campaign');
  assert.equal(c.node('a').raft.currentRole, 'leader');
  c.propose('a', 'after');
  assert.equal(c.node('b').log.lastIndex(), c.node('a').log.lastIndex());
});

test('a removed follower that does not answer is told for two election timeouts of silence, then dropped', () => {
  const { c } = removeC({ filter: cutOffC });
  assert.deepEqual(departingIds(c, 'a'), ['c']);
  const early = trafficOf(c, 'c', 10);
  assert.ok(early.to.length > 0, 'still sent to while it may be alive');
  c.tickAll(12);
  assert.deepEqual(departingIds(c, 'a'), [], 'silent for two election timeouts: dropped');
  assert.deepEqual(trafficOf(c, 'c', 10).to, []);
  assert.equal(c.node('a').raft.purgeFloor(true), c.node('a').raft.lastIndex + 1, 'it never held the log back');
});

test('a removed follower does not hold the log back, and one that would need a checkpoint is dropped instead of sent one', () => {
  const { c } = removeC({ filter: cutOffC });
  for (let i = 0; i < 5; i++) c.propose('a', `v${i}`);
  assert.equal(c.node('a').raft.purgeFloor(true), c.node('a').raft.lastIndex + 1, 'c holds nothing');
  c.compact('a', 5);
  c.filter = () => true;
  const { to } = trafficOf(c, 'c', 3);
  assert.deepEqual(to.filter((m) => m.type === 'snapshot-notify'), []);
  assert.deepEqual(departingIds(c, 'a'), []);
  assert.deepEqual(c.node('c').snapshotNotices, []);
});

test('a member added back while the leader still tells it of its removal keeps its place', () => {
  const { c } = removeC();
  assert.deepEqual(departingIds(c, 'a'), ['c']);
  assert.ok(c.node('a').raft.addNonVoter(peer('c'), true).ok);
  assert.deepEqual(departingIds(c, 'a'), [], 'a member again');
  c.stabilize();
  c.tickAll(5);
  const m = c.node('a').raft.status().membership;
  assert.deepEqual(m.voters.map((p) => p.id).sort(), ['a', 'b', 'c'], 'promoted again');
  assert.ok(memberIds(c.node('c').raft.committedMembership().membership).includes('c'));
  c.propose('a', 'after');
  assert.equal(c.node('c').log.lastIndex(), c.node('a').log.lastIndex());
});

test('a new leader tells a member removed by a configuration it inherited uncommitted', () => {
  const c = new TestCluster(['a', 'b', 'c', 'd']);
  c.elect('a');
  // The removal of d reaches b and c, not d; a hears no answer, so it is not committed, and then
  // a is cut off for good.
  c.filter = (m) => !(m.from === 'a' && m.to === 'd') && m.to !== 'a';
  const r = c.node('a').raft.removeServer('d');
  assert.ok(r.ok);
  c.stabilize();
  assert.ok(c.node('b').log.lastIndex() >= r.index && c.node('d').log.lastIndex() < r.index);
  c.filter = (m) => m.from !== 'a' && m.to !== 'a';
  for (let i = 0; i < 100 && ['b', 'c'].every((id) => c.node(id).raft.currentRole !== 'leader'); i++) c.tickAll(1);
  const leader = ['b', 'c'].find((id) => c.node(id).raft.currentRole === 'leader');
  assert.ok(leader !== undefined, 'b or c leads');
  c.tickAll(3);
  assertKnowsItWasRemoved(c, 'd', r.index);
  assert.deepEqual(departingIds(c, leader), []);
  assert.deepEqual(trafficOf(c, 'd', 30).from, [], 'd does not campaign');
});

test('heartbeats acknowledged before the removal commits do not count as telling', () => {
  // b's acknowledgements are lost for a while: c holds the removal and answers heartbeats, but the
  // removal is not committed.
  const { c, removedAt } = removeC({ filter: (m) => !(m.from === 'b' && m.type === 'append-response') });
  c.tickAll(3);
  assert.ok(c.node('a').raft.commitIndex < removedAt, 'not committed yet');
  assert.deepEqual(departingIds(c, 'a'), ['c'], 'still telling c');
  c.filter = () => true;
  c.tickAll(5);
  assertKnowsItWasRemoved(c, 'c', removedAt);
  assert.deepEqual(departingIds(c, 'a'), []);
});

test('the answer to a heartbeat of the same tick, sent before the one that carried the commit, does not count as telling', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const a = c.node('a').raft;
  const r = a.removeServer('c');
  assert.ok(r.ok);
  c.processReadies();
  const deliver = (pick: (m: Message) => boolean): void => {
    const k = c.queue.findIndex(pick);
    assert.ok(k >= 0, 'the message to deliver is queued');
    const [m] = c.queue.splice(k, 1) as [Message];
    c.node(m.to).raft.step(m);
    c.processReadies();
  };
  deliver((m) => m.type === 'append' && m.to === 'c');
  deliver((m) => m.type === 'append-response' && m.from === 'c');
  c.tick('a'); // h1 carries a commit index below the removal
  const h1 = c.queue.find((m) => m.type === 'heartbeat' && m.to === 'c');
  assert.ok(h1?.type === 'heartbeat' && h1.commit < r.index);
  deliver((m) => m.type === 'append' && m.to === 'b');
  deliver((m) => m.type === 'append-response' && m.from === 'b');
  assert.ok(a.commitIndex >= r.index);
  // A read sends heartbeats again in the same tick; h2 carries the commit, and is lost.
  assert.ok(a.readIndex('x').ok);
  c.processReadies();
  const h2 = c.queue.filter((m) => m.type === 'heartbeat' && m.to === 'c').at(-1);
  assert.ok(h2?.type === 'heartbeat' && h2.commit >= r.index && h2.sentTick === h1.sentTick);
  c.queue = c.queue.filter((m) => m !== h2);
  deliver((m) => m === h1);
  deliver((m) => m.type === 'heartbeat-response' && m.from === 'c');
  assert.ok(!knows(c, 'c'), 'c was not told');
  assert.deepEqual(departingIds(c, 'a'), ['c'], 'so the leader still tells it');
  c.tickAll(3);
  assertKnowsItWasRemoved(c, 'c', r.index);
});

test('a heartbeat whose commit index the leader can no longer name the term of does not count as telling', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const a = c.node('a');
  // c gets the removal entry and acknowledges it; every later append to it, and every heartbeat
  // until the leader purged past the removal, is lost.
  let acked = false;
  c.filter = (m) => {
    if (m.from === 'c' && m.type === 'append-response' && !m.reject) acked = true;
    return !(m.to === 'c' && (m.type === 'heartbeat' || (m.type === 'append' && acked)));
  };
  const r = a.raft.removeServer('c');
  assert.ok(r.ok);
  c.stabilize();
  assert.equal(c.node('c').log.lastIndex(), r.index);
  for (let i = 0; i < 5; i++) c.propose('a', `v${i}`);
  c.compact('a', r.index + 2);
  assert.equal(a.raft.logTerm(r.index), undefined);
  const heartbeats: Message[] = [];
  c.filter = (m) => {
    if (m.to === 'c' && m.type === 'heartbeat') heartbeats.push(m);
    return !(m.to === 'c' && m.type === 'append');
  };
  c.tickAll(3);
  assert.ok(heartbeats.length >= 2 && heartbeats.every((m) => m.type === 'heartbeat' && m.commitTerm === 0), 'c is sent commit indexes of unknown term');
  assert.ok(!knows(c, 'c'));
  assert.deepEqual(departingIds(c, 'a'), ['c'], 'answered, but not told: still telling');
});

test('a leader that steps down tells no one any more', () => {
  const { c } = removeC({ filter: cutOffC });
  const before = c.node('a').raft.departuresVersion;
  assert.deepEqual(departingIds(c, 'a'), ['c']);
  c.filter = (m) => m.to !== 'c' && m.from !== 'c' && m.from !== 'a' && m.to !== 'a';
  for (let i = 0; i < 100 && c.node('b').raft.currentRole !== 'leader'; i++) c.tickAll(1);
  c.filter = (m) => m.to !== 'c' && m.from !== 'c';
  c.tickAll(2);
  assert.notEqual(c.node('a').raft.currentRole, 'leader');
  assert.deepEqual(departingIds(c, 'a'), []);
  assert.equal(c.node('a').raft.isTellingOfRemoval('c'), false);
  assert.notEqual(c.node('a').raft.departuresVersion, before, 'the caller learns its links may go');
});

test('a member removed while it was asked to install a checkpoint is not asked again', () => {
  const { c, a } = followerBehindLeaderCompaction();
  assert.equal(a.raft.status().progress.find((p) => p.id === 'c')?.state, 'snapshot');
  assert.ok(a.raft.removeServer('c').ok);
  c.stabilize();
  const { to } = trafficOf(c, 'c', 3);
  assert.deepEqual(to.filter((m) => m.type === 'snapshot-notify'), []);
  assert.deepEqual(departingIds(c, 'a'), []);
});

test('a removed member that missed being told asks for votes later, and the leader tells it then', () => {
  const { c, removedAt } = removeC({ filter: cutOffC });
  const version = c.node('a').raft.departuresVersion;
  c.tickAll(25);
  assert.deepEqual(departingIds(c, 'a'), [], 'silent for two election timeouts: dropped');
  assert.notEqual(c.node('a').raft.departuresVersion, version, 'the caller learns its link may go');
  assert.ok(!knows(c, 'c'));
  // c is back (as a node restarted without the commit index it was told would be): its pre-votes
  // reach the leader, which tells it.
  c.filter = () => true;
  for (let i = 0; i < 40 && !knows(c, 'c'); i++) c.tickAll(1);
  assertKnowsItWasRemoved(c, 'c', removedAt);
  c.tickAll(3);
  assert.deepEqual(departingIds(c, 'a'), []);
  const { to, from } = trafficOf(c, 'c', 40);
  assert.deepEqual([...to, ...from].map((m) => m.type), [], 'told: quiet for good');
  assert.equal(c.node('a').raft.currentRole, 'leader');
});

test('a removed member asking for votes that would need a checkpoint is not sent one', () => {
  const { c } = removeC({ filter: cutOffC });
  for (let i = 0; i < 5; i++) c.propose('a', `v${i}`);
  const a = c.node('a');
  c.compact('a', 5);
  c.tickAll(25);
  c.filter = () => true;
  const { to, from } = trafficOf(c, 'c', 40);
  assert.ok(from.some((m) => m.type === 'pre-vote'), 'c asks for votes');
  assert.ok(to.some((m) => m.type === 'append'), 'the leader probes it');
  assert.deepEqual(to.filter((m) => m.type === 'snapshot-notify'), []);
  assert.deepEqual(c.node('c').snapshotNotices, []);
  assert.equal(a.raft.currentRole, 'leader');
  assert.ok(!a.raft.status().progress.some((p) => p.id === 'c'));
});

test('with pre-vote off, a removed member back with a higher term neither deposes the leader nor is told', () => {
  const { c } = removeC({ filter: cutOffC, overrides: { preVote: false } });
  c.tickAll(60); // c, cut off, runs elections: its term rises; a stops telling it meanwhile
  const term = c.node('a').raft.currentTerm;
  assert.ok(c.node('c').raft.currentTerm > term);
  assert.deepEqual(departingIds(c, 'a'), []);
  c.filter = () => true;
  for (let i = 0; i < 40; i++) {
    c.tickAll(1);
    assert.equal(c.node('a').raft.currentRole, 'leader', `a is deposed at tick ${i}`);
    assert.equal(c.node('a').raft.currentTerm, term);
  }
});

test('with pre-vote off, a removed member that moves to a higher term while it is told is dropped, not obeyed', () => {
  const { c } = removeC({ filter: cutOffC, overrides: { preVote: false } });
  // Cut off for less than two election timeouts: still told, while c's elections raise its term.
  for (let i = 0; i < 18 && c.node('c').raft.currentTerm <= c.node('a').raft.currentTerm; i++) c.tickAll(1);
  const term = c.node('a').raft.currentTerm;
  assert.ok(c.node('c').raft.currentTerm > term, 'c ran an election');
  assert.deepEqual(departingIds(c, 'a'), ['c']);
  c.filter = () => true;
  c.tickAll(5);
  assert.equal(c.node('a').raft.currentRole, 'leader');
  assert.equal(c.node('a').raft.currentTerm, term);
  assert.deepEqual(departingIds(c, 'a'), []);
});

test('a leader restarted with a lagging commit index tells a server its log added and removed above it, until it commits the latest configuration', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.addNode('y', membership([]));
  assert.ok(c.node('a').raft.addNonVoter(peer('y'), true).ok);
  c.stabilize();
  c.tickAll(8);
  assert.ok(memberIds(c.node('y').raft.committedMembership().membership).includes('y'), 'y is a voter, committed');
  c.filter = (m) => m.to !== 'y' && m.from !== 'y';
  const r = c.node('a').raft.removeServer('y');
  assert.ok(r.ok);
  c.stabilize();
  c.tickAll(2);
  // b restarts knowing no commit (its scm.db applied nothing): its log holds y's add, promotion and removal.
  const b = c.node('b');
  b.raft = new RaftNode(makeConfig('b', 7), b.log, { hardState: { term: b.raft.currentTerm, votedFor: b.raft.status().votedFor }, membership: membership(['a', 'b', 'c']), membershipIndex: 0, applied: 0 });
  assert.equal(b.raft.committedMembership().index, 0);
  // a is gone; c's acknowledgements are held back, so b's first entry does not commit yet.
  let holdC = true;
  c.filter = (m) => m.to !== 'a' && m.from !== 'a' && m.to !== 'y' && m.from !== 'y' && !(holdC && m.from === 'c' && m.type === 'append-response');
  for (let i = 0; i < 100 && b.raft.currentRole !== 'leader'; i++) c.tickAll(1);
  assert.equal(b.raft.currentRole, 'leader');
  assert.ok(b.raft.commitIndex < r.index);
  assert.deepEqual(departingIds(c, 'b'), ['y'], 'a server of an uncommitted configuration above the commit index');
  c.filter = (m) => m.to !== 'a' && m.from !== 'a' && !(holdC && m.from === 'c' && m.type === 'append-response');
  c.tickAll(10);
  assert.ok(b.raft.isTellingOfRemoval('y'), 'not told while the removal is not committed');
  holdC = false;
  c.tickAll(5);
  assertKnowsItWasRemoved(c, 'y', r.index);
  assert.deepEqual(departingIds(c, 'b'), []);
});

test('a removed member that loses its removal after the telling heartbeat left is told again', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.propose('a', 'x');
  const cNode = c.node('c');
  const older = cNode.log.clone();
  const hardState = { term: cNode.raft.currentTerm, votedFor: cNode.raft.status().votedFor };
  const r = c.node('a').raft.removeServer('c');
  assert.ok(r.ok);
  c.stabilize();
  assert.ok(c.node('a').raft.commitIndex >= r.index && cNode.log.lastIndex() >= r.index);
  // c is restored from a copy of its directories taken before the removal reached it.
  cNode.log = older;
  cNode.raft = new RaftNode(makeConfig('c', 5), older, { hardState, membership: membership(['a', 'b', 'c']), membershipIndex: 0, applied: 0 });
  c.filter = (m) => !(m.to === 'c' && m.type === 'append');
  c.tickAll(5);
  assert.ok(!knows(c, 'c'));
  assert.ok(c.node('a').raft.isTellingOfRemoval('c'), 'a went on telling c, which lost its removal');
  c.filter = () => true;
  c.tickAll(5);
  assertKnowsItWasRemoved(c, 'c', r.index);
});
