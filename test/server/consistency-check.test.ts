// The consistency checker's judgement and its care with what peers answer, driven through its
// injected dependencies (no cluster): table-driven, as every outcome an operator may read.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConsistencyChecker, judge, type ConsistencyCheckDeps, type ConsistencyCheckResult } from '../../src/server/consistency-check.js';
import type { ConsistencyHash, ConsistencyNodeResult } from '../../src/api/scm-api.js';

const A = 'a'.repeat(64);
const B = 'b'.repeat(64);
const C = 'c'.repeat(64);

const known = (nodeId: string, hash: string): ConsistencyNodeResult => ({ nodeId, state: 'MATCH', hash, detail: '' });
const unknown = (nodeId: string): ConsistencyNodeResult => ({ nodeId, state: 'UNKNOWN', hash: '', detail: 'installed a checkpoint' });
const unreachable = (nodeId: string): ConsistencyNodeResult => ({ nodeId, state: 'UNREACHABLE', hash: '', detail: 'ECONNREFUSED' });

const JUDGEMENTS: { name: string; nodes: ConsistencyNodeResult[]; states: Record<string, string>; consistent: boolean }[] = [
  { name: 'all alike', nodes: [known('s1', A), known('s2', A), known('s3', A)], states: { s1: 'MATCH', s2: 'MATCH', s3: 'MATCH' }, consistent: true },
  { name: 'one follower differs', nodes: [known('s1', A), known('s2', B), known('s3', A)], states: { s1: 'MATCH', s2: 'MISMATCH', s3: 'MATCH' }, consistent: false },
  { name: 'the leader is the one that differs', nodes: [known('s1', B), known('s2', A), known('s3', A)], states: { s1: 'MISMATCH', s2: 'MATCH', s3: 'MATCH' }, consistent: false },
  { name: 'two known, they differ, no majority', nodes: [known('s1', A), known('s2', B), unreachable('s3')], states: { s1: 'MISMATCH', s2: 'MISMATCH', s3: 'UNREACHABLE' }, consistent: false },
  { name: 'all three differ', nodes: [known('s1', A), known('s2', B), known('s3', C)], states: { s1: 'MISMATCH', s2: 'MISMATCH', s3: 'MISMATCH' }, consistent: false },
  // A lone hash proves nothing: a diverged node whose peers cannot answer must not clear its alert.
  { name: 'one known, the others cannot tell', nodes: [known('s1', A), unknown('s2'), unreachable('s3')], states: { s1: 'UNKNOWN', s2: 'UNKNOWN', s3: 'UNREACHABLE' }, consistent: true },
  { name: 'two of three known and alike: a majority', nodes: [known('s1', A), known('s2', A), unreachable('s3')], states: { s1: 'MATCH', s2: 'MATCH', s3: 'UNREACHABLE' }, consistent: true },
  { name: 'five nodes, two differ alike', nodes: [known('s1', A), known('s2', A), known('s3', A), known('s4', B), known('s5', B)], states: { s1: 'MATCH', s2: 'MATCH', s3: 'MATCH', s4: 'MISMATCH', s5: 'MISMATCH' }, consistent: false },
];

for (const row of JUDGEMENTS) {
  test(`judge: ${row.name}`, () => {
    const report = judge(42, new Map(row.nodes.map((n) => [n.nodeId, n])));
    assert.equal(report.index, 42);
    assert.equal(report.consistent, row.consistent);
    assert.deepEqual(Object.fromEntries(report.nodes.map((n) => [n.nodeId, n.state])), row.states);
    for (const n of report.nodes) if (n.state === 'MISMATCH') assert.notEqual(n.detail, '', `${n.nodeId} says why`);
  });
}

interface Harness {
  deps: ConsistencyCheckDeps;
  checked: ConsistencyCheckResult[];
  asked: string[];
  setApplied(index: number): void;
  setLastLogIndex(index: number): void;
}

function harness(peers: Record<string, (index: number) => Promise<ConsistencyHash>>, hashes: Map<number, Promise<string>> = new Map([[10, Promise.resolve(A)]])): Harness {
  let applied = 10;
  let lastLog = 10;
  const checked: ConsistencyCheckResult[] = [];
  const asked: string[] = [];
  const deps: ConsistencyCheckDeps = {
    nodeId: 's1',
    appliedIndex: () => applied,
    lastLogIndex: () => lastLog,
    hashAt: (index) => hashes.get(index),
    members: () => [{ nodeId: 's1', clientAddress: 'self:1' }, ...Object.keys(peers).map((id) => ({ nodeId: id, clientAddress: id === 'noaddr' ? '' : `${id}:1` }))],
    peerHash: (_nodeId, address, index) => {
      asked.push(`${address}@${index}`);
      const id = address.split(':')[0] as string;
      const answer = peers[id];
      return answer === undefined ? Promise.reject(new Error(`no peer ${id}`)) : answer(index);
    },
    sleep: () => Promise.resolve(),
    now: () => 1_700_000_000_000,
    onChecked: (c) => checked.push(c),
    applyWaitMs: 100,
  };
  return { deps, checked, asked, setApplied: (i) => (applied = i), setLastLogIndex: (i) => (lastLog = i) };
}

const answers = (hash: string) => (index: number) => Promise.resolve({ index, known: true, hash, detail: '' });

test('a peer answering about another index or with a malformed hash is not believed', async () => {
  const h = harness({
    s2: (index) => Promise.resolve({ index: index + 1, known: true, hash: B, detail: '' }),
    s3: (index) => Promise.resolve({ index, known: true, hash: 'not-hex', detail: '' }),
    s4: answers(A),
    s5: answers(A),
  });
  const report = await new ConsistencyChecker(h.deps).check(10);
  const byId = Object.fromEntries(report.nodes.map((n) => [n.nodeId, n]));
  assert.equal(byId['s2']?.state, 'UNKNOWN');
  assert.match(byId['s2']?.detail ?? '', /answered about index 11, not 10/);
  assert.equal(byId['s3']?.state, 'UNKNOWN');
  assert.match(byId['s3']?.detail ?? '', /malformed hash/);
  assert.equal(byId['s4']?.state, 'MATCH');
  assert.equal(report.consistent, true);
});

test('an unreachable peer, and one without a client address, are UNREACHABLE with the reason', async () => {
  const h = harness({ s2: () => Promise.reject(new Error('14 UNAVAILABLE: connect ECONNREFUSED')), noaddr: answers(A) });
  const report = await new ConsistencyChecker(h.deps).check(10);
  const byId = Object.fromEntries(report.nodes.map((n) => [n.nodeId, n]));
  assert.deepEqual([byId['s2']?.state, byId['noaddr']?.state], ['UNREACHABLE', 'UNREACHABLE']);
  assert.match(byId['s2']?.detail ?? '', /ECONNREFUSED/);
  assert.match(byId['noaddr']?.detail ?? '', /client address is not configured/);
  assert.ok(!h.asked.some((a) => a.startsWith(':')), 'no call to an empty address');
});

test('this node judges itself: its own state is in the result, and one run serves every asker', async () => {
  const h = harness({ s2: answers(B), s3: answers(B) });
  const checker = new ConsistencyChecker(h.deps);
  const [first, second] = await Promise.all([checker.check(10), checker.check(10)]);
  assert.equal(first, second);
  assert.equal(h.asked.length, 2, 'each peer asked once');
  assert.equal(h.checked.length, 1);
  assert.equal(h.checked[0]?.own, 'MISMATCH');
  assert.equal(checker.latest()?.own, 'MISMATCH');
  assert.equal(checker.latest()?.at, 1_700_000_000_000);
});

test('own hash: waits for the marker to be applied, then says what it cannot know', async () => {
  const hashes = new Map<number, Promise<string>>([[10, Promise.resolve(A)], [12, Promise.reject(new Error('iterator closed'))]]);
  hashes.get(12)?.catch(() => undefined);
  const h = harness({}, hashes);
  const checker = new ConsistencyChecker(h.deps);
  h.setApplied(9);
  let sleeps = 0;
  const deps = { ...h.deps, sleep: () => ((sleeps += 1), sleeps === 3 && h.setApplied(10), Promise.resolve()) };
  assert.deepEqual(await new ConsistencyChecker(deps).ownHash(10), { index: 10, known: true, hash: A, detail: '' });
  assert.equal(sleeps, 3, 'it waited until the marker was applied');
  h.setApplied(9);
  const late = await checker.ownHash(10);
  assert.equal(late.known, false);
  assert.match(late.detail, /applied only up to index 9 after 100 ms/);
  h.setApplied(20);
  assert.match((await checker.ownHash(11)).detail, /not a marker this node applied/);
  assert.match((await checker.ownHash(12)).detail, /hashing scm.db failed: iterator closed/);
  // An index far beyond this node's log is answered at once: a caller cannot hold the call.
  h.setApplied(20);
  h.setLastLogIndex(20);
  sleeps = 0;
  const far = await new ConsistencyChecker(deps).ownHash(2 ** 52);
  assert.deepEqual([far.known, sleeps], [false, 0]);
  assert.match(far.detail, /index 4503599627370496 is far beyond this node's log \(last index 20\)/);
  // A marker just past what this node knows committed (or holds) is waited for.
  sleeps = 0;
  const near = await new ConsistencyChecker(deps).ownHash(21);
  assert.equal(near.known, false);
  assert.ok(sleeps > 0, 'it waited for the marker');
});
