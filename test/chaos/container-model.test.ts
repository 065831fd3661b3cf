// The container-table linearizability check on hand-made histories: it accepts what a correct SCM
// may answer (concurrent calls in either order, unknown outcomes either way) and catches the
// violations a broken replica or a lost acknowledgement would show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkContainerHistory, ContainerTable, recordedOrderProblem } from './container-model.js';
import { checkLinearizableFrontier } from '../checker/frontier.js';
import type { Operation } from '../checker/linearizability.js';
import { checkContainerHistoryWgl } from './container-model-wgl.js';
import { randomContainerHistory } from './random-history.js';
import { SeededRandom } from '../../src/raft/random.js';
import type { ChaosCall, ChaosOutcome, HistoryEntry, ListedContainer } from './history.js';

let nextCall = 1;
function entry(client: string, call: ChaosCall, invoke: number, complete: number | null, outcome: ChaosOutcome): HistoryEntry {
  return { client, callId: nextCall++, call, invoke, complete, outcome, sends: 1 };
}
const alloc = (client: string, owner: string, t0: number, t1: number | null, id?: number): HistoryEntry =>
  entry(client, { kind: 'allocate', owner }, t0, t1, id === undefined ? { type: 'unknown', code: 'DEADLINE_EXCEEDED', message: '' } : { type: 'ok', id });
const list = (t0: number, t1: number, containers: ListedContainer[], startId = 1, count = 100): HistoryEntry =>
  entry('r', { kind: 'list', startId, count, consistency: 'LINEARIZABLE' }, t0, t1, { type: 'ok', containers });
const c = (id: number, owner: string, state: ListedContainer['state'] = 'OPEN'): ListedContainer => ({ id, owner, state });
const get = (client: string, id: number, t0: number, t1: number, state: ListedContainer['state'] | 'absent'): HistoryEntry =>
  entry(client, { kind: 'get', id, consistency: 'LINEARIZABLE' }, t0, t1, { type: 'ok', state });
const update = (client: string, id: number, event: 'FINALIZE' | 'QUASI_CLOSE' | 'CLOSE' | 'DELETE', t0: number, t1: number | null, outcome: ChaosOutcome): HistoryEntry =>
  entry(client, { kind: 'update', id, event }, t0, t1, outcome);
const ok = (state: ListedContainer['state']): ChaosOutcome => ({ type: 'ok', state });
const unknown: ChaosOutcome = { type: 'unknown', code: 'DEADLINE_EXCEEDED', message: '' };

/** One kind of violation: a history that shows it, its final table, and the call the report must name. */
interface ViolationCase {
  readonly kind: string;
  readonly history: () => HistoryEntry[];
  readonly finalTable: ListedContainer[];
  readonly names: RegExp;
}

const VIOLATIONS: ViolationCase[] = [
  {
    kind: 'lost acknowledged allocation (a later list no longer has it)',
    history: () => [alloc('a', 'a/1', 0, 1, 1), alloc('a', 'a/2', 2, 3, 2), list(4, 5, [c(1, 'a/1')])],
    finalTable: [c(1, 'a/1'), c(2, 'a/2')],
    names: /list from 1 count 100 LINEARIZABLE -> \[1:OPEN\]/,
  },
  {
    kind: 'lost acknowledged allocation (its id handed out again)',
    history: () => [alloc('a', 'a/1', 0, 1, 1), alloc('b', 'b/1', 2, 3, 1)],
    finalTable: [c(1, 'b/1')],
    names: /b#\d+ allocate owner=b\/1 -> #1/,
  },
  {
    kind: 'duplicate id for concurrent allocations',
    history: () => [alloc('a', 'a/1', 0, 10, 1), alloc('b', 'b/1', 1, 5, 1)],
    finalTable: [c(1, 'b/1')],
    names: /allocate owner=\w\/1 -> #1/,
  },
  {
    kind: 'an id that skips one (a gap nobody allocated)',
    history: () => [alloc('a', 'a/1', 0, 1, 1), alloc('a', 'a/2', 2, 3, 3)],
    finalTable: [c(1, 'a/1'), c(3, 'a/2')],
    names: /allocate owner=a\/2 -> #3/,
  },
  {
    kind: 'stale linearizable read of a container (an acknowledged state change missing)',
    history: () => [alloc('a', 'a/1', 0, 1, 1), update('a', 1, 'FINALIZE', 2, 3, ok('CLOSING')), get('b', 1, 4, 5, 'OPEN')],
    finalTable: [c(1, 'a/1', 'CLOSING')],
    names: /get #1 LINEARIZABLE -> OPEN \[4, 5\]/,
  },
  {
    kind: 'stale linearizable read of an acknowledged allocation (absent)',
    history: () => [alloc('a', 'a/1', 0, 1, 1), get('b', 1, 2, 3, 'absent')],
    finalTable: [c(1, 'a/1')],
    names: /get #1 LINEARIZABLE -> absent/,
  },
  {
    kind: 'a read from the future (sees a change invoked after it completed)',
    history: () => [alloc('a', 'a/1', 0, 1, 1), get('b', 1, 2, 3, 'CLOSING'), update('a', 1, 'FINALIZE', 4, 5, ok('CLOSING'))],
    finalTable: [c(1, 'a/1', 'CLOSING')],
    names: /get #1 LINEARIZABLE -> CLOSING/,
  },
  {
    kind: 'impossible lifecycle transition acknowledged (CLOSE on OPEN)',
    history: () => [alloc('a', 'a/1', 0, 1, 1), update('a', 1, 'CLOSE', 2, 3, ok('CLOSED'))],
    finalTable: [c(1, 'a/1', 'CLOSED')],
    names: /update #1 CLOSE -> CLOSED/,
  },
  {
    kind: 'a valid transition refused (FINALIZE on OPEN)',
    history: () => [alloc('a', 'a/1', 0, 1, 1), update('a', 1, 'FINALIZE', 2, 3, { type: 'fail', code: 'FAILED_PRECONDITION', message: '' })],
    finalTable: [c(1, 'a/1')],
    names: /update #1 FINALIZE fail FAILED_PRECONDITION/,
  },
  {
    kind: 'NOT_FOUND for an acknowledged container',
    history: () => [alloc('a', 'a/1', 0, 1, 1), update('a', 1, 'FINALIZE', 2, 3, { type: 'fail', code: 'NOT_FOUND', message: '' })],
    finalTable: [c(1, 'a/1')],
    names: /update #1 FINALIZE fail NOT_FOUND/,
  },
  {
    kind: 'list missing an acknowledged container in the middle (a hole)',
    history: () => [alloc('a', 'a/1', 0, 1, 1), alloc('a', 'a/2', 2, 3, 2), alloc('a', 'a/3', 4, 5, 3), list(6, 7, [c(1, 'a/1'), c(3, 'a/3')])],
    finalTable: [c(1, 'a/1'), c(2, 'a/2'), c(3, 'a/3')],
    names: /list from 1 count 100 LINEARIZABLE -> \[1:OPEN 3:OPEN\]/,
  },
  {
    kind: 'list showing a container in a state it never had',
    history: () => [alloc('a', 'a/1', 0, 1, 1), list(2, 3, [c(1, 'a/1', 'CLOSED')])],
    finalTable: [c(1, 'a/1')],
    names: /list from 1 count 100 LINEARIZABLE -> \[1:CLOSED\]/,
  },
  {
    kind: 'an unknown allocation placed out of order (took #1, invoked after #2 was acknowledged)',
    history: () => [alloc('b', 'b/1', 0, 1, 2), alloc('a', 'a/1', 5, null)],
    finalTable: [c(1, 'a/1'), c(2, 'b/1')],
    // #2 cannot be acknowledged before anyone asked for #1.
    names: /b#\d+ allocate owner=b\/1 -> #2 \[0, 1\] fits nowhere before it completed/,
  },
  {
    kind: 'an unknown allocation whose id was acknowledged to another call',
    history: () => [alloc('a', 'a/1', 0, 1, 1), alloc('b', 'b/1', 2, null)],
    finalTable: [c(1, 'a/1'), c(1, 'b/1')],
    names: /b#\d+ allocate owner=b\/1 unknown DEADLINE_EXCEEDED \(took #1\).* is known to have taken effect but fits nowhere after its invocation/,
  },
  {
    kind: 'an unknown state change seen, then unseen',
    history: () => [alloc('a', 'a/1', 0, 1, 1), update('a', 1, 'FINALIZE', 2, null, unknown), get('b', 1, 3, 4, 'CLOSING'), get('b', 1, 5, 6, 'OPEN')],
    finalTable: [c(1, 'a/1', 'CLOSING')],
    names: /get #1 LINEARIZABLE -> OPEN \[5, 6\]/,
  },
];

for (const v of VIOLATIONS) {
  test(`violation: ${v.kind}`, () => {
    const result = checkContainerHistory(v.history(), v.finalTable);
    assert.ok(!result.ok && !result.inconclusive, `the check must report it: ${JSON.stringify(result)}`);
    assert.match(result.explanation, v.names);
    // The reference search agrees it is a violation.
    assert.equal(checkContainerHistoryWgl(v.history(), v.finalTable).ok, false);
  });
}

test('unknown allocations in the final table may have taken their ids in the other order', () => {
  // b/1 was invoked first but took #2: both must be placed, a/1 first.
  const h = [alloc('b', 'b/1', 0, null), alloc('a', 'a/1', 1, null), get('c', 2, 5, 6, 'OPEN')];
  const final = [c(1, 'a/1'), c(2, 'b/1')];
  assert.equal(checkContainerHistory(h, final).ok, true);
  assert.equal(checkContainerHistoryWgl(h, final).ok, true);
});

test('a valid history with many clients, long overlaps and many unknown outcomes passes', () => {
  // A correct SCM run sequentially under eight clients, a tenth of whose calls never answer.
  const h = randomContainerHistory(new SeededRandom(20261205), { clients: 8, calls: 3_000, unknownRate: 0.1 });
  assert.ok(h.history.filter((e) => e.outcome.type === 'unknown').length > 100);
  const result = checkContainerHistory(h.history, h.finalTable);
  assert.equal(result.ok, true, result.ok ? '' : result.explanation);
});

test('sequential allocations, a state change and reads that see them are linearizable', () => {
  const h = [
    alloc('a', 'a/1', 0, 1, 1),
    alloc('a', 'a/2', 2, 3, 2),
    entry('b', { kind: 'update', id: 1, event: 'FINALIZE' }, 4, 5, { type: 'ok', state: 'CLOSING' }),
    entry('b', { kind: 'get', id: 1, consistency: 'LINEARIZABLE' }, 6, 7, { type: 'ok', state: 'CLOSING' }),
    entry('b', { kind: 'get', id: 3, consistency: 'LINEARIZABLE' }, 6, 7, { type: 'ok', state: 'absent' }),
    list(8, 9, [c(1, 'a/1', 'CLOSING'), c(2, 'a/2')]),
  ];
  assert.deepEqual(checkContainerHistory(h, [c(1, 'a/1', 'CLOSING'), c(2, 'a/2')]).ok, true);
});

test('concurrent allocations may take their ids in either order, but not the same id', () => {
  const ok = [alloc('a', 'a/1', 0, 10, 2), alloc('b', 'b/1', 1, 5, 1)];
  assert.equal(checkContainerHistory(ok, [c(1, 'b/1'), c(2, 'a/1')]).ok, true);
  const dup = [alloc('a', 'a/1', 0, 10, 1), alloc('b', 'b/1', 1, 5, 1)];
  assert.equal(checkContainerHistory(dup, [c(1, 'b/1')]).ok, false);
});

test('an id that goes back after an acknowledged allocation is a violation', () => {
  const h = [alloc('a', 'a/1', 0, 1, 1), alloc('a', 'a/2', 2, 3, 2), alloc('b', 'b/1', 4, 5, 2)];
  const result = checkContainerHistory(h, [c(1, 'a/1'), c(2, 'a/2')]);
  assert.equal(result.ok, false);
  assert.ok(!result.ok && !result.inconclusive);
  assert.match(!result.ok ? result.explanation : '', /b#\d+ allocate owner=b\/1 -> #2/);
});

test('a linearizable read that misses an acknowledged allocation (a stale leader) is a violation', () => {
  const h = [alloc('a', 'a/1', 0, 1, 1), entry('b', { kind: 'get', id: 1, consistency: 'LINEARIZABLE' }, 2, 3, { type: 'ok', state: 'absent' })];
  assert.equal(checkContainerHistory(h, [c(1, 'a/1')]).ok, false);
  // The same answer on a STALE read is allowed: it is left out of the model.
  const stale = [alloc('a', 'a/1', 0, 1, 1), entry('b', { kind: 'get', id: 1, consistency: 'STALE' }, 2, 3, { type: 'ok', state: 'absent' })];
  assert.equal(checkContainerHistory(stale, [c(1, 'a/1')]).ok, true);
});

test('an unknown allocation found in the final table must fit somewhere after its invocation', () => {
  // It took id 1 although the client never heard: a later allocation then gets 2.
  const h = [alloc('a', 'a/1', 0, null), alloc('b', 'b/1', 5, 6, 2), list(7, 8, [c(1, 'a/1'), c(2, 'b/1')])];
  assert.equal(checkContainerHistory(h, [c(1, 'a/1'), c(2, 'b/1')]).ok, true);
  // Not in the final table: it never took effect, and b's allocation must then be #1.
  assert.equal(checkContainerHistory([alloc('a', 'a/1', 0, null), alloc('b', 'b/1', 5, 6, 1)], [c(1, 'b/1')]).ok, true);
  // In the table as #1, but invoked after b's allocation of #2 completed: impossible.
  const late = [alloc('b', 'b/1', 0, 1, 2), alloc('a', 'a/1', 5, null)];
  assert.equal(checkContainerHistory(late, [c(1, 'a/1'), c(2, 'b/1')]).ok, false);
});

test('an unknown state change may have happened or not; a refused one must have been invalid then', () => {
  const base = [alloc('a', 'a/1', 0, 1, 1)];
  const unknown = entry('a', { kind: 'update', id: 1, event: 'FINALIZE' }, 2, null, { type: 'unknown', code: 'DEADLINE_EXCEEDED', message: '' });
  const seesOpen = entry('b', { kind: 'get', id: 1, consistency: 'LINEARIZABLE' }, 3, 4, { type: 'ok', state: 'OPEN' });
  const seesClosing = entry('b', { kind: 'get', id: 1, consistency: 'LINEARIZABLE' }, 5, 6, { type: 'ok', state: 'CLOSING' });
  assert.equal(checkContainerHistory([...base, unknown, seesOpen, seesClosing], [c(1, 'a/1', 'CLOSING')]).ok, true);
  assert.equal(checkContainerHistory([...base, unknown, seesOpen], [c(1, 'a/1')]).ok, true);
  const seesOpenAgain = entry('b', { kind: 'get', id: 1, consistency: 'LINEARIZABLE' }, 7, 8, { type: 'ok', state: 'OPEN' });
  assert.equal(checkContainerHistory([...base, unknown, seesClosing, seesOpenAgain], [c(1, 'a/1', 'CLOSING')]).ok, false);

  const refused = entry('a', { kind: 'update', id: 1, event: 'CLOSE' }, 2, 3, { type: 'fail', code: 'FAILED_PRECONDITION', message: 'invalid' });
  assert.equal(checkContainerHistory([...base, refused], [c(1, 'a/1')]).ok, true, 'CLOSE on OPEN is invalid');
  const wrongRefusal = entry('a', { kind: 'update', id: 1, event: 'FINALIZE' }, 2, 3, { type: 'fail', code: 'FAILED_PRECONDITION', message: 'invalid' });
  assert.equal(checkContainerHistory([...base, wrongRefusal], [c(1, 'a/1')]).ok, false, 'FINALIZE on OPEN is valid');
  const notFound = entry('a', { kind: 'update', id: 1, event: 'FINALIZE' }, 2, 3, { type: 'fail', code: 'NOT_FOUND', message: 'no #1' });
  assert.equal(checkContainerHistory([...base, notFound], [c(1, 'a/1')]).ok, false, 'NOT_FOUND for an acknowledged container');
});

test('a list must show the whole range in id order with current states', () => {
  const h = [alloc('a', 'a/1', 0, 1, 1), alloc('a', 'a/2', 2, 3, 2), alloc('a', 'a/3', 4, 5, 3)];
  const final = [c(1, 'a/1'), c(2, 'a/2'), c(3, 'a/3')];
  assert.equal(checkContainerHistory([...h, list(6, 7, [c(2, 'a/2'), c(3, 'a/3')], 2, 5)], final).ok, true);
  assert.equal(checkContainerHistory([...h, list(6, 7, [c(2, 'a/2')], 2, 1)], final).ok, true, 'count bounds the page');
  assert.equal(checkContainerHistory([...h, list(6, 7, [c(1, 'a/1'), c(3, 'a/3')])], final).ok, false, 'a hole');
  assert.equal(checkContainerHistory([...h, list(6, 7, [c(1, 'a/1'), c(2, 'a/2')])], final).ok, false, 'a missing acknowledged container');
});

test('a long history of many clients checks quickly', () => {
  const h: HistoryEntry[] = [];
  const final: ListedContainer[] = [];
  let t = 0;
  for (let id = 1; id <= 5_000; id++) {
    const client = `c${id % 8}`;
    // Eight clients overlapping: each call spans the next seven invocations.
    h.push(alloc(client, `${client}/${id}`, t, t + 7.5, id));
    final.push(c(id, `${client}/${id}`));
    t += 1;
  }
  const result = checkContainerHistory(h, final);
  assert.equal(result.ok, true);
});

// A client's next call recorded at the instant of its previous answer would be taken as concurrent
// with it, and a stale read of its own acknowledged write would pass (a hostile review's finding
// with the 0.1 ms clock run.ts had): recorded histories must order each client's calls strictly.
test("a recorded history must order each client's calls strictly: equal instants, overlaps and a call after an unanswered one are refused", () => {
  const staleOwnRead = [
    alloc('c1', 'c1/1', 1.0, 4.2, 1),
    update('c1', 1, 'FINALIZE', 4.5, 7.2, ok('CLOSING')),
    get('c1', 1, 7.2, 9.0, 'OPEN'),
    list(20, 21, [c(1, 'c1/1', 'CLOSING')]),
  ];
  // The checker alone cannot tell (the get may be concurrent with the update); the order check can.
  assert.equal(checkContainerHistory(staleOwnRead, [c(1, 'c1/1', 'CLOSING')]).ok, true);
  assert.match(recordedOrderProblem(staleOwnRead) ?? '', /c1's call c1#\d+ get #1 LINEARIZABLE -> OPEN is invoked at 7.2, not after its previous call .* completed \(7.2\)/);
  // With a clock that tells them apart the order check passes and the checker sees the stale read.
  const told = [...staleOwnRead.slice(0, 2), get('c1', 1, 7.2001, 9.0, 'OPEN'), staleOwnRead[3]!];
  assert.equal(recordedOrderProblem(told), undefined);
  assert.equal(checkContainerHistory(told, [c(1, 'c1/1', 'CLOSING')]).ok, false);

  assert.match(recordedOrderProblem([alloc('a', 'a/1', 0, 5, 1), get('a', 1, 3, 6, 'OPEN')]) ?? '', /not after its previous call/);
  assert.match(recordedOrderProblem([alloc('a', 'a/1', 0, null), get('a', 1, 3, 6, 'absent')]) ?? '', /completed \(never\)/);
  assert.match(recordedOrderProblem([get('a', 1, 3, 2, 'absent')]) ?? '', /is invoked at 3 and completes at 2/);
  assert.match(recordedOrderProblem([get('a', 1, Number.NaN, 2, 'absent')]) ?? '', /is invoked at NaN/);
  // Different clients may overlap and share instants; a client's last call may be unanswered.
  assert.equal(recordedOrderProblem([alloc('a', 'a/1', 0, 5, 1), get('b', 1, 5, 6, 'OPEN'), alloc('a', 'a/2', 5.5, null)]), undefined);
});

test('a ContainerTable checks one history: a second check on it is refused, not started from the first one\'s containers', () => {
  const table = new ContainerTable();
  const allocated: Operation<{ call: ChaosCall; outcome: ChaosOutcome }> = { op: { call: { kind: 'allocate', owner: 'a/1' }, outcome: { type: 'ok', id: 1 } }, invoke: 0, complete: 1, label: 'alloc -> #1' };
  assert.equal(checkLinearizableFrontier([allocated], table).ok, true);
  const sawIt: Operation<{ call: ChaosCall; outcome: ChaosOutcome }> = { op: { call: { kind: 'get', id: 1, consistency: 'LINEARIZABLE' }, outcome: { type: 'ok', state: 'OPEN' } }, invoke: 0, complete: 1, label: 'get #1 -> OPEN' };
  assert.throws(() => checkLinearizableFrontier([sawIt], table), /a ContainerTable checks one history/);
  assert.equal(checkLinearizableFrontier([sawIt], new ContainerTable()).ok, false, 'a fresh table has no container 1');
});
