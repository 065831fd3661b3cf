// The container-table linearizability check on hand-made histories: it accepts what a correct SCM
// may answer (concurrent calls in either order, unknown outcomes either way) and catches the
// violations a broken replica or a lost acknowledgement would show.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkContainerHistory } from './container-model.js';
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
