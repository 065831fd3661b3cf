// How a leader tells followers that their entries committed. The commit index rides on every append
// and heartbeat; an empty append that carries nothing but a commit advance leaves only when the
// caller asks for it (forwardCommit(), which the driver calls a few milliseconds after a commit
// unless an append carried it meanwhile) or at the next tick. Under a steady stream of proposals
// the next append carries the commit, and the follower is spared a message, a Ready, an answer and
// an apply of its own per entry; when writes stop, followers still learn the commit within the
// driver's delay (and at worst one tick).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/raft/index.js';
import { only } from './helpers.js';
import { TestCluster, dataTexts } from './cluster.js';

/** Delivers the queued messages of `c` until none are left, without ticking. */
function deliverAll(c: TestCluster): Message[] {
  const seen: Message[] = [];
  c.processReadies();
  while (c.queue.length > 0) {
    const m = c.queue.shift() as Message;
    seen.push(m);
    c.node(m.to).raft.step(m);
    c.processReadies();
  }
  return seen;
}

function committedEverywhere(heartbeatTicks = 1): TestCluster {
  const c = new TestCluster(['a', 'b', 'c'], { heartbeatTicks });
  c.elect('a');
  c.forwardCommit(); // followers learn the commit of the leader's first entry
  return c;
}

test('a commit advance alone waits for forwardCommit(): no empty append right after the commit', () => {
  const c = committedEverywhere();
  const a = c.node('a');
  const r = a.raft.propose(new TextEncoder().encode('x'));
  assert.ok(r.ok);
  const seen = deliverAll(c);
  assert.equal(a.raft.commitIndex, r.index, 'the leader committed');
  const appends = only(seen, 'append').filter((m) => m.from === 'a');
  assert.equal(appends.length, 2, 'one append per follower: the entry; no commit-only append follows');
  assert.deepEqual(dataTexts(c.node('b').applied), [], 'b has not heard of the commit yet');
  assert.ok(a.raft.commitForwardPending(), 'the leader knows followers have not been sent the commit');

  a.raft.forwardCommit();
  const forwarded = deliverAll(c);
  const empty = only(forwarded, 'append').filter((m) => m.from === 'a');
  assert.equal(empty.length, 2);
  assert.ok(empty.every((m) => m.entries.length === 0 && m.commit === r.index));
  for (const id of ['b', 'c']) assert.deepEqual(dataTexts(c.node(id).applied), ['x'], id);
  assert.equal(a.raft.commitForwardPending(), false);
});

test('the next append carries the commit of the entry before it', () => {
  const c = committedEverywhere();
  const a = c.node('a');
  assert.ok(a.raft.propose(new TextEncoder().encode('x')).ok);
  deliverAll(c);
  const r2 = a.raft.propose(new TextEncoder().encode('y'));
  assert.ok(r2.ok);
  const seen = deliverAll(c);
  const appends = only(seen, 'append').filter((m) => m.from === 'a');
  assert.equal(appends.length, 2, 'only the appends carrying y');
  assert.ok(appends.every((m) => m.entries.length === 1 && m.commit === r2.index - 1));
  for (const id of ['b', 'c']) assert.deepEqual(dataTexts(c.node(id).applied), ['x'], `${id} applied x from the append carrying y`);
});

test('a tick forwards a pending commit advance (the bound when the caller never asks)', () => {
  for (const heartbeatTicks of [1, 3]) {
    const c = committedEverywhere(heartbeatTicks);
    const a = c.node('a');
    const r = a.raft.propose(new TextEncoder().encode('x'));
    assert.ok(r.ok);
    deliverAll(c);
    assert.deepEqual(dataTexts(c.node('b').applied), []);
    a.raft.tick();
    const seen = deliverAll(c);
    // A heartbeat due at this tick carries it; otherwise an empty append does.
    const carrier = heartbeatTicks === 1 ? 'heartbeat' : 'append';
    assert.ok(seen.some((m) => m.from === 'a' && m.to === 'b' && m.type === carrier && m.commit === r.index), `heartbeatTicks ${heartbeatTicks}`);
    for (const id of ['b', 'c']) assert.deepEqual(dataTexts(c.node(id).applied), ['x'], `${id}, heartbeatTicks ${heartbeatTicks}`);
  }
});

test('forwardCommit() on a follower, or with nothing pending, sends nothing', () => {
  const c = committedEverywhere();
  c.node('b').raft.forwardCommit();
  c.node('a').raft.forwardCommit();
  assert.equal(c.node('a').raft.commitForwardPending(), false);
  assert.equal(c.node('b').raft.commitForwardPending(), false);
  assert.deepEqual(deliverAll(c), []);
});
