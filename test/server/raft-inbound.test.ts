// The Raft port's checks before the Raft loop (src/server/raft-inbound.ts), on a real RaftNode: each
// kind of bad message is dropped, counted by reason and logged once per peer and reason, with what
// is remembered and logged bounded however many senders a flood invents.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Message } from '../../src/raft/index.js';
import type { RaftDropReason } from '../../src/metrics/node-metrics.js';
import { encodeRaftMessage } from '../../src/server/raft-codec.js';
import { DROP_REPORT_INTERVAL_MS, DROP_REPORTS_PER_INTERVAL, DROP_WARNED_MAX, RaftInbound } from '../../src/server/raft-inbound.js';
import { TestCluster, membership } from '../raft/cluster.js';
import { memberIds } from '../../src/raft/index.js';

function setup(configuredPeers: string[] = ['a', 'c'], authenticated = false, now?: () => number) {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const b = c.node('b');
  const dropped: RaftDropReason[] = [];
  const warnings: string[] = [];
  const accepted: Message[] = [];
  const inbound = new RaftInbound({
    selfId: 'b',
    core: () => b.raft,
    configuredPeers,
    step: (m) => {
      try {
        b.raft.step(m);
        return undefined;
      } catch (err) {
        return err as Error;
      }
    },
    accepted: (m) => accepted.push(m),
    dropped: (reason) => dropped.push(reason),
    warn: (_fields, message) => warnings.push(message),
    ...(authenticated ? { authenticatedSenders: (peer: string, detail: string) => `Raft stream of node ${peer} refused: ${detail}` } : {}),
    ...(now !== undefined ? { now } : {}),
  });
  return { c, b, inbound, dropped, warnings, accepted };
}

const heartbeat = (from: string, to: string, term: number): Message => ({ type: 'heartbeat', from, to, term, commit: 0, commitTerm: 0, readRound: 0, sentTick: 0 });

test('bytes that do not decode, or carry a term beyond 2^52, end the stream and change nothing', () => {
  const { b, inbound, dropped } = setup();
  const term = b.raft.currentTerm;
  assert.match(inbound.receive('a', [new Uint8Array([0xff, 0xff, 0xff])])?.message ?? '', /malformed Raft message from a/);
  // The packet that once crashed every node: a heartbeat response of term 2^53 - 1.
  const huge = encodeRaftMessage({ type: 'heartbeat-response', from: 'a', to: 'b', term: 2 ** 53 - 1, readRound: 0, sentTick: 0 });
  assert.match(inbound.receive('a', [huge])?.message ?? '', /above the largest term or index a node accepts/);
  assert.deepEqual(dropped, ['malformed', 'malformed']);
  assert.equal(b.raft.currentTerm, term);
});

test('misaddressed, spoofed, stranger and rule-breaking messages are dropped by reason; members get through', () => {
  const { b, inbound, dropped, accepted } = setup();
  const term = b.raft.currentTerm;
  inbound.receive('a', [encodeRaftMessage(heartbeat('a', 'c', term))]);
  // c's connection carrying a message that claims to be from a (the leader).
  inbound.receive('c', [encodeRaftMessage(heartbeat('a', 'b', term + 1000))]);
  // A stranger inflating the term.
  inbound.receive('zz', [encodeRaftMessage(heartbeat('zz', 'b', term + 1000))]);
  // An append whose entries go back in term (the core refuses it).
  const bad: Message = {
    type: 'append', from: 'a', to: 'b', term, prevIndex: b.raft.lastIndex, prevTerm: term, commit: 0,
    entries: [{ term: term - 1, index: b.raft.lastIndex + 1, payload: { kind: 'data', data: new Uint8Array([1]) } }],
  };
  inbound.receive('a', [encodeRaftMessage(bad)]);
  assert.deepEqual(dropped, ['misaddressed', 'sender_mismatch', 'non_member', 'invalid']);
  assert.equal(b.raft.currentTerm, term, 'no term moved');
  inbound.receive('a', [encodeRaftMessage(heartbeat('a', 'b', term))]);
  assert.equal(accepted.length, 1);
});

test('a leader the follower\'s configuration does not know yet is heard if the configuration file names it', () => {
  // b's group is {a, b, c}; d, added since (b missed it), now leads. ozone-site.xml lists d.
  const { b, inbound, dropped } = setup(['a', 'c', 'd']);
  assert.deepEqual(b.raft.status().membership, membership(['a', 'b', 'c']));
  inbound.receive('d', [encodeRaftMessage(heartbeat('d', 'b', b.raft.currentTerm + 1))]);
  assert.deepEqual(dropped, []);
  assert.equal(b.raft.leaderId, 'd');
});

test('each peer and reason is logged once, and counted every time', () => {
  const { inbound, dropped, warnings } = setup();
  for (let i = 0; i < 5; i++) inbound.receive('zz', [encodeRaftMessage(heartbeat('zz', 'b', 99))]);
  inbound.receive('yy', [encodeRaftMessage(heartbeat('yy', 'b', 99))]);
  assert.equal(dropped.length, 6);
  assert.equal(warnings.length, 2);
  assert.match(warnings[0] ?? '', /dropped a Raft message from zz \(non_member\)/);
});

test('a flood of invented senders: every drop counted, the pairs remembered and the lines logged bounded, the first drop of each reason still logged', () => {
  let clock = 1_000_000;
  const { inbound, dropped, warnings } = setup(['a', 'c'], false, () => clock);
  // What a plaintext HELLO may claim: a new 256-byte sender per stream (the tester's flood).
  const sender = (i: number): string => `x${i}-`.padEnd(256, 'A');
  const flood = 10_000;
  for (let i = 0; i < flood; i++) inbound.receive(sender(i), [encodeRaftMessage(heartbeat(sender(i), 'b', 99))]);
  assert.equal(dropped.length, flood, 'every drop counted');
  assert.ok(dropped.every((r) => r === 'non_member'));
  assert.equal(warnings.length, DROP_REPORTS_PER_INTERVAL, 'the lines of one reason in one window');
  assert.match(warnings[0] ?? '', new RegExp(`dropped a Raft message from ${sender(0)} \\(non_member\\)`));
  assert.ok(inbound.warnedPairs <= DROP_WARNED_MAX, `${inbound.warnedPairs} pairs remembered`);

  // Another reason has its own lines: a member's misaddressed message is still named at once.
  inbound.receive('a', [encodeRaftMessage(heartbeat('a', 'c', 1))]);
  assert.equal(warnings.length, DROP_REPORTS_PER_INTERVAL + 1);
  assert.match(warnings.at(-1) ?? '', /from a \(misaddressed\)/);

  // A window later the next line says how many went unlogged meanwhile.
  clock += DROP_REPORT_INTERVAL_MS;
  inbound.receive('late', [encodeRaftMessage(heartbeat('late', 'b', 99))]);
  assert.match(warnings.at(-1) ?? '', new RegExp(`from late \\(non_member\\).*; ${flood - DROP_REPORTS_PER_INTERVAL} more non_member drop\\(s\\) .* went unlogged`));

  // Windows go by under the flood: the pairs remembered stay bounded, the lines at the limit per window.
  for (let window = 0; window < 20; window++) {
    clock += DROP_REPORT_INTERVAL_MS;
    for (let i = 0; i < 100; i++) inbound.receive(sender(flood + window * 100 + i), [encodeRaftMessage(heartbeat(sender(flood + window * 100 + i), 'b', 99))]);
    assert.ok(inbound.warnedPairs <= DROP_WARNED_MAX, `${inbound.warnedPairs} pairs remembered after window ${window}`);
  }
  assert.equal(warnings.length, DROP_REPORTS_PER_INTERVAL + 2 + 20 * DROP_REPORTS_PER_INTERVAL);
  assert.equal(dropped.length, flood + 2 + 20 * 100, 'every drop counted');
});

test('on authenticated (TLS) streams a message naming another sender ends the stream with PERMISSION_DENIED', () => {
  const { b, inbound, dropped, accepted } = setup(['a', 'c'], true);
  const term = b.raft.currentTerm;
  const refusal = inbound.receive('c', [encodeRaftMessage(heartbeat('a', 'b', term + 1000)), encodeRaftMessage(heartbeat('c', 'b', term))]);
  assert.deepEqual(refusal, { code: 'PERMISSION_DENIED', message: "Raft stream of node c refused: a heartbeat naming a as its sender on c's connection" });
  assert.deepEqual(dropped, ['sender_mismatch']);
  assert.equal(accepted.length, 0, 'nothing after the lie is taken either');
  assert.equal(b.raft.currentTerm, term);
});

test("on a leader, a removed member's answers get through while it is told of its removal, and only then", () => {
  const c = new TestCluster(['a', 'b', 'c']);
  c.elect('a');
  const a = c.node('a');
  const dropped: RaftDropReason[] = [];
  const accepted: Message[] = [];
  // The configuration file does not name c (it was added at run time): only the core vouches for it.
  const inbound = new RaftInbound({
    selfId: 'a',
    core: () => a.raft,
    configuredPeers: ['b'],
    step: (m) => {
      a.raft.step(m);
      return undefined;
    },
    accepted: (m) => accepted.push(m),
    dropped: (reason) => dropped.push(reason),
    warn: () => undefined,
  });
  const answer = (): Message => ({ type: 'heartbeat-response', from: 'c', to: 'a', term: a.raft.currentTerm, readRound: 0, sentTick: 0 });
  assert.ok(a.raft.removeServer('c').ok);
  c.stabilize();
  assert.ok(!memberIds(a.raft.committedMembership().membership).includes('c'), 'the removal is committed');
  assert.equal(a.raft.isTellingOfRemoval('c'), true);
  assert.equal(inbound.receive('c', [encodeRaftMessage(answer())]), undefined);
  assert.deepEqual([accepted.length, dropped], [1, []]);
  c.tickAll(3);
  assert.equal(a.raft.isTellingOfRemoval('c'), false, 'told');
  inbound.receive('c', [encodeRaftMessage(answer())]);
  assert.deepEqual([accepted.length, dropped], [1, ['non_member']]);
});
