// Each post-heal check passes on a healthy outcome and names the violation on a hand-made bad one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkAcknowledgedEverywhere,
  checkAppliedOnce,
  checkFailedHadNoEffect,
  checkHealBound,
  checkIdsUniqueAndIncreasing,
  checkNoPhantomReads,
  checkNoUnexpectedExit,
  checkReplicasIdentical,
  type NodeTable,
} from './post-heal.js';
import type { ChaosOutcome, HistoryEntry, ListedContainer } from './history.js';

const alloc = (client: string, callId: number, invoke: number, outcome: ChaosOutcome): HistoryEntry => ({
  client,
  callId,
  call: { kind: 'allocate', owner: `${client}/${callId}` },
  invoke,
  complete: outcome.type === 'unknown' ? null : invoke + 1,
  outcome,
  sends: 1,
});
const c = (id: number, owner: string): ListedContainer => ({ id, owner, state: 'OPEN' });
const tables = (...containers: ListedContainer[][]): NodeTable[] => containers.map((cs, i) => ({ node: `scm${i + 1}`, containers: cs }));

const history = [alloc('a', 1, 0, { type: 'ok', id: 1 }), alloc('b', 1, 1, { type: 'ok', id: 2 }), alloc('a', 2, 3, { type: 'ok', id: 3 })];
const good = [c(1, 'a/1'), c(2, 'b/1'), c(3, 'a/2')];

test('every acknowledged allocation must be on every node with its owner', () => {
  assert.deepEqual(checkAcknowledgedEverywhere(history, tables(good, good)), []);
  const v = checkAcknowledgedEverywhere(history, tables(good, [c(1, 'a/1'), c(2, 'b/1')]));
  assert.equal(v.length, 1);
  assert.match(v[0]!.message, /scm2 lacks container #3 acknowledged to a\/2/);
  assert.match(checkAcknowledgedEverywhere(history, tables([c(1, 'a/1'), c(2, 'a/2'), c(3, 'b/1')]))[0]!.message, /holds #2 for a\/2/);
});

test('ids must be unique and increase per client', () => {
  assert.deepEqual(checkIdsUniqueAndIncreasing(history), []);
  assert.match(checkIdsUniqueAndIncreasing([...history, alloc('c', 1, 5, { type: 'ok', id: 2 })])[0]!.message, /#2 was acknowledged to both b\/1 and c\/1/);
  const backwards = [alloc('a', 1, 0, { type: 'ok', id: 5 }), alloc('a', 2, 2, { type: 'ok', id: 4 })];
  assert.match(checkIdsUniqueAndIncreasing(backwards)[0]!.message, /client a got #5 .* then #4/);
});

test('a call applied twice shows as two containers of one owner', () => {
  assert.deepEqual(checkAppliedOnce(tables(good)), []);
  assert.match(checkAppliedOnce(tables([...good, c(4, 'a/2')]))[0]!.message, /call a\/2 created #3 and #4/);
});

test('a refused allocation must leave no container', () => {
  const refused = [...history, alloc('b', 2, 6, { type: 'fail', code: 'FAILED_PRECONDITION', message: 'no pipeline' })];
  assert.deepEqual(checkFailedHadNoEffect(refused, tables(good)), []);
  assert.match(checkFailedHadNoEffect(refused, tables([...good, c(4, 'b/2')]))[0]!.message, /#4 was created by b\/2, which failed with FAILED_PRECONDITION/);
});

test('a read may not return a container whose allocation was not yet asked for', () => {
  const read = (complete: number, containers: ListedContainer[]): HistoryEntry => ({
    client: 'r',
    call: { kind: 'list', startId: 1, count: 10, consistency: 'STALE' },
    invoke: complete - 1,
    complete,
    outcome: { type: 'ok', containers },
    sends: 1,
  });
  assert.deepEqual(checkNoPhantomReads([...history, read(10, good)]), []);
  assert.match(checkNoPhantomReads([...history, read(2, good)])[0]!.message, /#3 of a\/2, which no call had asked for yet/);
  assert.equal(checkNoPhantomReads([...history, read(10, [c(9, 'z/1')])]).length, 1);
});

test('replicas must agree on applied index, digest and table', () => {
  const r = (node: string, appliedIndex: number, digest: string) => ({ node, appliedIndex, digest });
  assert.deepEqual(checkReplicasIdentical([r('scm1', 9, 'aa'), r('scm2', 9, 'aa')], tables(good, good)), []);
  assert.match(checkReplicasIdentical([r('scm1', 9, 'aa'), r('scm2', 8, 'aa')], tables(good, good))[0]!.message, /applied indexes differ: scm1=9 scm2=8/);
  assert.match(checkReplicasIdentical([r('scm1', 9, 'aa'), r('scm2', 9, 'bb')], tables(good, good))[0]!.message, /digests differ/);
  assert.match(checkReplicasIdentical([r('scm1', 9, 'aa')], tables(good, good.slice(0, 2)))[0]!.message, /scm2's container table \(2\) differs/);
});

test('an exit nobody caused and a fault that did not heal in time are violations', () => {
  assert.deepEqual(checkNoUnexpectedExit([]), []);
  assert.match(checkNoUnexpectedExit([{ node: 'scm2', code: 1, signal: null, at: 12_300, tail: 'RaftInvariantError' }])[0]!.message, /scm2 exited by itself at 12.3 s \(code 1/);
  assert.deepEqual(checkHealBound([{ fault: 'kill-leader', healMs: 4_000 }], 60_000), []);
  assert.match(checkHealBound([{ fault: 'kill-leader', healMs: 70_000 }], 60_000)[0]!.message, /kill-leader did not heal within 60 s \(took 70.0 s\)/);
  assert.equal(checkHealBound([{ fault: 'pause-leader', healMs: null }], 60_000).length, 1);
});
