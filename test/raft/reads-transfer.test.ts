// ReadIndex (confirmed by a heartbeat round), lease reads, and leadership transfer.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TestCluster } from './cluster.js';
import { solo } from './helpers.js';

test('ReadIndex is answered only after a quorum confirms leadership', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.propose('a', 'w1');
  const a = c.node('a');
  // Block every heartbeat answer: the read must stay pending.
  c.filter = (m) => m.type !== 'heartbeat-response';
  assert.ok(a.raft.readIndex('r1').ok);
  c.stabilize();
  assert.equal(a.readStates.length, 0);
  c.filter = () => true;
  c.tickAll(1);
  assert.deepEqual(a.readStates, [{ requestId: 'r1', index: a.raft.commitIndex }]);
});

test('ReadIndex waits for the leader to commit an entry of its own term', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  // Hold back every append so the new leader's term-start entry cannot commit.
  c.filter = (m) => m.type !== 'append-response';
  c.elect('a');
  const a = c.node('a');
  assert.equal(a.raft.commitIndex, 0);
  assert.ok(a.raft.readIndex('early').ok);
  c.tickAll(3);
  assert.equal(a.readStates.length, 0, 'no read point before the term commits');
  c.filter = () => true;
  c.tickAll(3);
  assert.equal(a.readStates[0]?.requestId, 'early');
  assert.ok((a.readStates[0]?.index ?? 0) >= 1);
});

test('pending reads are dropped when leadership is lost; followers refuse reads', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const a = c.node('a');
  c.filter = (m) => m.from !== 'a' && m.to !== 'a';
  assert.ok(a.raft.readIndex('doomed').ok);
  for (let i = 0; i < 25; i++) c.tick('a');
  c.stabilize();
  assert.equal(a.raft.currentRole, 'follower');
  assert.deepEqual(a.dropped, ['doomed']);
  const r = c.node('b').raft.readIndex('x');
  assert.equal(r.ok, false);
});

test('lease reads are served without a heartbeat round while the lease holds', () => {
  const c = new TestCluster(['a', 'b', 'c'], { leaseRead: true, checkQuorum: true });
  // With lease reads a fresh node waits one election timeout before voting.
  for (let i = 0; i < 60 && c.leader() === undefined; i++) c.tickAll(1);
  c.tickAll(2); // one acknowledged heartbeat round establishes the lease
  const leader = c.leader();
  assert.ok(leader !== undefined);
  c.filter = (m) => m.type !== 'heartbeat' && m.type !== 'heartbeat-response';
  assert.ok(leader.raft.readIndex('fast').ok);
  c.stabilize();
  assert.equal(leader.readStates.at(-1)?.requestId, 'fast');
  // Once the lease expires (no heartbeat answers for an election timeout), reads need a round.
  for (let i = 0; i < 9; i++) leader.raft.tick();
  c.stabilize();
  assert.ok(leader.raft.readIndex('slow').ok);
  c.stabilize();
  assert.notEqual(leader.readStates.at(-1)?.requestId, 'slow');
});

test('leaseRead without checkQuorum is rejected', () => {
  assert.throws(() => solo('a', { overrides: { leaseRead: true, checkQuorum: false } }), /leaseRead requires checkQuorum/);
});

test('leadership transfer catches the target up, then hands over with TimeoutNow', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  // c misses the latest entries.
  c.filter = (m) => !(m.type === 'append' && m.to === 'c');
  c.propose('a', 'p1');
  c.propose('a', 'p2');
  c.filter = () => true;
  const r = c.node('a').raft.transferLeadership('c');
  assert.ok(r.ok);
  // During the transfer new proposals are refused.
  const p = c.node('a').raft.propose(new Uint8Array([1]));
  assert.equal(p.ok, false);
  c.stabilize();
  c.tickAll(2);
  assert.equal(c.node('c').raft.currentRole, 'leader');
  assert.equal(c.node('a').raft.currentRole, 'follower');
  assert.equal(c.node('c').log.term(3), 1, 'the target had been caught up before campaigning');
});

test('transfer to a non-voter is refused', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const r = c.node('a').raft.transferLeadership('zz');
  assert.equal(r.ok, false);
});

test('an unreachable transfer target: the transfer is abandoned after an election timeout', () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  c.filter = (m) => m.to !== 'c' && m.from !== 'c';
  c.propose('a', 'c-misses-this');
  assert.ok(c.node('a').raft.transferLeadership('c').ok);
  assert.equal(c.node('a').raft.propose(new Uint8Array([1])).ok, false);
  for (let i = 0; i < 10; i++) c.tick('a');
  c.stabilize();
  assert.equal(c.node('a').raft.currentRole, 'leader');
  assert.equal(c.node('a').raft.status().leadTransferee, '');
  assert.equal(c.node('a').raft.propose(new Uint8Array([2])).ok, true);
});
